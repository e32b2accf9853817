"""`transpose` end to end: a graph laid out as SB3's torch layers are (NCHW observations, an OIHW convolution kernel,
a Linear weight [out, in], NatureCNN's flatten in C, H, W order), whose tensors stay as torch stores them and whose
transposes re-lay them, runs in every runtime (the NumPy reference, numba, ONNX, TorchScript, C and Node) and gives
what torch computes on the same tensors. Plus the static rule's refusals in every reader, and rank 0 and the word
sizes (1, 2, 4 and 8 bytes) of the copies."""
from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from typing import Dict, List

import numpy as np
import pytest

import sbif
from conformance.protocol import ProcessRuntime, PythonRuntime
from sbif.errors import DocumentError
from sbif.export.graph_builder import GraphBuilder
from sbif.format import SB2_FORMAT_VERSION, SbifFile, encode_document, write_container
from sbif.ops import REGISTRY, ValueSpec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_RUNTIME = [shutil.which("node") or "node", os.path.join(ROOT, "runtimes", "js", "bin", "sbif-protocol.js")]
#: channels, height and width of the observations; the convolution's filters and kernel size
C, H, W, FILTERS, KERNEL = 3, 4, 5, 2, 2
ACTIONS = 3


def dyadic(rng: np.random.Generator, shape: List[int]) -> np.ndarray:
    """Multiples of 1/16 below 2 in magnitude: every product and sum below is exact in float32 in any order, so every
    runtime must give torch's answer exactly, whatever order it sums in."""
    return (rng.integers(-32, 32, shape) / 16).astype(np.float32)


def torch_layout_model(rng: np.random.Generator, convolution: bool) -> SbifFile:
    """obs [B, C, H, W] -> transpose to NHWC -> conv2d with the OIHW kernel transposed to HWIO (without
    `convolution`, none: the Node runtime has no conv2d) -> back to NCHW -> flatten -> linear with the [out, in]
    weight transposed -> logits -> argmax."""
    builder = GraphBuilder()
    obs = builder.add_input("obs", "float32", [None, C, H, W], "observation")
    nhwc = builder.op("transpose", [obs], {"perm": [0, 2, 3, 1]}, name="obs/nhwc")
    if convolution:
        kernel = builder.add_tensor("features/conv/weight", dyadic(rng, [FILTERS, C, KERNEL, KERNEL]), "parameter")
        bias = builder.add_tensor("features/conv/bias", dyadic(rng, [FILTERS]), "parameter")
        hwio = builder.op("transpose", [kernel], {"perm": [2, 3, 1, 0]}, name="features/conv/hwio")
        nhwc = builder.op("conv2d", [nhwc, hwio, bias], {"strides": [1, 1], "padding": "VALID"},
                          name="features/conv")
    nchw = builder.op("transpose", [nhwc], {"perm": [0, 3, 1, 2]}, name="features/nchw")
    flat = builder.op("flatten", [nchw], name="features/flat")
    width = builder.spec(flat).shape[1]
    weight = builder.add_tensor("action_net/weight", dyadic(rng, [ACTIONS, width]), "parameter")
    action_bias = builder.add_tensor("action_net/bias", dyadic(rng, [ACTIONS]), "parameter")
    w = builder.op("transpose", [weight], {"perm": [1, 0]}, name="action_net/w")
    builder.op("linear", [flat, w, action_bias], name="logits")
    builder.op("argmax", ["logits"], name="action")
    builder.declare_output("logits", "the action logits")
    builder.declare_output("action", "the deterministic action")
    document = {
        "format": "sbif", "format_version": SB2_FORMAT_VERSION,
        "provenance": {"producer": "tests/runtimes/test_transpose.py", "exporter": "live", "sb2_version": "2.10.2",
                       "source": {"file_name": "generated.zip", "sha256": "0" * 64, "format": "zip"},
                       "algorithm": "PPO2", "policy_class": "CnnPolicy"},
        "observation_space": {"kind": "box", "shape": [C, H, W], "dtype": "float32", "low": -2.0, "high": 2.0},
        "action_space": {"kind": "discrete", "n": ACTIONS},
        "tensors": builder.tensor_entries, "inputs": builder.inputs, "graph": builder.nodes,
        "outputs": builder.outputs,
        "predict": {"deterministic_default": True, "deterministic_action": "action", "stochastic_action": None},
    }
    return SbifFile(document, builder.tensors)


