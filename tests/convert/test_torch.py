"""`sbif.convert.torch`: SBIF files as PyTorch modules, eager and TorchScript, held to the conformance suite against
the NumPy reference (every family, and Hypothesis-drawn models), SB2's golden packs (with TensorFlow's op vectors)
and the real zoo models; TorchScript files that run without SBIF; the state dict; and the errors a user can meet."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conformance.adapters.torch_module import TorchRuntime  # noqa: E402
from conformance.checks import Config, vector_files  # noqa: E402
from conformance.generate import fuzz  # noqa: E402
from conformance.golden import GoldenSource  # noqa: E402
from conformance.models import EXAMPLES, ModelInfo, family_status, write_model  # noqa: E402
from conformance.protocol import ProcessRuntime, PythonRuntime  # noqa: E402
from conformance.rules import ulp_comparison  # noqa: E402
from conformance.runner import KnownFailures, OracleSource, run_suite  # noqa: E402

import sbif  # noqa: E402
from sbif.convert.torch import OPS, make_node, run_op, save, state_key, to_module  # noqa: E402
from sbif.errors import ExportError, FileFormatError, InputError, UnsupportedError  # noqa: E402
from sbif.export import export  # noqa: E402
from sbif.format import SbifFile  # noqa: E402
from sbif.ops import REGISTRY, ValueSpec, get_op  # noqa: E402
from sbif.ops.elementwise import Selu, Sigmoid, Softplus  # noqa: E402
from tests.zoo import ZOO, require_zoo, zoo_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "conformance", "golden")
KNOWN_FAILURES = os.path.join(ROOT, "conformance", "known-failures.txt")
MODEL_CHECKS = ["deterministic", "sampling", "edge_observations", "recurrent_sequence"]
SCRIPTED_PROCESS = [sys.executable, "-m", "conformance.adapters.torch_module", "--scripted"]


@pytest.fixture(scope="module", params=["eager", "scripted"])
def runtime(request):
    """The converter as a runtime: eager modules in-process, and TorchScript modules (scripted, saved and loaded
    back) in a process speaking the protocol (`python -m conformance.adapters.torch_module --scripted`)."""
    if request.param == "eager":
        yield TorchRuntime()
        return
    process = ProcessRuntime(SCRIPTED_PROCESS, cwd=ROOT)
    yield process
    process.close()


@pytest.fixture(scope="module")
def reference():
    """The NumPy reference runtime, in-process (a `Policy` over the NumPy ops, whatever `sbif.load` prefers)."""
    return PythonRuntime(load=lambda path: sbif.Policy(SbifFile.read(path), backend="numpy"))


@pytest.fixture(scope="module")
def example_models(tmp_path_factory):
    """family -> path of its conformance.models example, for every family SBIF builds."""
    directory = str(tmp_path_factory.mktemp("examples"))
    return {family: write_model(EXAMPLES[family], directory)
            for family, problem in family_status().items() if problem is None}


def observation_feeds(path, batch, seed=0):
    """Graph inputs for `batch` observations of a file: observations, first-step state and mask, noise."""
    info = ModelInfo(path)
    rng = np.random.default_rng(seed)
    feeds = dict(obs=info.observations(batch, rng), **info.initial_inputs(batch))
    feeds.update(info.noise(batch, rng))
    return feeds


def as_tensors(feeds):
    return {name: torch.from_numpy(value) for name, value in feeds.items()}


# -- the op set -----------------------------------------------------------------------------------------------------
def test_every_op_is_implemented(runtime):
    assert set(OPS) == set(REGISTRY)
    assert set(runtime.ops) == set(REGISTRY)
    assert set(runtime.features) == {"run", "op", "recurrent", "sampling", "load"}
    assert runtime.hello["runtime"]["name"] in ("sbif-torch", "sbif-torchscript")


def test_an_op_the_converter_lacks_is_refused_by_name(example_models, monkeypatch):
    monkeypatch.setattr("sbif.convert.torch.OPS", tuple(op for op in OPS if op != "tanh"))
    with pytest.raises(UnsupportedError, match="op 'tanh' is not implemented by the PyTorch converter"):
        to_module(example_models["mlp"])


UNARY_FLOAT_OPS = ["exp", "log", "neg", "tanh", "erf", "sigmoid", "relu", "relu6", "elu", "selu", "softplus", "softsign",
                   "swish", "round_half_even", "softmax", "reduce_mean"]


@pytest.mark.parametrize("op", UNARY_FLOAT_OPS + ["argmax", "leaky_relu"])
@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
def test_float64_ops_match_the_reference(op, scripted):
    """The vectors hold TF's float32 answers; float64 (VecNormalize graphs, float64 Box actions) follows the same
    formulas with float64 thresholds and constants: compared with the NumPy reference, within 4 ULP."""
    edges = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -1e-300, 1e-20, -5.0, -18.5, 18.5, -40.0, 40.0, 700.0, -745.0, 1e300,
             -1e300, np.inf, -np.inf, np.nan]
    rng = np.random.default_rng(len(op))
    x = np.concatenate([edges, rng.standard_normal(28) * 10.0]).reshape(6, 8)
    attrs = {"alpha": 0.2} if op == "leaky_relu" else {}
    with np.errstate(all="ignore"):
        expected = get_op(op).compute(x, **attrs)
    (actual,) = run_op(op, [torch.from_numpy(x)], attrs, scripted=scripted)
    comparison = ulp_comparison(np.asarray(expected), actual.numpy(), {"ulp": 4, "abs": 1e-15}, None)
    assert comparison.ok, comparison.detail


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "int64"])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "less", "clip", "argmax", "where"])
def test_integer_ops_match_the_reference(op, dtype):
    """Every integer dtype, including uint16, for which torch has no addition, comparison or argmax: wrapping
    arithmetic, comparisons, clipping and argmax ties as the NumPy reference computes them."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(7)
    x = np.concatenate([[info.min, info.max, 0, 1, info.max, info.min],
                        rng.integers(info.min, info.max, size=18, endpoint=True)]).astype(dtype).reshape(4, 6)
    y = np.roll(x, 1)
    arrays = {"clip": [x, np.minimum(x[0], y[0]), np.maximum(x[0], y[0])], "argmax": [x],
              "where": [x < y, x, y[0]]}.get(op, [x, y])
    with np.errstate(over="ignore"):
        expected = get_op(op).compute(*arrays)
    (actual,) = run_op(op, [torch.from_numpy(a) for a in arrays], {})
    assert actual.numpy().dtype == expected.dtype and np.array_equal(actual.numpy(), expected)


