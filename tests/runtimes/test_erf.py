"""`erf` end to end: a graph of erf and of SB3's exact GELU composed from it (x * 0.5 * (1 + erf(x * M_SQRT1_2)),
as torch's `nn.GELU()` computes it) runs in every runtime (the NumPy reference, numba, ONNX, TorchScript, C and
Node) within erf's stated accuracy of the reference and of torch itself; the edge cases spec/ops.md names are
exact everywhere; and the Node runtime's own float64 erf (JavaScript has none) is accurate to well below float32's
ULP, so its float32 results are the reference's."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from conformance.rules import ulp_comparison
from sbif.errors import DocumentError
from sbif.export.graph_builder import GraphBuilder
from sbif.format import SB2_FORMAT_VERSION, SbifFile
from sbif.ops import REGISTRY, ValueSpec
from sbif.ops.elementwise import Erf
from tests.runtimes.test_transpose import NODE_RUNTIME, process_runtime, runtimes

#: the op-vector tolerance of erf (spec/ops.md), the accuracy its error scale assumes
ERF_TOLERANCE = {"ulp": int(Erf.accuracy[0])}
#: (x, erf(x)) that spec/ops.md states exactly: ±0, ±inf, saturation to ±1 (and NaN, after these)
EXACT_EDGES = [(0.0, 0.0), (-0.0, -0.0), (math.inf, 1.0), (-math.inf, -1.0), (4.0, 1.0), (-4.0, -1.0), (6.0, 1.0),
               (-6.0, -1.0), (1e30, 1.0), (-3.4e38, -1.0)]
#: tiny arguments, where erf(x) rounds to 2x/sqrt(pi)
TINY = [1e-10, -1e-10, 1e-30, -1e-30, 1e-37]
FEATURES = 5


def edge_row() -> np.ndarray:
    return np.asarray([x for x, _ in EXACT_EDGES] + [math.nan] + TINY, np.float32)


def observations() -> np.ndarray:
    """Random rows over erf's curved range and its saturation, and a row of the edge values (padded to FEATURES
    columns)."""
    rng = np.random.default_rng(21)
    rows = rng.uniform(-5, 5, (64, FEATURES)).astype(np.float32)
    edges = edge_row()
    padded = np.resize(edges, (-(-len(edges) // FEATURES)) * FEATURES).reshape(-1, FEATURES)
    return np.concatenate([rows, padded]).astype(np.float32)


def erf_model() -> SbifFile:
    """obs [B, FEATURES] -> erf -> `erf`; and GELU as SB3's torch computes it -> `gelu`."""
    builder = GraphBuilder()
    obs = builder.add_input("obs", "float32", [None, FEATURES], "observation")
    builder.op("erf", [obs], name="erf")
    def scalar(name: str, value: float) -> str:
        return builder.constant_tensor(name, np.asarray(value, np.float32))

    scaled = builder.op("mul", [obs, scalar("sqrt_half", math.sqrt(0.5))], name="gelu/scaled")
    erf = builder.op("erf", [scaled], name="gelu/erf")
    one_plus = builder.op("add", [scalar("one", 1.0), erf], name="gelu/one_plus")
    half = builder.op("mul", [obs, scalar("half", 0.5)], name="gelu/half")
    builder.op("mul", [half, one_plus], name="gelu")
    builder.op("argmax", ["gelu"], name="action")
    builder.declare_output("erf", "erf of the observation")
    builder.declare_output("gelu", "torch's exact GELU of the observation")
    builder.declare_output("action", "the deterministic action")
    document = {
        "format": "sbif", "format_version": SB2_FORMAT_VERSION,
        "provenance": {"producer": "tests/runtimes/test_erf.py", "exporter": "live", "sb2_version": "2.10.2",
                       "source": {"file_name": "generated.zip", "sha256": "0" * 64, "format": "zip"},
                       "algorithm": "PPO2", "policy_class": "MlpPolicy"},
        "observation_space": {"kind": "box", "shape": [FEATURES], "dtype": "float32", "low": -3.4e38,
                              "high": 3.4e38},
        "action_space": {"kind": "discrete", "n": FEATURES},
        "tensors": builder.tensor_entries, "inputs": builder.inputs, "graph": builder.nodes,
        "outputs": builder.outputs,
        "predict": {"deterministic_default": True, "deterministic_action": "action", "stochastic_action": None},
    }
    return SbifFile(document, builder.tensors)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("erf") / "erf.sbif")
    erf_model().write(path)
    return path


def within_tolerance(expected: np.ndarray, actual: np.ndarray, where: str) -> None:
    comparison = ulp_comparison(expected, actual, ERF_TOLERANCE, None)
    assert comparison.ok, (where, comparison.where, comparison.detail)


