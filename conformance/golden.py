"""Golden packs (`spec/golden-packs.md`): SB2's answers recorded once, so the suite runs with no TensorFlow.

A pack is a safetensors file `NAME.golden` next to the model it was recorded for. Its `__metadata__` holds
`"format": "sbif-golden"`, `"golden_version": "2"` and `"manifest"`, a JSON document listing every probe
(check, label, request, rules, expected outputs and their error scales); arrays — observations, state, mask,
noise, actions, the expected outputs and their scales — are tensors of the file, referenced from the manifest as
`{"tensor": KEY}`. Version 2 added the scales (SPEC section 6): a version-1 pack is refused, to be recorded
again.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .checks import CHECKS, Config, Probe
from .models import ModelInfo
from .protocol import Answer
from .runner import OP_VECTORS_MODEL, Source

GOLDEN_FORMAT = "sbif-golden"
GOLDEN_VERSION = 2
SUFFIX = ".golden"


def externalize(value: Any, key: str, tensors: "OrderedDict[str, np.ndarray]") -> Any:
    """A JSON-able copy of `value` whose arrays are stored in `tensors` and replaced by {"tensor": key}."""
    if isinstance(value, (np.ndarray, np.generic)):
        tensors[key] = np.array(value, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        return {"tensor": key}
    if isinstance(value, Mapping):
        return {name: externalize(item, "{}/{}".format(key, name), tensors) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [externalize(item, "{}/{}".format(key, index), tensors) for index, item in enumerate(value)]
    return value


def internalize(value: Any, tensors: Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"tensor"} and isinstance(value["tensor"], str):
            return np.array(tensors[value["tensor"]])
        return {name: internalize(item, tensors) for name, item in value.items()}
    if isinstance(value, list):
        return [internalize(item, tensors) for item in value]
    return value


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def write_pack(path: str, model_path: str, records: Sequence[Tuple[str, Probe, Answer]],
               skipped: Mapping[str, str], recorded_by: Mapping[str, Any], source: Optional[Mapping[str, Any]] = None,
               config: Optional[Config] = None) -> str:
    """Write a pack: `records` are (check, probe, expected answer) triples in order; `skipped` maps checks that
    could not be recorded to the reason."""
    from sbif.format.container import write_container

    from .scales import ReferenceScales

    reference = ReferenceScales()
    tensors: "OrderedDict[str, np.ndarray]" = OrderedDict()
    probes = []
    for index, (check, probe, expected) in enumerate(records):
        request = {k: v for k, v in probe.request.items() if k != "model"}
        entry = {"check": check, "label": probe.label, "rules": probe.rules,
                 "request": externalize(request, "p{}/request".format(index), tensors),
                 "expected": externalize(expected.outputs, "p{}/expected".format(index), tensors)}
        scales, undetermined = ((probe.scales, probe.undetermined or {}) if probe.scales is not None
                                else reference.for_request(probe.request))
        if scales is not None:
            entry["scales"] = externalize(_stored_scales(scales), "p{}/scales".format(index), tensors)
        if undetermined:
            entry["undetermined"] = dict(undetermined)
        if probe.rows:
            entry["rows"] = list(probe.rows)
        if expected.missing:
            entry["missing"] = dict(expected.missing)
        probes.append(entry)
    directory = os.path.dirname(os.path.abspath(path))
    manifest = {
        "model": {"file": os.path.relpath(os.path.abspath(model_path), directory), "sha256": sha256_of(model_path)},
        "source": dict(source or {}),
        "recorded_by": dict(recorded_by),
        "config": config.as_dict() if config is not None else {},
        "skipped": dict(skipped),
        "probes": probes,
    }
    metadata = {"format": GOLDEN_FORMAT, "golden_version": str(GOLDEN_VERSION),
                "manifest": json.dumps(manifest, allow_nan=False, separators=(",", ":"))}
    write_container(path, tensors, metadata)
    return path


def _stored_scales(scales: Any) -> Any:
    """Scales as float32 tensors, rounded up (a scale may only grow): half the size of float64."""
    if isinstance(scales, Mapping):
        return {name: _stored_scales(value) for name, value in scales.items()}
    if isinstance(scales, (list, tuple)):
        return [_stored_scales(value) for value in scales]
    if scales is None:
        return None
    exact = np.asarray(scales, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # NaN scales (not determined) stay NaN
        rounded = exact.astype(np.float32)
        return np.where(rounded < exact, np.nextafter(rounded, np.float32(np.inf)), rounded).astype(np.float32)


class GoldenPack:
    """A pack read back: its manifest, tensors and the model file it belongs to."""

    def __init__(self, path: str):
        from sbif.format.container import read_container

        self.path = os.path.abspath(path)
        metadata, self.tensors = read_container(self.path)
        if metadata.get("format") != GOLDEN_FORMAT:
            raise ValueError("{} is not a golden pack (format {!r})".format(path, metadata.get("format")))
        if metadata.get("golden_version") != str(GOLDEN_VERSION):
            raise ValueError("{}: golden pack version {} is not supported (this suite reads {})".format(
                path, metadata.get("golden_version"), GOLDEN_VERSION))
        self.manifest = json.loads(metadata["manifest"])
        self.model_path = os.path.normpath(os.path.join(os.path.dirname(self.path), self.manifest["model"]["file"]))

    @property
    def name(self) -> str:
        return os.path.basename(self.manifest["model"]["file"])

    def stale(self) -> Optional[str]:
        """Why the pack cannot be used for its model (missing or changed since recording), else None."""
        if not os.path.exists(self.model_path):
            return "the pack's model {} is missing".format(self.model_path)
        if sha256_of(self.model_path) != self.manifest["model"]["sha256"]:
            return "{} changed since the pack was recorded (sha256 differs): record it again".format(self.model_path)
        return None

    def checks(self) -> List[str]:
        seen: List[str] = []
        for entry in self.manifest["probes"]:
            if entry["check"] not in seen:
                seen.append(entry["check"])
        return seen

    def probes(self, check: str) -> Iterator[Probe]:
        for entry in self.manifest["probes"]:
            if entry["check"] != check:
                continue
            request = internalize(entry["request"], self.tensors)
            if request.get("type") in ("run", "predict"):
                request["model"] = self.model_path
            expected = Answer("result", internalize(entry["expected"], self.tensors))
            scales = internalize(entry["scales"], self.tensors) if "scales" in entry else None
            yield Probe(request, entry["rules"], entry["label"], expected=expected, rows=entry.get("rows"),
                        scales=scales, undetermined=entry.get("undetermined"))


def find_packs(paths: Sequence[str]) -> List[str]:
    """Pack files given directly or found (recursively) in directories, sorted."""
    found: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in os.walk(path):
                found.extend(os.path.join(root, name) for name in files if name.endswith(SUFFIX))
        else:
            found.append(path)
    return sorted(found)


class GoldenSource(Source):
    """Checks replayed from golden packs; `op_vectors` come from spec/vectors (TensorFlow's own answers)."""

    def __init__(self, paths: Sequence[str], vectors_dir: Optional[str] = None):
        self.packs = find_packs(paths)
        self.vectors_dir = vectors_dir
        oracles = set()
        for path in self.packs:
            try:
                oracles.add(GoldenPack(path).manifest["recorded_by"].get("oracle", "?"))
            except (OSError, ValueError, KeyError):
                pass
        self.description = "golden packs ({} file{}, recorded by {})".format(
            len(self.packs), "" if len(self.packs) == 1 else "s", ", ".join(sorted(oracles)) or "?")

    def items(self, checks: Sequence[str], config: Config):
        if "op_vectors" in checks:
            plan = CHECKS["op_vectors"].plan(None, np.random.default_rng(0), config, self.vectors_dir)
            yield OP_VECTORS_MODEL, None, "op_vectors", plan
        for path in self.packs:
            name = os.path.basename(path)
            try:
                pack = GoldenPack(path)
                name = pack.name
                problem = pack.stale()
            except (OSError, ValueError, KeyError) as exc:
                pack, problem = None, "cannot read the pack: {}".format(exc)
            if problem:
                for check in checks:
                    if not CHECKS[check].model_free:
                        yield name, None, check, "error: " + problem
                continue
            info = ModelInfo(pack.model_path)
            recorded = pack.checks()
            for check in checks:
                if CHECKS[check].model_free:
                    continue
                if check in pack.manifest.get("skipped", {}):
                    yield name, info, check, "skip: not recorded: " + pack.manifest["skipped"][check]
                elif check not in recorded:
                    yield name, info, check, "skip: not in the pack"
                else:
                    yield name, info, check, _plan(pack.probes(check))

    def answer(self, probe: Probe) -> Answer:
        raise RuntimeError("golden probes carry their expected answers")


def _plan(probes: Iterator[Probe]):
    for probe in probes:
        yield probe