def test_run_op_evaluates_constants_as_numpy_does():
    for value, dtype in [(0.1, "float32"), (16777217, "float32"), (-3, "int64"), (200, "uint8"), (True, "bool")]:
        (tensor,) = run_op("constant", [], {"value": value, "dtype": dtype})
        assert tensor.numpy().dtype == np.dtype(dtype) and tensor.numpy() == np.asarray(value, dtype)


# -- every family against the NumPy reference ------------------------------------------------------------------
def test_every_family_matches_the_reference(runtime, reference, example_models):
    report = run_suite([OracleSource(sorted(example_models.values()), reference)], runtime, checks=MODEL_CHECKS,
                       config=Config(batches=[1, 6], envs=[2], steps=4))
    assert report.ok, report.render()
    assert all(r.status == "pass" or "not applicable" in r.message for r in report.results), report.render()
    passed = {(os.path.basename(r.model).split("-")[0], r.check) for r in report.results if r.status == "pass"}
    assert {(family, "deterministic") for family in example_models} <= passed
    assert {("lstm", "recurrent_sequence"), ("cnn_lstm", "recurrent_sequence"), ("dqn", "sampling")} <= passed


def test_fuzzing_finds_nothing(reference):
    result = fuzz(TorchRuntime(), reference, ["mlp", "lstm", "dqn", "vecnormalize", "ops"],
                  ["deterministic", "sampling", "edge_observations", "recurrent_sequence", "op_vectors"],
                  max_examples=20, shrink=False)
    assert not result.caught, result.failure


