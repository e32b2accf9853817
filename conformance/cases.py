"""Replayable case files (`.sbifcase`): one failing check, small enough to read, rerun anywhere.

A case file is JSON (`spec/conformance-protocol.md`, "Case files"):

    {"sbifcase": 1, "check": "deterministic", "model": {"file_name", "sha256", "path"?, "bytes_base64"?, "spec"?},
     "probes": [{"label", "request", "expected", "scales", "rules"}], "failure": {...}, "created_by": "..."}

`request` is the protocol request without its id (the model path is filled in at replay), `expected` the
oracle's outputs as protocol values, `scales` their error scales (SPEC section 6), `rules` the comparison rule
per output. `sbif conformance replay CASE`
sends the probes to a runtime and compares exactly as the original run did.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional

from . import __version__
from .protocol import Answer, Runtime, decode_request, decode_value, encode_request, encode_value, load_outcome
from .rules import compare, comparison_inputs, refusal_comparison

CASE_VERSION = 2
#: models up to this size are embedded in case files written by the runner (generated models always are)
EMBED_LIMIT = 4 << 20


def case_document(check: str, probes: List[Dict[str, Any]], model_path: Optional[str],
                  failure: Mapping[str, Any], runtime: str, spec: Optional[Mapping[str, Any]] = None,
                  embed: Optional[bool] = None, note: str = "") -> Dict[str, Any]:
    """A case file's content. Each probe is {"label", "request" (arrays), "expected" (Answer), "scales" (the
    expected outputs' error scales, or None), "rules"}."""
    model: Dict[str, Any] = {}
    if model_path is not None:
        with open(model_path, "rb") as handle:
            data = handle.read()
        model = {"file_name": os.path.basename(model_path), "sha256": hashlib.sha256(data).hexdigest(),
                 "path": os.path.abspath(model_path)}
        if embed or (embed is None and len(data) <= EMBED_LIMIT):
            model["bytes_base64"] = base64.b64encode(data).decode("ascii")
        if spec is not None:
            model["spec"] = dict(spec)
    encoded = []
    for probe in probes:
        request = encode_request(probe["request"])
        request.pop("model", None)
        expected = probe["expected"]
        scales = probe.get("scales") or {}
        encoded.append({"label": probe["label"], "request": request,
                        "expected": {name: encode_value(v) for name, v in expected.outputs.items()},
                        "scales": {name: encode_value(v) for name, v in scales.items()},
                        "rules": probe["rules"]})
    document = {"sbifcase": CASE_VERSION, "check": check, "model": model, "probes": encoded,
                "failure": {key: failure.get(key) for key in ("output", "where", "detail", "kind", "probe")},
                "runtime": runtime, "created_by": "sbif-conformance {}".format(__version__)}
    if note:
        document["note"] = note
    return json.loads(json.dumps(document, allow_nan=False))


def failing_probe(failure: Mapping[str, Any]) -> Dict[str, Any]:
    """The probe of a run's first failure (`CheckResult.failure`) as `case_document` takes it."""
    probe = failure["probe_object"]
    return {"label": probe.label, "request": probe.request, "expected": failure["expected"],
            "scales": failure.get("scales"), "rules": probe.rules}


def write_case(directory: str, result: Any, runtime: str) -> str:
    """Write the failing probe of a `CheckResult` to `directory/<model>--<check>.sbifcase`; return the path."""
    os.makedirs(directory, exist_ok=True)
    failure = result.failure
    probe = failure["probe_object"]
    model_path = probe.request.get("model")
    document = case_document(result.check, [failing_probe(failure)], model_path, failure, runtime)
    stem = "{}--{}".format(os.path.splitext(result.model)[0], result.check).replace(os.sep, "_").replace(" ", "_")
    path = os.path.join(directory, stem + ".sbifcase")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")
    return path


def read_case(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict) or document.get("sbifcase") != CASE_VERSION:
        raise ValueError("{} is not an sbifcase file of version {}".format(path, CASE_VERSION))
    return document


class ReplayResult:
    def __init__(self, ok: bool, lines: List[str]):
        self.ok, self.lines = ok, lines


def replay(case: Mapping[str, Any], runtime: Runtime, model_path: Optional[str] = None) -> ReplayResult:
    """Send a case's probes to `runtime` and compare with the recorded expectations."""
    lines: List[str] = []
    model = case.get("model") or {}
    temporary = None
    try:
        if model_path is None and model:
            if model.get("bytes_base64"):
                handle, temporary = tempfile.mkstemp(suffix="-" + model.get("file_name", "model.sbif"))
                with os.fdopen(handle, "wb") as out:
                    out.write(base64.b64decode(model["bytes_base64"]))
                model_path = temporary
            elif model.get("path") and os.path.exists(model["path"]):
                model_path = model["path"]
                with open(model_path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                if digest != model.get("sha256"):
                    lines.append("warning: {} changed since the case was written (sha256 {} != {})".format(
                        model_path, digest[:12], str(model.get("sha256"))[:12]))
            else:
                return ReplayResult(False, ["the case's model is neither embedded nor at {}".format(model.get("path"))])
        ok = True
        for probe in case["probes"]:
            wire = dict(probe["request"])
            if model_path is not None and wire.get("type") in ("run", "predict", "load"):
                wire["model"] = os.path.abspath(model_path)
            request = decode_request(wire)
            expected = Answer("result", {name: decode_value(v, name) for name, v in probe["expected"].items()})
            scales = {name: decode_value(v, name) for name, v in (probe.get("scales") or {}).items()}
            actual = runtime.request(request)
            if request.get("type") == "load":  # judged by its outcome: loaded, or the refusal's error class
                actual = load_outcome(actual)
            if not actual.ok:
                ok = False
                lines.append("{}: runtime {}: {}".format(probe["label"], actual.status, actual.message))
                continue
            for name, rule in probe["rules"].items():
                if name not in expected.outputs:
                    continue
                if name not in actual.outputs:
                    ok = False
                    lines.append("{}: {}: missing from the runtime's answer".format(probe["label"], name))
                    continue
                if rule["rule"] == "refusal":
                    result = refusal_comparison(rule, expected.outputs[name], actual.outputs[name])
                else:
                    result = compare(rule, expected.outputs[name], actual.outputs[name], expected.outputs,
                                     comparison_inputs(request), scales.get(name), scales)
                status = "ok  " if result.ok else "FAIL"
                ok = ok and result.ok
                lines.append("{} {}: {} error {:.3g} {} {}".format(status, probe["label"], name, result.error,
                                                                   result.where, result.detail).rstrip())
        return ReplayResult(ok, lines)
    finally:
        if temporary is not None:
            os.remove(temporary)
