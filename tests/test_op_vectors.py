"""The op set against the vectors TensorFlow 1.15 computed (`spec/vectors/<op>.json`, made by `generate.py`), and
those of the ops SB3's graphs add, which torch computed (`generate_torch.py`).

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

from conformance.rules import ulp_comparison, ulp_differences
from sbif.ops import REGISTRY, ValueSpec, resolve_attrs
from sbif.ops.elementwise import Selu, Sigmoid, Softplus

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
TOLERANCE_KEYS = {"exact", "ulp", "abs", "unspecified_nan"}
SPECIAL = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
#: ops whose SB2 computation runs in NumPy, so NumPy 1.18.5 is their oracle (clip: predict's np.clip;
#: inverse_cdf_sample: DQN's np.random.choice)
NUMPY_ORACLE_OPS = ("clip", "inverse_cdf_sample")
#: ops only SB3's graphs use, so torch (SB3's framework) is their oracle (`spec/vectors/generate_torch.py`)
TORCH_ORACLE_OPS = ("erf", "transpose", "where")


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


def largest_differences(expected, actual, tolerance, inputs):
    """The largest ULP and absolute differences over the finite positions the rule compares (`generate.py
    --check` reports them per op)."""
    differences = ulp_differences(expected, actual, tolerance, {"arrays": inputs})
    considered = differences.finite & ~differences.skip
    if not considered.any():
        return {"ulp": 0, "abs": 0.0}
    return {"ulp": int(differences.distance[considered].max()), "abs": float(differences.difference[considered].max())}


def check_case(op_name, item):
    """Run the reference compute on one case: (problems, stats over all outputs). Outputs are judged by the
    op-vector rule of `conformance/rules.py`, the one every runtime's answers to these vectors are judged by."""
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
        comparison = ulp_comparison(expected, actual, tolerance, {"arrays": inputs})
        if not comparison.ok:
            problems.append("output {} at {}: {}".format(number, comparison.where, comparison.detail))
        if expected.dtype.kind == "f":
            seen = largest_differences(expected, actual, tolerance, inputs)
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


def spec_section(op):
    """The text of `## op` in spec/ops.md, up to the next section."""
    text = (VECTORS.parent / "ops.md").read_text(encoding="utf-8")
    return re.search(r"^## {}$(.*?)(?=^## )".format(op), text, re.M | re.S).group(1)


def float32_bits(value):
    return int(np.asarray(value, np.float32).view(np.uint32))


def test_the_spec_states_the_constants_the_ops_use():
    """spec/ops.md writes out TF's SELU constants, sigmoid's float32 cut-offs and softplus's threshold for other
    runtimes to copy; the reference and the converters take them from `Selu`, `Sigmoid.FLOAT32_CUTOFF` and
    `Softplus.threshold`: both say the same."""
    selu = spec_section("selu")
    scale, scale_alpha = (float(re.search(name + r" = ([0-9.]+)", selu).group(1)) for name in ("SCALE", "SCALE_ALPHA"))
    assert (scale, scale_alpha) == (Selu.SCALE, Selu.SCALE_ALPHA)
    rounded = re.search(r"float32: \S+ = 0x([0-9a-f]{8}) and \S+ = 0x([0-9a-f]{8})", selu).groups()
    assert [int(bits, 16) for bits in rounded] == [float32_bits(Selu.SCALE), float32_bits(Selu.SCALE_ALPHA)]
    cutoffs = re.search(r"y = 0 exactly when x < −(\d+) and y = 1 exactly when x > (\d+)", spec_section("sigmoid"))
    assert [-float(cutoffs.group(1)), float(cutoffs.group(2))] == [-Sigmoid.FLOAT32_CUTOFF, Sigmoid.FLOAT32_CUTOFF]
    threshold = re.search(r"float32:\s+t = −([0-9.]+) = 0x([0-9a-f]{8})", spec_section("softplus"))
    assert -float(threshold.group(1)) == Softplus.threshold("float32")
    assert int(threshold.group(2), 16) == float32_bits(Softplus.threshold("float32"))


@pytest.mark.parametrize("op", sorted(FILES))
def test_vector_file_is_well_formed(op):
    document = FILES[op]
    assert document["op"] == op
    oracle = "NumPy 1.18" if op in NUMPY_ORACLE_OPS else "torch 2." if op in TORCH_ORACLE_OPS else "TensorFlow 1.15"
    assert document["generated_by"].startswith(oracle)
    assert document["cases"], "no cases"
    assert (VECTORS / (op + ".json")).stat().st_size < 200 * 1024
    names = [item["name"] for item in document["cases"]]
    assert len(names) == len(set(names)), "duplicate case names"
    for item in document["cases"]:
        tolerance = item["tolerance"]
        assert set(tolerance) <= TOLERANCE_KEYS, tolerance
        assert tolerance.get("exact") is True or isinstance(tolerance.get("ulp"), int), tolerance
        assert len(item["inputs"]) == (REGISTRY[op].arity if REGISTRY[op].arity is not None else len(item["inputs"]))


