"""Converted models pruned to the outputs a deployer asks for: `session.run(["action"], {"obs": x})` alone answers
as `predict(x, deterministic=True)`, with no noise input, no critic weights, and the recurrent state kept where the
action reads it; the names users type (`action`, `stochastic_action`, `logits`...) resolve to the
document's outputs, and an unknown one is refused with the list of names the file has. Also the format-level
`sbif.format.subgraph` both converters (and the reference executor's plan) rest on."""
import os

import numpy as np
import pytest

import sbif
from conformance.models import EXAMPLES, ModelInfo, write_model
from sbif.errors import InputError
from sbif.export import export
from sbif.format import SbifFile
from sbif.format.subgraph import (deployed_subgraph, inputs_of_outputs, output_aliases, required_subgraph,
                                  select_outputs)
from sbif.runtime.error_scales import ErrorScales, result_agreement
from sbif.runtime.executor import GraphExecutor
from tests.factories import rewrite_document

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "demo", "ppo2_cartpole.zip")
#: the models of the brief: SB2's own CartPole PPO2 (safe loader), VecNormalize, DQN, SAC, TD3, and an LSTM
FEED_FORWARD = ["cartpole", "vecnormalize", "dqn", "sac", "td3"]
#: per model, a tensor only a critic or the value head reads: a deployed actor must not carry it
CRITIC_TENSORS = {"cartpole": "model/vf/w:0", "vecnormalize": "model/vf/w:0", "sac": "model/values_fn/qf1/fc0/kernel:0",
                  "td3": "model/values_fn/qf1/fc0/kernel:0"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> path of an .sbif file."""
    directory = str(tmp_path_factory.mktemp("models"))
    paths = {family: write_model(EXAMPLES[family], directory)
             for family in ("vecnormalize", "dqn", "sac", "td3", "lstm", "mlp")}
    cartpole, _ = export(DEMO, loader="safe")
    paths["cartpole"] = os.path.join(directory, "cartpole.sbif")
    cartpole.write(paths["cartpole"])
    return paths


def observations(path, rows, seed=0):
    """`rows` observations as the `obs` input takes them (float64 for VecNormalize files)."""
    return ModelInfo(path).observations(rows, np.random.default_rng(seed))


def assert_same_action(path, feeds, actual, expected):
    """Discrete actions equal; float actions within SPEC section 6's bound of the NumPy reference's."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if np.issubdtype(expected.dtype, np.integer):
        assert np.array_equal(actual, expected)
        return
    reference, scales = ErrorScales(SbifFile.read(path)).run(feeds, ["action"])
    assert np.array_equal(reference["action"], expected)
    assert result_agreement(expected, actual, scales["action"]) <= 1.0


# -- ONNX ----------------------------------------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from sbif.convert.onnx import convert, to_onnx  # noqa: E402


def session_of(model):
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", FEED_FORWARD)
def test_onnx_action_alone_answers_as_predict(name, models):
    path = models[name]
    model = to_onnx(path, outputs=["action"])
    session = session_of(model)
    assert [i.name for i in session.get_inputs()] == ["obs"]  # no noise input for a deterministic action
    assert [o.name for o in session.get_outputs()] == ["action"]
    x = observations(path, 32)
    actual, = session.run(["action"], {"obs": x})
    expected, state = sbif.load(path, backend="numpy").predict(x, deterministic=True)
    assert state is None
    assert_same_action(path, {"obs": x}, actual, expected)
    initializers = {init.name for init in model.graph.initializer}
    document = SbifFile.read(path).document
    needed = set(required_subgraph(document, ["action"]).tensors)
    assert initializers & {e["name"] for e in document["tensors"]} == needed
    if name in CRITIC_TENSORS:
        assert CRITIC_TENSORS[name] not in initializers


def test_onnx_vecnormalize_action_takes_float64_observations(models):
    session = session_of(to_onnx(models["vecnormalize"], outputs=["action"]))
    assert session.get_inputs()[0].type == "tensor(double)"


def test_onnx_lstm_action_keeps_state_and_mask(models):
    """The action reads the state: the state and mask inputs stay, and the next state is an output to feed back."""
    path = models["lstm"]
    session = session_of(to_onnx(path, outputs=["action"]))
    assert [i.name for i in session.get_inputs()] == ["obs", "state", "mask"]
    assert [o.name for o in session.get_outputs()] == ["action", "state_out"]
    policy = sbif.load(path, backend="numpy")
    state = np.zeros((5, 8), np.float32)
    expected_state = None
    for step in range(4):
        x = observations(path, 5, seed=step)
        mask = np.array([step == 2, False, True, False, step == 3], np.float32)
        action, state = session.run(["action", "state_out"], {"obs": x, "state": state, "mask": mask})
        expected, expected_state = policy.predict(x, expected_state, mask.astype(bool), deterministic=True)
        assert np.array_equal(action, expected), step
        assert np.allclose(state, expected_state, rtol=1e-5, atol=1e-6), step


def test_onnx_aliases_name_the_documents_outputs(models):
    dqn = session_of(to_onnx(models["dqn"], outputs=["logits", "stochastic_action"]))
    assert [o.name for o in dqn.get_outputs()] == ["q_values", "action_sample"]
    assert [i.name for i in dqn.get_inputs()] == ["obs", "noise_uniform"]
    sac = session_of(to_onnx(models["sac"], outputs=["deterministic_action", "value", "action"]))
    assert [o.name for o in sac.get_outputs()] == ["action", "value"]  # each once, in the order asked


def test_onnx_default_keeps_every_input_and_output(models):
    model = to_onnx(models["lstm"])
    document = SbifFile.read(models["lstm"]).document
    assert [i.name for i in model.graph.input] == [e["name"] for e in document["inputs"]]
    assert [o.name for o in model.graph.output] == [e["name"] for e in document["outputs"]]


def test_convert_writes_the_pruned_model(models, tmp_path):
    target = str(tmp_path / "actor.onnx")
    model = convert(models["cartpole"], target, outputs=["action"])
    assert onnx.load(target).SerializeToString() == model.SerializeToString()
    assert "pruned to the outputs action" in model.doc_string


@pytest.mark.parametrize("outputs, words", [
    (["nope"], ["unknown output 'nope'", "value, action, action_sample, logits, probabilities",
                "stochastic_action = action_sample"]),
    (["action", ""], ["unknown output ''"]),
    ("action", ["a list of names", "['action']"]),
    ([], ["no outputs asked for"]),
    (["action", ["value"]], ["output names are strings, got ['value']"]),
])
def test_unknown_outputs_are_refused_with_the_names_the_file_has(models, outputs, words):
    with pytest.raises(InputError) as refused:
        to_onnx(models["mlp"], outputs=outputs)
    for word in words:
        assert word in str(refused.value)


def test_a_file_without_a_stochastic_action_says_so(models, tmp_path):
    """TD3/DDPG with Ornstein-Uhlenbeck noise: SB2's sampling needs state the file cannot hold (SPEC 5.2)."""
    def no_sampling(document):
        document["predict"]["stochastic_action"] = None

    path = rewrite_document(models["td3"], str(tmp_path / "td3-ou.sbif"), no_sampling)
    with pytest.raises(InputError, match="unknown output 'stochastic_action'.*no stochastic action"):
        to_onnx(path, outputs=["stochastic_action"])


# -- TorchScript ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_converter():
    pytest.importorskip("torch")
    from sbif.convert import torch as converter

    return converter


@pytest.mark.parametrize("name", FEED_FORWARD)
def test_torch_action_alone_answers_as_predict(name, models, torch_converter):
    import torch

    path = models[name]
    module = torch_converter.to_module(path, outputs=["action"])
    assert module.input_names == ["obs"] and module.output_names == ["action"]
    x = observations(path, 32)
    actual = module({"obs": torch.from_numpy(x)})["action"].numpy()
    expected, _ = sbif.load(path, backend="numpy").predict(x, deterministic=True)
    assert_same_action(path, {"obs": x}, actual, expected)
    stored = set(module.tensor_names.values())
    assert stored == set(required_subgraph(SbifFile.read(path).document, ["action"]).tensors)
    if name in CRITIC_TENSORS:
        assert CRITIC_TENSORS[name] not in stored


def test_torch_lstm_action_keeps_state_and_mask(models, torch_converter):
    import torch

    module = torch_converter.to_module(models["lstm"], outputs=["action"])
    assert module.input_names == ["obs", "state", "mask"] and module.output_names == ["action", "state_out"]
    x = observations(models["lstm"], 3)
    result = module({"obs": torch.from_numpy(x), "state": torch.zeros(3, 8), "mask": torch.zeros(3)})
    expected, expected_state = sbif.load(models["lstm"], backend="numpy").predict(x, deterministic=True)
    assert np.array_equal(result["action"].numpy(), expected)
    assert np.allclose(result["state_out"].numpy(), expected_state, rtol=1e-5, atol=1e-6)


def test_torch_unknown_output_is_refused(models, torch_converter):
    with pytest.raises(InputError, match="unknown output 'qf3'.*qf1, qf2"):
        torch_converter.to_module(models["sac"], outputs=["qf3"])


def test_torch_default_keeps_every_tensor(models, torch_converter):
    module = torch_converter.to_module(models["cartpole"])
    document = SbifFile.read(models["cartpole"]).document
    assert set(module.tensor_names.values()) == {e["name"] for e in document["tensors"]}
    assert module.output_names == [e["name"] for e in document["outputs"]]


# -- sbif.format.subgraph --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", sorted(EXAMPLES))
def test_required_subgraph_is_the_executors_plan(family, tmp_path):
    """What the NumPy reference runs for an output set is what a converter keeps (one walk, two homes today)."""
    sbif_file = SbifFile.read(write_model(EXAMPLES[family], str(tmp_path)))
    document = sbif_file.document
    executor = GraphExecutor(sbif_file)
    names = [entry["name"] for entry in document["outputs"]]
    for outputs in [[name] for name in names] + [names, names[:2]]:
        steps, inputs = executor.plan(outputs)
        part = required_subgraph(document, outputs)
        assert [step.outputs for step in steps] == [tuple(node["outputs"]) for node in part.nodes]
        assert list(part.node_indices) == [document["graph"].index(node) for node in part.nodes]
        assert set(part.inputs) == inputs
        read = {name for node in part.nodes for name in node["inputs"]}
        assert list(part.tensors) == [e["name"] for e in document["tensors"] if e["name"] in read]
        if len(outputs) == 1:
            assert inputs_of_outputs(document)[outputs[0]] == part.inputs


def test_required_subgraph_refuses_unknown_names(models):
    document = SbifFile.read(models["mlp"]).document
    with pytest.raises(InputError, match="unknown output.*nope; this file computes value, action"):
        required_subgraph(document, ["action", "nope"])
    assert required_subgraph(document, ["obs"]).inputs == ("obs",)  # any graph value may be asked for


def test_aliases_follow_the_predict_contract(models):
    document = SbifFile.read(models["dqn"]).document
    assert output_aliases(document) == {"deterministic_action": "action", "stochastic_action": "action_sample",
                                        "logits": "q_values"}
    lstm = SbifFile.read(models["lstm"]).document
    assert output_aliases(lstm)["state_output"] == "state_out"
    assert select_outputs(lstm, ["value"]) == ["value", "state_out"]
    assert select_outputs(lstm, None) == [e["name"] for e in lstm["outputs"]]
    assert deployed_subgraph(lstm, None).node_indices == tuple(range(len(lstm["graph"])))