# -- SB2's recorded answers -----------------------------------------------------------------------------------------
def test_golden_packs_and_op_vectors(runtime):
    report = run_suite([GoldenSource([GOLDEN])], runtime, checks=MODEL_CHECKS + ["op_vectors"],
                       known=KnownFailures.read(KNOWN_FAILURES))
    assert report.ok, report.render()
    skipped = {r.key: r.message for r in report.results if r.status == "skip"}
    assert all("not recorded" in message or "not in the pack" in message for message in skipped.values()), skipped
    (vectors,) = [r for r in report.results if r.check == "op_vectors"]
    assert vectors.status == "pass" and not vectors.message, vectors.message  # no case skipped
    assert vectors.probes == sum(len(document["cases"]) for document in vector_files().values())


# -- the zoo --------------------------------------------------------------------------------------------------------
ZOO_MODELS = zoo_models()


def test_zoo_is_present():
    require_zoo(ZOO_MODELS)


@pytest.mark.parametrize("relative", ZOO_MODELS)
def test_zoo_model(relative, tmp_path, reference):
    """Every zoo model the safe exporter reads (with the zoo's observation normalization, which `export` finds
    beside the model), converted and compared with the NumPy runtime on 64 observations, eager and scripted."""
    path = os.path.join(ZOO, relative)
    sbif_file, _ = export(path)
    target = str(tmp_path / "model.sbif")
    sbif_file.write(target)
    for scripted in (False, True):
        report = run_suite([OracleSource([target], reference)], TorchRuntime(scripted=scripted),
                           checks=["deterministic", "sampling", "edge_observations"], config=Config(batches=[64]))
        assert report.ok, report.render()
        assert any(r.check == "deterministic" and r.status == "pass" for r in report.results), report.render()


# -- TorchScript files and the module's interface -----------------------------------------------------------------
RUN_WITHOUT_SBIF = """
import sys
sys.modules["sbif"] = None  # any import of SBIF fails
import torch
for model, inputs, outputs in zip(*[iter(sys.argv[1:])] * 3):
    module = torch.jit.load(model)
    feeds = torch.load(inputs)
    torch.save({"all": module(feeds), "action": module.run(feeds, ["action"]), "names": module.output_names},
               outputs)
"""


def test_saved_files_run_without_sbif(example_models, tmp_path):
    """`save` writes TorchScript that `torch.jit.load` runs in a process where SBIF cannot be imported, with the
    eager module's outputs bit for bit (the same ops in the same order): recurrent, float64 and DQN sampling."""
    families = ["lstm", "vecnormalize", "dqn"]
    arguments, feeds = [], {}
    for family in families:
        paths = [str(tmp_path / "{}.{}".format(family, suffix)) for suffix in ("pt", "inputs.pt", "outputs.pt")]
        save(example_models[family], paths[0])
        feeds[family] = as_tensors(observation_feeds(example_models[family], 9))
        torch.save(feeds[family], paths[1])
        arguments += paths
    subprocess.run([sys.executable, "-c", RUN_WITHOUT_SBIF] + arguments, check=True, cwd=str(tmp_path), timeout=300)
    for family in families:
        loaded = torch.load(str(tmp_path / "{}.outputs.pt".format(family)))
        expected = to_module(example_models[family])(feeds[family])
        document = SbifFile.read(example_models[family]).document
        assert loaded["names"] == [entry["name"] for entry in document["outputs"]]
        assert set(loaded["all"]) == set(expected)
        for name, value in expected.items():
            assert value.dtype == loaded["all"][name].dtype, (family, name)
            assert torch.equal(torch.nan_to_num(value), torch.nan_to_num(loaded["all"][name])), (family, name)
        assert torch.equal(loaded["action"]["action"], expected["action"])