#: torch ops whose CPU kernel depends on the machine's vector ISA, and by how many ULP their results may differ from
#: the recorded ones on another machine (spec/ops.md, erf: AVX2's kernel against AVX-512's, which recorded them)
TORCH_ISA_DEPENDENT_ULP = {"erf": 1}


def test_torch_vectors_are_what_their_generator_computes():
    """spec/vectors/generate_torch.py is deterministic and its files are its output: torch recomputes every case
    (a hand edit, or a torch that permutes differently, fails here), bit for bit but for the outputs of an op whose
    kernel torch picks by the CPU's vector ISA, which must stay within TORCH_ISA_DEPENDENT_ULP of the recorded ones."""
    pytest.importorskip("torch")
    import importlib.util

    loader = importlib.util.spec_from_file_location("generate_torch", str(VECTORS / "generate_torch.py"))
    generator = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(generator)
    assert sorted(generator.CASES) == sorted(TORCH_ORACLE_OPS)
    for op in TORCH_ORACLE_OPS:
        assert FILES[op]["oracle"] == generator.ORACLES[op]
        computed, recorded = generator.encoded_cases(op), FILES[op]["cases"]
        if op not in TORCH_ISA_DEPENDENT_ULP:
            assert computed == recorded, op
            continue
        assert [{**case, "outputs": None} for case in computed] == [{**case, "outputs": None} for case in recorded], op
        for ours, theirs in zip(computed, recorded):
            for output, expected in zip(ours["outputs"], theirs["outputs"]):
                assert {**output, "data": None} == {**expected, "data": None}, (op, ours["name"])
                differences = ulp_differences(decode(expected), decode(output), {"ulp": TORCH_ISA_DEPENDENT_ULP[op]},
                                              None)
                assert not differences.bad.any(), (op, ours["name"])


def test_ulp_distance():
    def ulp_distance(a, b):
        return ulp_differences(a, b, {"exact": True}, None).distance

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
    def passes(actual, expected, tolerance, inputs=None):
        return ulp_comparison(np.float32(expected), np.float32(actual), tolerance, inputs).ok

    ulp4 = {"ulp": 4}
    assert passes([np.nan, np.inf, 1], [np.nan, np.inf, 1], ulp4)
    assert not passes([np.finfo(np.float32).max, 0, 0], [np.inf, 0, 0], ulp4)
    assert not passes([1, 0, 0], [np.nan, 0, 0], ulp4)
    assert passes([1e-40, -0.0, 0], [0, 0, -0.0], {"exact": True})
    assert passes([1e-3, 0, 0], [1.0001e-3, 0, 0], {"ulp": 4, "abs": 2 ** -22})
    assert not passes([1, 2, 3], [1, 2, 4], {"exact": True})
    assert passes([np.nan, 2, 3], [5, 2, 3], dict(ulp4, unspecified_nan=True), {"arrays": [np.float32([np.nan, 1, 1])]})


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


@pytest.mark.parametrize("op", sorted(FILES))
def test_infer_decides_every_batch_placement(op):
    """A file may put the batch dimension on any operand: `infer` answers with specs or a one-line SbifError,
    never another exception (a conv2d kernel with a batch dimension crashed `sbif validate` with a TypeError)."""
    import itertools

    from sbif.errors import SbifError

    cls = REGISTRY[op]
    for item in FILES[op]["cases"][:20]:
        attrs = resolve_attrs(cls, item["attrs"], op)
        shapes = [list(t["shape"]) for t in item["inputs"]]
        for placement in itertools.product(("as is", "batch first", "batch added"), repeat=len(shapes)):
            specs = [ValueSpec(t["dtype"], ([None] + shape[1:] if where == "batch first" and shape else
                                            [None] + shape if where == "batch added" else shape))
                     for t, shape, where in zip(item["inputs"], shapes, placement)]
            try:
                cls.infer(specs, attrs, len(item["outputs"]))
            except SbifError as exc:
                assert "\n" not in str(exc)


@pytest.mark.parametrize("op, operands", [("add", 2), ("sub", 2), ("mul", 2), ("clip", 3)])
def test_arithmetic_on_bool_is_refused(op, operands):
    """TF 1.15 has no bool kernel for these (spec/ops.md); the C and Node readers refuse them as well."""
    from sbif.errors import SbifError

    with pytest.raises(SbifError, match="bool"):
        REGISTRY[op].infer([ValueSpec("bool", [None, 3])] * operands, {}, 1)
    assert REGISTRY["less"].infer([ValueSpec("bool", [None, 3])] * 2, {}, 1)[0].dtype == "bool"