def assert_gelu_close(expected: np.ndarray, actual: np.ndarray, x: np.ndarray, where: str) -> None:
    """GELU composed as torch composes it, within what erf's accuracy allows: 1 + erf(x/sqrt(2)) cancels for
    x << 0, so erf's ULPs near -1 (2^-24 each) become absolute errors that 0.5·|x| carries, on top of a few
    roundings relative to the result. Infinite x is left out: torch's GELU of +inf is NaN where the composition's
    is +inf (0.5 · inf · 2)."""
    finite = np.isfinite(x)
    x, expected, actual = (np.asarray(a, np.float64)[finite] for a in (x, expected, actual))
    bound = 0.5 * np.abs(x) * (ERF_TOLERANCE["ulp"] + 2) * 2.0 ** -24 + 4 * 2.0 ** -24 * np.abs(expected)
    worst = np.argmax(np.abs(actual - expected) - bound)
    assert np.all(np.abs(actual - expected) <= bound), (where, x[worst], expected[worst], actual[worst])


def test_the_reference_meets_the_edge_cases_exactly():
    x = edge_row()
    y = REGISTRY["erf"].compute(x)
    for got, (value, expected) in zip(y, EXACT_EDGES):
        assert got == expected and np.signbit(got) == np.signbit(expected), (value, got)
    assert np.isnan(y[len(EXACT_EDGES)])
    tiny = x[len(EXACT_EDGES) + 1:]
    assert np.array_equal(y[len(EXACT_EDGES) + 1:], (2 / np.sqrt(np.pi) * tiny.astype(np.float64)).astype(np.float32))


def test_every_runtime_computes_erf_and_gelu_as_the_reference_and_torch(model_path, c_runtime, reference):
    torch = pytest.importorskip("torch")
    obs = observations()
    expected = reference.run(model_path, {"obs": obs}, ["erf", "gelu"])
    assert expected.ok, expected.message
    with torch.no_grad():
        torch_erf = torch.erf(torch.from_numpy(obs)).numpy()
        torch_gelu = torch.nn.GELU()(torch.from_numpy(obs)).numpy()
    within_tolerance(expected.outputs["erf"], torch_erf, "reference vs torch.erf")
    assert_gelu_close(expected.outputs["gelu"], torch_gelu, obs, "reference vs torch's GELU")
    found = runtimes(c_runtime)
    assert {"numpy", "c"} <= set(found)
    for name, runtime in found.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a numba fallback to NumPy warns: none here
            answer = runtime.run(model_path, {"obs": obs}, ["erf", "gelu"])
        assert answer.ok, (name, answer.message)
        within_tolerance(expected.outputs["erf"], answer.outputs["erf"], name)
        got = answer.outputs["erf"][64:].ravel()
        for position, (value, wanted) in enumerate(EXACT_EDGES):  # the sign of a zero is not significant
            assert got[position] == wanted, (name, value, got[position])
        assert np.isnan(got[len(EXACT_EDGES)]), name
        assert_gelu_close(expected.outputs["gelu"], answer.outputs["gelu"], obs, name)


def test_the_numba_backend_runs_erf_in_its_kernels(model_path):
    pytest.importorskip("numba")
    import sbif
    from sbif.runtime.numba import encoding, program

    lowered = program.Lowered(SbifFile.read(model_path))
    assert not lowered.unsupported, lowered.unsupported
    subs = [instruction.sub for step in lowered.steps for instruction in step.instructions
            if step.node["op"] == "erf"]
    assert subs == [encoding.ERF, encoding.ERF]
    policy = sbif.load(model_path, backend="numba")
    obs = observations()
    np.testing.assert_array_equal(policy.run({"obs": obs}, ["erf"])["erf"], REGISTRY["erf"].compute(obs))
    assert not policy.executor.fallbacks


def test_the_node_runtime_erf_is_accurate_to_well_below_float32s_ulp():
    """Node's float64 erf against the C library's (`math.erf`) on arguments across every range it uses (the
    series, the continued fraction, saturation, tiny and huge values): relative error below 2^-48, so its float32
    results equal the reference's (libm's erf rounded once)."""
    import shutil

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    rng = np.random.default_rng(7)
    doubles = np.concatenate([rng.uniform(-7, 7, 20000), rng.uniform(1.4, 1.6, 2000), rng.uniform(-3, 3, 5000),
                              np.exp(rng.uniform(-700, 3, 3000)) * rng.choice([-1, 1], 3000)])
    bits = rng.integers(0, 2 ** 32, 30000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    singles = np.concatenate([bits[np.isfinite(bits)], rng.uniform(-5, 5, 20000).astype(np.float32)])
    node = process_runtime(NODE_RUNTIME)
    try:
        answer64 = node.op("erf", [doubles])
        answer32 = node.op("erf", [singles])
    finally:
        node.close()
    assert answer64.ok and answer32.ok, (answer64.message, answer32.message)
    exact = np.array([math.erf(v) for v in doubles])
    relative = np.abs(answer64.outputs["0"] - exact) / np.abs(exact)
    assert relative.max() < 2.0 ** -48, (doubles[relative.argmax()], relative.max())
    np.testing.assert_array_equal(answer32.outputs["0"], REGISTRY["erf"].compute(singles))


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
def test_the_static_rule_takes_floats_only(dtype):
    with pytest.raises(DocumentError, match=dtype):
        REGISTRY["erf"].infer([ValueSpec(dtype, [None, 3])], {}, 1)
    assert REGISTRY["erf"].infer([ValueSpec("float64", [None, 3])], {}, 1) == [ValueSpec("float64", [None, 3])]