def test_save_refuses_an_unwritable_target(example_models, tmp_path):
    with pytest.raises(ExportError, match="cannot write"):
        save(example_models["mlp"], str(tmp_path / "missing-directory" / "model.pt"))
    assert os.listdir(str(tmp_path)) == []


def test_state_dict_holds_the_documents_tensors(example_models):
    for family in ("mlp", "vecnormalize"):
        model = SbifFile.read(example_models[family])
        module = to_module(model)
        state = module.state_dict()
        expected = {"tensors.{}.value".format(state_key(entry["name"], set())): entry
                    for entry in model.document["tensors"]}
        assert set(state) == set(expected)  # constant nodes are not weights: not in the state dict
        for key, entry in expected.items():
            assert str(state[key].dtype) == "torch." + entry["dtype"]
            assert np.array_equal(state[key].numpy(), model.tensors[entry["name"]])
        scripted = torch.jit.script(module)
        assert set(expected) <= set(scripted.state_dict())
    assert "tensors.model_pi_fc0_w_0.value" in to_module(example_models["mlp"]).state_dict()
    assert str(to_module(example_models["vecnormalize"]).state_dict()[
        "tensors.sbif_vecnormalize_mean.value"].dtype) == "torch.float64"


def test_loaded_state_dict_is_what_runs(example_models):
    module = to_module(example_models["mlp"])
    feeds = as_tensors(observation_feeds(example_models["mlp"], 4))
    module.load_state_dict({key: torch.zeros_like(value) for key, value in module.state_dict().items()})
    outputs = module.run(feeds, ["value", "logits", "probabilities"])
    assert torch.equal(outputs["value"], torch.zeros(4)) and torch.equal(outputs["logits"], torch.zeros(4, 3))
    assert torch.allclose(outputs["probabilities"], torch.full((4, 3), 1 / 3))


def test_state_keys_are_unique_identifiers():
    taken = set()
    keys = [state_key(name, taken) for name in ["model/pi/w:0", "model_pi_w_0", "0/b", "items", "", "é"]]
    assert keys == ["model_pi_w_0", "model_pi_w_0_2", "_0_b", "items_2", "_", "__2"]
    assert all(key.isidentifier() for key in keys)


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
def test_run_computes_only_what_the_outputs_need(scripted, example_models):
    module = to_module(example_models["lstm"])
    module = torch.jit.script(module) if scripted else module
    feeds = as_tensors(observation_feeds(example_models["lstm"], 5))
    without_noise = {name: value for name, value in feeds.items() if name != "noise_uniform"}
    deterministic = module.run(without_noise, ["action", "value", "state_out"])  # no noise: sampling not run
    assert set(deterministic) == {"action", "value", "state_out"}
    assert deterministic["action"].dtype == torch.int64 and deterministic["action"].shape == (5,)
    assert set(module.run({"obs": feeds["obs"]}, ["model/pi_fc0/act"])) == {"model/pi_fc0/act"}  # any graph value
    everything = module(feeds)
    assert set(everything) == {"state_out", "value", "action", "action_sample", "logits", "probabilities"}
    assert torch.equal(everything["action"], deterministic["action"])


def refusal(scripted):
    """What a refused input raises: InputError, or TorchScript's error naming it."""
    return pytest.raises(torch.jit.Error if scripted else InputError)


