"""The op set against the vectors TensorFlow 1.15 computed (`spec/vectors/<op>.json`, made by `generate.py`).

Runs in both environments and never imports TensorFlow. For every case: the NumPy reference `compute` must give
each output's dtype and shape exactly and its values within the case's tolerance (`spec/ops.md`, "Conventions"),
and `infer` must predict the output dtypes and shapes from the input specs. Every registered op must have a file
and a section in `spec/ops.md`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sbif.ops import REGISTRY, ValueSpec, resolve_attrs

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
TOLERANCE_KEYS = {"exact", "ulp", "abs", "unspecified_nan"}
SPECIAL = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
#: ops whose SB2 computation runs in NumPy, so NumPy 1.18.5 is their oracle (clip: predict's np.clip;
#: inverse_cdf_sample: DQN's np.random.choice)
NUMPY_ORACLE_OPS = ("clip", "inverse_cdf_sample")


def load_files():
    return {path.stem: json.loads(path.read_text()) for path in sorted(VECTORS.glob("*.json"))}


FILES = load_files()
CASES = [(op, item) for op, document in sorted(FILES.items()) for item in document["cases"]]
CASE_IDS = ["{}/{}".format(op, item["name"]) for op, item in CASES]


# --- decoding and comparing -------------------------------------------------------------------------------------

def decode(tensor):
    """A vector file tensor as an array of exactly its dtype and shape."""
    dtype = np.dtype(tensor["dtype"])
    data = tensor["data"]
    if dtype.kind == "f":
        data = np.array([SPECIAL[v] if isinstance(v, str) else v for v in data], dtype=np.float64)
    return np.array(data, dtype=np.float64 if dtype.kind == "f" else dtype).astype(dtype).reshape(tensor["shape"])


def flushed(x):
    """Subnormals and -0 become +0: TF 1.15 flushes subnormals, and the sign of zero is not significant."""
    return np.where(np.abs(x) < np.finfo(x.dtype).tiny, x.dtype.type(0), x)


def ordinal(x):
    """Map floats to unsigned integers in the same order, adjacent floats to adjacent integers, -0 and +0 alike."""
    if x.dtype == np.float32:
        bits, width = x.view(np.uint32).astype(np.uint64), 32
    else:
        bits, width = x.view(np.uint64), 64
    sign = np.uint64(1 << (width - 1))
    magnitude = bits & ~sign
    return np.where(bits & sign, sign - magnitude, sign + magnitude)


def ulp_distance(a, b):
    """How many representable values lie between a and b (finite, flushed, same dtype), as uint64."""
    oa, ob = ordinal(a), ordinal(b)
    return np.maximum(oa, ob) - np.minimum(oa, ob)


def nan_input_mask(inputs, shape):
    """Output positions that a NaN input reaches, for element-wise ops (everything if shapes do not broadcast)."""
    mask = np.zeros(shape, dtype=bool)
    for x in inputs:
        if x.dtype.kind != "f":
            continue
        try:
            mask |= np.broadcast_to(np.isnan(x), shape)
        except ValueError:
            return np.ones(shape, dtype=bool)
    return mask


def compare(actual, expected, tolerance, skip):
    """Return (problems, stats) for one output; stats holds the largest ULP and absolute differences seen."""
    with np.errstate(all="ignore"):
        return _compare(actual, expected, tolerance, skip)


def _compare(actual, expected, tolerance, skip):
    stats = {"ulp": 0, "abs": 0.0}
    if expected.dtype.kind != "f":
        bad = actual != expected
    else:
        a, e = flushed(actual), flushed(expected)
        nan_a, nan_e = np.isnan(a), np.isnan(e)
        infinite = np.isinf(a) | np.isinf(e)
        finite = ~(nan_a | nan_e | infinite)
        bad = (nan_a != nan_e) | (infinite & ~(nan_a | nan_e) & (a != e))
        distance = np.where(finite, ulp_distance(a, e), np.uint64(0))
        difference = np.where(finite, np.abs(a.astype(np.float64) - e.astype(np.float64)), 0.0)
        if tolerance.get("exact"):
            bad |= distance > 0
        else:
            bad |= (distance > tolerance["ulp"]) & (difference > tolerance.get("abs", 0.0))
        considered = finite & ~skip
        if considered.any():
            stats = {"ulp": int(distance[considered].max()), "abs": float(difference[considered].max())}
    bad &= ~skip
    problems = []
    positions = [()] if bad.ndim == 0 and bad else [] if bad.ndim == 0 else list(zip(*np.nonzero(bad)))
    for index in positions[:5]:
        problems.append("at {} got {!r}, TF gives {!r}".format(
            tuple(int(i) for i in index), actual[index].item(), expected[index].item()))
    if bad.sum() > 5:
        problems.append("... {} mismatches in all".format(int(bad.sum())))
    return problems, stats


def check_case(op_name, item):
    """Run the reference compute on one case: (problems, stats over all outputs)."""
    op = REGISTRY[op_name]
    attrs = resolve_attrs(op, item["attrs"], "{}/{}".format(op_name, item["name"]))
    inputs = [decode(t) for t in item["inputs"]]
    with np.errstate(all="ignore"):
        result = op.compute(*inputs, **attrs)
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(results) != len(item["outputs"]):
        return ["{} outputs, expected {}".format(len(results), len(item["outputs"]))], {"ulp": 0, "abs": 0.0}
    tolerance = item["tolerance"]
    problems, stats = [], {"ulp": 0, "abs": 0.0}
    for number, (actual, spec) in enumerate(zip(results, item["outputs"])):
        actual, expected = np.asarray(actual), decode(spec)
        if actual.dtype.name != spec["dtype"] or actual.shape != expected.shape:
            problems.append("output {} is {}{}, expected {}{}".format(
                number, actual.dtype.name, list(actual.shape), spec["dtype"], spec["shape"]))
            continue
        if tolerance.get("unspecified_nan"):
            skip = nan_input_mask(inputs, expected.shape)
        else:
            skip = np.zeros(expected.shape, dtype=bool)
        found, seen = compare(actual, expected, tolerance, skip)
        problems += ["output {}: {}".format(number, p) for p in found]
        stats = {"ulp": max(stats["ulp"], seen["ulp"]), "abs": max(stats["abs"], seen["abs"])}
    return problems, stats


# --- tests ------------------------------------------------------------------------------------------------------

def test_every_op_has_vectors():
    assert sorted(set(REGISTRY) - set(FILES)) == [], "ops without spec/vectors/<op>.json"
    assert sorted(set(FILES) - set(REGISTRY)) == [], "vector files for unknown ops"


def test_every_op_has_a_spec_section():
    sections = []
    for path in sorted(VECTORS.parent.glob("ops*.md")):  # ops.md, ops-sampling.md
        names = [name for name in re.findall(r"^## (\S+)$", path.read_text(encoding="utf-8"), re.M)
                 if name in REGISTRY]
        assert names == sorted(names), "op sections of spec/{} are not in alphabetical order".format(path.name)
        sections += names
    assert sorted(set(REGISTRY) - set(sections)) == [], "ops without a section in spec/ops*.md"


@pytest.mark.parametrize("op", sorted(FILES))
def test_vector_file_is_well_formed(op):
    document = FILES[op]
    assert document["op"] == op
    assert document["generated_by"].startswith("NumPy 1.18" if op in NUMPY_ORACLE_OPS else "TensorFlow 1.15")
    assert document["cases"], "no cases"
    assert (VECTORS / (op + ".json")).stat().st_size < 200 * 1024
    names = [item["name"] for item in document["cases"]]
    assert len(names) == len(set(names)), "duplicate case names"
    for item in document["cases"]:
        tolerance = item["tolerance"]
        assert set(tolerance) <= TOLERANCE_KEYS, tolerance
        assert tolerance.get("exact") is True or isinstance(tolerance.get("ulp"), int), tolerance
        assert len(item["inputs"]) == (REGISTRY[op].arity if REGISTRY[op].arity is not None else len(item["inputs"]))


def test_ulp_distance():
    one = np.float32(1)
    assert ulp_distance(np.float32([1]), np.nextafter(np.float32([1]), np.float32(2))).tolist() == [1]
    assert ulp_distance(np.float32([-one]), np.float32([one])).tolist() == [2 * 0x3F800000]
    assert ulp_distance(np.float32([-0.0]), np.float32([0.0])).tolist() == [0]
    assert ulp_distance(np.float64([1.0]), np.float64([1.0 + 2 ** -52])).tolist() == [1]
    tiny = np.finfo(np.float32).tiny
    assert ulp_distance(np.float32([-tiny]), np.float32([tiny])).tolist() == [2 * 0x00800000]
    big = np.float64([np.finfo(np.float64).max])
    assert ulp_distance(-big, big).tolist() == [2 * 0x7FEFFFFFFFFFFFFF]


def test_compare_rules():
    no_skip = np.zeros(3, dtype=bool)
    ulp4 = {"ulp": 4}
    assert compare(np.float32([np.nan, np.inf, 1]), np.float32([np.nan, np.inf, 1]), ulp4, no_skip)[0] == []
    assert compare(np.float32([np.finfo(np.float32).max, 0, 0]), np.float32([np.inf, 0, 0]), ulp4, no_skip)[0]
    assert compare(np.float32([1, 0, 0]), np.float32([np.nan, 0, 0]), ulp4, no_skip)[0]
    assert compare(np.float32([1e-40, -0.0, 0]), np.float32([0, 0, -0.0]), {"exact": True}, no_skip)[0] == []
    assert compare(np.float32([1e-3, 0, 0]), np.float32([1.0001e-3, 0, 0]), {"ulp": 4, "abs": 2 ** -22},
                   no_skip)[0] == []
    assert compare(np.float32([1, 2, 3]), np.float32([1, 2, 4]), {"exact": True}, no_skip)[0]
    assert compare(np.float32([np.nan, 2, 3]), np.float32([5, 2, 3]), ulp4, np.array([True, False, False]))[0] == []


@pytest.mark.parametrize("op, item", CASES, ids=CASE_IDS)
def test_compute_matches_tensorflow(op, item):
    problems, _ = check_case(op, item)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("op, item", CASES, ids=CASE_IDS)
def test_infer_predicts_outputs(op, item):
    cls = REGISTRY[op]
    attrs = resolve_attrs(cls, item["attrs"], "{}/{}".format(op, item["name"]))
    specs = [ValueSpec(t["dtype"], t["shape"]) for t in item["inputs"]]
    predicted = cls.infer(specs, attrs, len(item["outputs"]))
    assert [(p.dtype, tuple(p.shape)) for p in predicted] == [(t["dtype"], tuple(t["shape"])) for t in item["outputs"]]
