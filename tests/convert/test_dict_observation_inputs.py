"""Both converters take a dict observation space's inputs (obs/KEY, one per key: SPEC section 3.2) as they take any
graph input: the ONNX model's graph inputs and the TorchScript module's `input_names` are the file's observation
inputs, by name and in order, also when pruned to one output; and the saved models, run without SBIF, give what
NumPy computes. (tests/runtimes/test_dict_observations.py runs both through the conformance protocol beside the
other runtimes.)"""
import numpy as np
import pytest

from tests.runtimes.test_dict_observations import BOX_SIZE, CHOICES, dict_observation_model, numpy_answer
from tests.runtimes.test_transpose import dyadic

OBSERVATION_INPUTS = [("obs/a", "float32", ["batch", BOX_SIZE]), ("obs/b", "int32", ["batch"])]


@pytest.fixture(scope="module")
def model_and_feeds():
    rng = np.random.default_rng(21)
    model = dict_observation_model(rng)
    feeds = {"obs/a": dyadic(rng, [6, BOX_SIZE]), "obs/b": rng.integers(0, CHOICES, 6).astype(np.int32)}
    return model, feeds, numpy_answer(model, feeds)


def onnx_inputs(model):
    """(name, numpy dtype name, shape with 'batch') of each graph input of an ONNX model."""
    onnx = pytest.importorskip("onnx")
    found = []
    for value in model.graph.input:
        tensor_type = value.type.tensor_type
        shape = [dim.dim_param or dim.dim_value for dim in tensor_type.shape.dim]
        found.append((value.name, onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name, shape))
    return found


@pytest.mark.parametrize("outputs", [None, ["action"], ["value"]], ids=["every-output", "action", "value"])
def test_the_onnx_model_takes_each_key_s_input_by_its_name(model_and_feeds, tmp_path, outputs):
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from sbif.convert.onnx import convert

    model, feeds, expected = model_and_feeds
    path = str(tmp_path / "dict.onnx")
    converted = convert(model, path, outputs=outputs)
    assert onnx_inputs(converted) == OBSERVATION_INPUTS
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    for name, value in zip(names, session.run(names, feeds)):
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


@pytest.mark.parametrize("outputs", [None, ["action"], ["value"]], ids=["every-output", "action", "value"])
def test_the_torchscript_module_takes_each_key_s_input_by_its_name(model_and_feeds, tmp_path, outputs):
    torch = pytest.importorskip("torch")
    from sbif.convert.torch import save, to_module

    model, feeds, expected = model_and_feeds
    assert to_module(model, outputs).input_names == [name for name, _, _ in OBSERVATION_INPUTS]
    path = str(tmp_path / "dict.pt")
    save(model, path, outputs)
    loaded = torch.jit.load(path)
    answers = loaded({name: torch.from_numpy(value) for name, value in feeds.items()})
    assert sorted(answers) == sorted(outputs or expected)
    for name, value in answers.items():
        np.testing.assert_array_equal(value.numpy(), expected[name], err_msg=name)