@pytest.mark.parametrize("scripted", [False, True], ids=["eager", "scripted"])
def test_inputs_are_checked(scripted, example_models):
    module = to_module(example_models["lstm"])
    module = torch.jit.script(module) if scripted else module
    feeds = as_tensors(observation_feeds(example_models["lstm"], 3))
    cases = [
        ({}, ["action"], "missing input 'obs'"),
        (dict(feeds, noise_uniform=None), ["action_sample"], "missing input 'noise_uniform'"),
        (feeds, ["nothing"], "unknown output 'nothing'; this module computes state_out, value"),
        (dict(feeds, obs=feeds["obs"].double()), ["action"], "input 'obs' must be float32, got float64"),
        (dict(feeds, obs=feeds["obs"][:, :2]), ["action"], r"input 'obs' must have shape \[batch, 3\], got \[3, 2\]"),
        (dict(feeds, mask=feeds["mask"][:2]), ["action"], "input 'mask' has batch size 2 but another input has 3"),
    ]
    for inputs, outputs, message in cases:
        inputs = {name: value for name, value in inputs.items() if value is not None}
        with refusal(scripted) as raised:
            module.run(inputs, outputs)
        assert raised.match(message)
        if scripted:
            assert "InputError" in str(raised.value)


def test_models_are_read_and_validated(example_models, tmp_path):
    assert isinstance(to_module(SbifFile.read(example_models["mlp"])), torch.nn.Module)
    broken = tmp_path / "broken.sbif"
    broken.write_bytes(b"\x01")
    with pytest.raises(FileFormatError):
        to_module(str(broken))


def test_nodes_keep_their_attributes_and_the_constants_their_types_determine():
    x = ValueSpec("float32", (None, 6, 7, 2))
    w, b = ValueSpec("float32", (3, 4, 2, 5)), ValueSpec("float32", (5,))
    node = make_node("conv2d", ["x", "w", "b"], ["y"], {"strides": [2, 1], "padding": "SAME"}, [x, w, b])
    # rows: 6 by 3 every 2 -> 3 windows over 7 rows, (0, 1); columns: 7 by 4 every 1 -> 7 over 10, (1, 2)
    assert (node.integers, node.pads) == ([2, 1], [0, 0, 1, 2, 0, 1])
    assert make_node("conv2d", ["x", "w", "b"], ["y"], {"strides": [2, 1], "padding": "VALID"}, [x, w, b]).pads == []
    node = make_node("split", ["x"], ["a", "b"], {"sizes": [1, 3], "axis": -1}, [ValueSpec("float32", (None, 4))])
    assert (node.integers, node.integer) == ([1, 3], -1)
    row = ValueSpec("float32", (None, 4))
    assert make_node("leaky_relu", ["x"], ["y"], {"alpha": 0.2}, [row]).numbers == [0.2]
    assert make_node("selu", ["x"], ["y"], {}, [row]).numbers == [Selu.SCALE_ALPHA, Selu.SCALE]
    assert make_node("softplus", ["x"], ["y"], {}, [row]).numbers == [float(Softplus.threshold("float32"))]
    assert make_node("swish", ["x"], ["y"], {}, [row]).numbers == [Sigmoid.FLOAT32_CUTOFF]
    assert make_node("sigmoid", ["x"], ["y"], {}, [ValueSpec("float64", (None, 4))]).numbers == []  # no cut-off
    assert make_node("argmax", ["x"], ["y"], {}, [ValueSpec("int32", (None, 4))]).numbers == []


# -- without PyTorch -------------------------------------------------------------------------------------------------
def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    monkeypatch.delitem(sys.modules, "sbif.convert.torch")
    with pytest.raises(UnsupportedError, match=r"needs PyTorch \(Python 3\.8 or later\): pip install torch"):
        importlib.import_module("sbif.convert.torch")
    with pytest.raises(UnsupportedError, match="pip install torch"):
        TorchRuntime()


def test_importing_sbif_does_not_import_torch(example_models):
    code = ("import sys, sbif, sbif.convert; from sbif.format import SbifFile; "
            "sbif.Policy(SbifFile.read(sys.argv[1])).predict([0.1, 0.2, 0.3, 0.4]); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code, example_models["mlp"]], check=True, cwd=ROOT, timeout=120)