def torch_answer(model: SbifFile, obs: np.ndarray) -> Dict[str, np.ndarray]:
    """What torch's own layers compute on the file's tensors, in their stored layouts (as SB3's NatureCNN and
    action_net do)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    tensors = {name: torch.from_numpy(np.array(array)) for name, array in model.tensors.items()}
    features = torch.from_numpy(obs)
    if "features/conv/weight" in tensors:
        features = F.conv2d(features, tensors["features/conv/weight"], tensors["features/conv/bias"])
    logits = F.linear(torch.flatten(features, 1), tensors["action_net/weight"], tensors["action_net/bias"])
    return {"logits": logits.numpy(), "action": torch.argmax(logits, dim=1).numpy()}


def written(tmp_path_factory, convolution: bool):
    rng = np.random.default_rng(21)
    model = torch_layout_model(rng, convolution)
    path = str(tmp_path_factory.mktemp("transpose") / "torch_layout.sbif")
    model.write(path)
    obs = dyadic(rng, [7, C, H, W])
    return path, obs, torch_answer(model, obs)


@pytest.fixture(scope="module")
def model_and_answers(tmp_path_factory):
    return written(tmp_path_factory, convolution=True)


@pytest.fixture(scope="module")
def model_without_convolution(tmp_path_factory):
    return written(tmp_path_factory, convolution=False)


def process_runtime(command: List[str]) -> ProcessRuntime:
    return ProcessRuntime(command, cwd=ROOT)


def runtimes(c_runtime) -> Dict[str, object]:
    """name -> a protocol runtime, for every runtime installed here."""
    found: Dict[str, object] = {
        "numpy": PythonRuntime(),
        "c": c_runtime,
    }
    if importlib.util.find_spec("numba") is not None:
        found["numba"] = PythonRuntime(load=lambda path: sbif.load(path, backend="numba"), name="sbif-numba")
    if importlib.util.find_spec("onnxruntime") is not None:  # the converters' runtimes: the modern env only
        from conformance.adapters.onnx_runtime import OnnxRuntime

        found["onnx"] = OnnxRuntime()
    if importlib.util.find_spec("torch") is not None:
        from conformance.adapters.torch_module import TorchRuntime

        found["torch"], found["torchscript"] = TorchRuntime(), TorchRuntime(scripted=True)
    if shutil.which("node"):
        found["node"] = process_runtime(NODE_RUNTIME)
    return found


def test_a_torch_layout_graph_runs_in_every_runtime_as_torch_computes_it(model_and_answers,
                                                                        model_without_convolution, c_runtime):
    found = runtimes(c_runtime)
    assert {"numpy", "c"} <= set(found)
    for name, runtime in found.items():
        path, obs, expected = model_without_convolution if name == "node" else model_and_answers
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a numba fallback to NumPy warns: none here
            answer = runtime.run(path, {"obs": obs}, ["logits", "action"])
        assert answer.ok, (name, answer.message)
        assert np.array_equal(answer.outputs["logits"], expected["logits"]), name
        assert np.array_equal(answer.outputs["action"], expected["action"]), name


def test_the_numba_backend_runs_the_batched_transposes_in_its_kernels(model_and_answers):
    """Both batched transposes are TRANSPOSE instructions; the two of fixed tensors are folded into the weights."""
    pytest.importorskip("numba")
    from sbif.runtime.numba import encoding, program

    path, obs, expected = model_and_answers
    lowered = program.Lowered(SbifFile.read(path))
    assert not lowered.unsupported, lowered.unsupported
    assert {"features/conv/hwio", "action_net/w"} <= set(lowered.folded)  # the transposes of fixed tensors
    opcodes = [instruction.opcode for step in lowered.steps for instruction in step.instructions
               if step.node["op"] == "transpose"]
    assert opcodes == [encoding.TRANSPOSE, encoding.TRANSPOSE]
    policy = sbif.load(path, backend="numba")
    for rows in (1, 7):
        assert np.array_equal(policy.run({"obs": obs[:rows]}, ["logits"])["logits"], expected["logits"][:rows])
    assert policy.executor.single_row("action") is not None
    for row in range(len(obs)):  # one observation: the single-row path, one compiled call
        assert policy.predict(obs[row], deterministic=True)[0] == expected["action"][row]
    assert not policy.executor.fallbacks


#: perms the static rule refuses on x [B, 3, 4], with the words its message names
REFUSED_PERMS = [([0, 2, 3], "not a permutation"), ([0, 1, 1], "not a permutation"), ([0, 1], "not a permutation"),
                 ([0, -1, 1], "negative"), ([0, True, 2], "integers"), ([0, 2.0, 1], "integers"),
                 ([1, 0, 2], "batch")]


@pytest.mark.parametrize("perm, words", REFUSED_PERMS, ids=[str(p) for p, _ in REFUSED_PERMS])
def test_the_static_rule_refuses_a_bad_perm_naming_the_problem(perm, words):
    with pytest.raises(DocumentError, match=words):
        REGISTRY["transpose"].infer([ValueSpec("float32", [None, 3, 4])], {"perm": perm}, 1)


@pytest.mark.parametrize("perm, words", REFUSED_PERMS, ids=[str(p) for p, _ in REFUSED_PERMS])
def test_every_reader_refuses_a_bad_perm(perm, words, model_and_answers, tmp_path, c_runtime):
    """The file with one more transpose node, of the batched observation by `perm`: refused as a DocumentError by
    the reference, C and Node alike; by [0, 1, 2, 3] it loads everywhere."""
    path, _, _ = model_and_answers
    model = SbifFile.read(path)
    readers = {"numpy": PythonRuntime(), "c": c_runtime}
    if shutil.which("node"):
        readers["node"] = process_runtime(NODE_RUNTIME)
    for rank_perm, expected in ((perm + [3], DocumentError.__name__), ([0, 1, 2, 3], None)):
        document = dict(model.document, graph=model.document["graph"] + [
            {"op": "transpose", "inputs": ["obs"], "outputs": ["obs/extra"], "attrs": {"perm": rank_perm}}])
        edited = str(tmp_path / "edited.sbif")
        write_container(edited, model.tensors, encode_document(document))  # unchecked: the readers judge it
        for name, reader in readers.items():
            answer = reader.load(edited)
            if expected is None:
                assert answer.status == "loaded", (name, rank_perm, answer.message)
            else:
                assert (answer.status, answer.error_class) == ("errored", expected), (name, rank_perm, answer)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "int64", "float64", "bool"])
def test_every_element_size_and_rank_0(dtype, c_runtime):
    """One op request per runtime: a batched NCHW -> NHWC of each element size, and a scalar by the empty perm, are
    np.transpose's, bit for bit. (The torch adapter turns a rank-0 input into rank 1, so torch is left out here; the
    op vectors hold it to every other case.)"""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 100, [2, 3, 2, 4]).astype(dtype)
    scalar = np.asarray(rng.integers(0, 100), dtype)
    found = {"numpy": PythonRuntime(), "c": c_runtime}
    if shutil.which("node"):
        found["node"] = process_runtime(NODE_RUNTIME)
    try:
        from conformance.adapters.onnx_runtime import OnnxRuntime

        found["onnx"] = OnnxRuntime()
    except ImportError:
        pass
    for name, runtime in found.items():
        for value, perm in ((x, [0, 2, 3, 1]), (scalar, [])):
            answer = runtime.op("transpose", [value], {"perm": perm})
            assert answer.ok, (name, dtype, answer.message)
            (result,) = answer.outputs.values()
            assert result.dtype == value.dtype and np.array_equal(result, np.transpose(value, perm)), (name, dtype)
