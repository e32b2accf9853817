"""`where` end to end: MaskablePPO's masked logits (`th.where(mask, logits, -1e8)`: a [B, n] condition against a
rank-0 constant) run in every runtime (the NumPy reference, numba, ONNX, torch, TorchScript, C and Node) exactly as
torch computes them, the selected NaN, infinities and -0 kept and a NaN in the operand not selected leaving no
trace; every dtype is selected bit for bit by every runtime's op; and the static rule's refusals."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from conformance.protocol import ProcessRuntime
from sbif.errors import DocumentError
from sbif.export.graph_builder import GraphBuilder
from sbif.format import SB2_FORMAT_VERSION, SbifFile
from sbif.ops import REGISTRY, ValueSpec
from sbif.ops.base import INT_DTYPES
from tests.runtimes.test_transpose import runtimes

#: the logits' columns; the observation holds the mask's scores, then the logits
ACTIONS = 5
#: what MaskablePPO puts in place of a masked logit
MASKED_LOGIT = -1e8
#: values a select must copy bit for bit
EDGES = [np.nan, np.inf, -np.inf, -0.0, 0.0, 3.4028235e38, -1.0, 1e-30]


def masked_logits_model() -> SbifFile:
    """obs [B, 2·ACTIONS] = scores and logits; mask = 0 < scores; `masked` = where(mask, logits, -1e8);
    `action` its argmax."""
    builder = GraphBuilder()
    obs = builder.add_input("obs", "float32", [None, 2 * ACTIONS], "observation")
    scores, logits = builder.op("split", [obs], {"axis": 1, "sizes": [ACTIONS, ACTIONS]}, name="obs/split",
                                n_outputs=2)
    zero = builder.constant_tensor("zero", np.asarray(0.0, np.float32))
    mask = builder.op("less", [zero, scores], name="mask")
    masked_logit = builder.constant_tensor("masked_logit", np.asarray(MASKED_LOGIT, np.float32))
    builder.op("where", [mask, logits, masked_logit], name="masked")
    builder.op("argmax", ["masked"], name="action")
    builder.declare_output("masked", "the logits, -1e8 where the mask is false")
    builder.declare_output("action", "the deterministic action")
    document = {
        "format": "sbif", "format_version": SB2_FORMAT_VERSION,
        "provenance": {"producer": "tests/runtimes/test_where.py", "exporter": "live", "sb2_version": "2.10.2",
                       "source": {"file_name": "generated.zip", "sha256": "0" * 64, "format": "zip"},
                       "algorithm": "PPO2", "policy_class": "MlpPolicy"},
        "observation_space": {"kind": "box", "shape": [2 * ACTIONS], "dtype": "float32", "low": -3.4e38,
                              "high": 3.4e38},
        "action_space": {"kind": "discrete", "n": ACTIONS},
        "tensors": builder.tensor_entries, "inputs": builder.inputs, "graph": builder.nodes,
        "outputs": builder.outputs,
        "predict": {"deterministic_default": True, "deterministic_action": "action", "stochastic_action": None},
    }
    return SbifFile(document, builder.tensors)


def observations() -> np.ndarray:
    """Random scores and logits, and rows whose logits are the edge values, selected (score 1) and not (score
    -1), so that a NaN logit is both kept and discarded."""
    rng = np.random.default_rng(21)
    random = rng.standard_normal((32, 2 * ACTIONS)).astype(np.float32)
    edges = np.resize(np.asarray(EDGES, np.float32), (-(-len(EDGES) // ACTIONS)) * ACTIONS).reshape(-1, ACTIONS)
    rows = [np.concatenate([np.full_like(edges, score), edges], axis=1) for score in (1.0, -1.0)]
    return np.concatenate([random] + rows).astype(np.float32)


def torch_masked_logits(obs: np.ndarray) -> np.ndarray:
    """MaskablePPO's masking, as sb3_contrib's MaskableCategorical computes it."""
    torch = pytest.importorskip("torch")
    scores, logits = torch.from_numpy(obs[:, :ACTIONS]), torch.from_numpy(obs[:, ACTIONS:])
    return torch.where(scores > 0, logits, torch.tensor(MASKED_LOGIT, dtype=torch.float32)).numpy()


def assert_same_values(expected: np.ndarray, actual: np.ndarray, where: str, signed_zeros: bool = True) -> None:
    """Equal element by element, NaN where NaN, and with `signed_zeros` the sign of every zero the same (not a
    NaN's, which JSON does not carry)."""
    actual = np.asarray(actual)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, (where, actual.dtype, actual.shape)
    numbers = ~np.isnan(expected) if expected.dtype.kind == "f" else np.ones(expected.shape, bool)
    # element by element and NaN where NaN (NumPy 1.18's array_equal has no equal_nan)
    assert np.array_equal(numbers, ~np.isnan(actual) if actual.dtype.kind == "f" else numbers) and np.array_equal(
        expected[numbers], actual[numbers]), (where, expected, actual)
    if expected.dtype.kind == "f" and signed_zeros:
        assert np.array_equal(np.signbit(expected[numbers]), np.signbit(actual[numbers])), (where, expected, actual)


def keeps_signed_zeros(name: str, runtime: object) -> bool:
    """Whether the test holds the runtime to the sign of a selected zero, beyond SPEC section 6 (where it is not
    significant): not a process, whose answers come through the protocol's JSON, which does not carry it
    (spec/conformance-protocol.md); nor onnxruntime, whose float Where answers +0 where it selects a -0 from x
    (spec/converters.md)."""
    return not isinstance(runtime, ProcessRuntime) and name != "onnx"


def test_onnxruntime_where_drops_the_sign_of_a_zero_it_selects_from_x():
    """Why `keeps_signed_zeros` spares ONNX: if onnxruntime ever keeps -0, this fails and the exemption goes."""
    pytest.importorskip("onnxruntime")
    from conformance.adapters.onnx_runtime import OnnxRuntime

    answer = OnnxRuntime().op("where", [np.asarray([True, False]), np.asarray([-0.0, 1.0], np.float32),
                                  np.asarray([1.0, -0.0], np.float32)])
    assert answer.ok, answer.message
    assert np.signbit(answer.outputs["0"]).tolist() == [False, True]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("where") / "masked_logits.sbif")
    masked_logits_model().write(path)
    return path


def test_the_reference_copies_the_selected_element_bit_for_bit():
    payload = np.asarray([0x7FC12345, 0x80000000], np.uint32).view(np.float32)  # a NaN with a payload, -0
    z = REGISTRY["where"].compute(np.asarray([True, False]), payload, payload[::-1].copy())
    assert z.view(np.uint32).tolist() == [0x7FC12345, 0x7FC12345]
    z = REGISTRY["where"].compute(np.asarray([False, True]), payload, payload[::-1].copy())
    assert z.view(np.uint32).tolist() == [0x80000000, 0x80000000]


def test_every_runtime_masks_logits_as_torch(model_path, c_runtime, reference):
    obs = observations()
    wanted = torch_masked_logits(obs)
    expected = reference.run(model_path, {"obs": obs}, ["masked", "action"])
    assert expected.ok, expected.message
    assert_same_values(wanted, expected.outputs["masked"], "reference vs torch.where")
    assert np.isnan(wanted).any() and (wanted == np.float32(MASKED_LOGIT)).any()
    found = runtimes(c_runtime)
    assert {"numpy", "c"} <= set(found)
    for name, runtime in found.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a numba fallback to NumPy warns: none here
            answer = runtime.run(model_path, {"obs": obs}, ["masked", "action"])
        assert answer.ok, (name, answer.message)
        assert_same_values(wanted, answer.outputs["masked"], name, keeps_signed_zeros(name, runtime))
        assert_same_values(expected.outputs["action"], answer.outputs["action"], name)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bool"] + list(INT_DTYPES))
def test_every_runtime_selects_every_dtype_exactly(dtype, c_runtime):
    """A [3, 4] condition between x [3, 4] and a [4] row of y: each runtime's op gives NumPy's np.where."""
    rng = np.random.default_rng(5)
    condition = rng.integers(0, 2, (3, 4)).astype(bool)
    if dtype == "bool":
        x, y = rng.integers(0, 2, (3, 4)).astype(bool), rng.integers(0, 2, 4).astype(bool)
    elif dtype.startswith("float"):
        x, y = np.resize(np.asarray(EDGES, dtype), (3, 4)), rng.standard_normal(4).astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, (3, 4), endpoint=True).astype(dtype)
        y = np.asarray([info.min, info.max, 0, 1], dtype)
    expected = np.where(condition, x, y)
    for name, runtime in runtimes(c_runtime).items():
        answer = runtime.op("where", [condition, x, y])
        assert answer.ok, (name, dtype, answer.message)
        (actual,) = answer.outputs.values()
        assert_same_values(expected, actual, "{} {}".format(name, dtype), keeps_signed_zeros(name, runtime))


def test_the_numba_backend_runs_the_masking_in_its_kernels(model_path):
    pytest.importorskip("numba")
    import sbif
    from sbif.runtime.numba import encoding, program

    lowered = program.Lowered(SbifFile.read(model_path))
    assert not lowered.unsupported, lowered.unsupported
    opcodes = [instruction.opcode for step in lowered.steps for instruction in step.instructions
               if step.node["op"] == "where"]
    assert opcodes == [encoding.WHERE]
    policy = sbif.load(model_path, backend="numba")
    obs = observations()
    assert_same_values(torch_masked_logits(obs), policy.run({"obs": obs}, ["masked"])["masked"], "numba")
    assert not policy.executor.fallbacks


#: (condition, x, y) specs the static rule refuses, with the words its message names
REFUSED = [
    (ValueSpec("float32", [None, 3]), ValueSpec("float32", [None, 3]), ValueSpec("float32", []),
     "condition is float32, not bool"),
    (ValueSpec("bool", [None, 3]), ValueSpec("float32", [None, 3]), ValueSpec("float64", []),
     r"operands have different dtypes \(float32 and float64\)"),
    (ValueSpec("bool", [None, 3]), ValueSpec("float32", [None, 4]), ValueSpec("float32", []), "do not broadcast"),
    (ValueSpec("bool", [None, 3]), ValueSpec("float32", [2, 3]), ValueSpec("float32", []), "do not broadcast"),
]


@pytest.mark.parametrize("condition, x, y, words", REFUSED)
def test_the_static_rule_refuses_naming_the_problem(condition, x, y, words):
    with pytest.raises(DocumentError, match=words):
        REGISTRY["where"].infer([condition, x, y], {}, 1)


def test_the_static_rule_broadcasts_all_three():
    specs = [ValueSpec("bool", [None, 1, 4]), ValueSpec("int32", [3, 1]), ValueSpec("int32", [])]
    assert REGISTRY["where"].infer(specs, {}, 1) == [ValueSpec("int32", [None, 3, 4])]
