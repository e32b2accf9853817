"""`sbif.convert.onnx`: SBIF files as standard ONNX models, run by onnxruntime and held to the conformance suite
against the NumPy reference (every family), SB2's golden packs (with TensorFlow's op vectors) and the real zoo
models; plus the model's interface (names, dynamic batch, metadata) and the errors a user can meet."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from conformance.adapters.onnx_runtime import FEATURES, OnnxPolicy, OnnxRuntime, session_for  # noqa: E402
from conformance.checks import Config  # noqa: E402
from conformance.generate import fuzz  # noqa: E402
from conformance.golden import GoldenSource  # noqa: E402
from conformance.models import EXAMPLES, FAMILIES, ModelInfo, write_model  # noqa: E402
from conformance.protocol import ProcessRuntime, PythonRuntime  # noqa: E402
from conformance.runner import KnownFailures, OracleSource, run_suite  # noqa: E402

import sbif  # noqa: E402
from sbif.convert.onnx import LOWERINGS, MIN_OPSET, convert, to_onnx  # noqa: E402
from sbif.errors import UnsupportedError  # noqa: E402
from sbif.export import export  # noqa: E402
from sbif.format import SbifFile  # noqa: E402
from sbif.ops import REGISTRY  # noqa: E402
from sbif.runtime.error_scales import ErrorScales, result_agreement  # noqa: E402
from tests.zoo import ZOO, require_zoo, zoo_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "conformance", "golden")
KNOWN_FAILURES = os.path.join(ROOT, "conformance", "known-failures.txt")
MODEL_CHECKS = ["deterministic", "sampling", "edge_observations", "recurrent_sequence"]


@pytest.fixture(scope="module")
def runtime():
    return OnnxRuntime()


@pytest.fixture(scope="module")
def reference():
    return PythonRuntime()


@pytest.fixture(scope="module")
def example_models(tmp_path_factory):
    """family -> path of its conformance.models example, for every family."""
    directory = str(tmp_path_factory.mktemp("examples"))
    return {family: write_model(spec, directory) for family, spec in EXAMPLES.items()}


def unexpected_skips(report):
    """Skipped checks, but those that cannot apply to the model (a recurrent check of a feed-forward policy...)."""
    return {r.key: r.message for r in report.results if r.status == "skip" and "not applicable" not in r.message}


# -- the op set -----------------------------------------------------------------------------------------------------
def test_every_op_has_a_lowering():
    assert set(LOWERINGS) == set(REGISTRY)


def test_an_op_without_a_lowering_is_refused_by_name(example_models, monkeypatch):
    monkeypatch.delitem(LOWERINGS, "tanh")
    with pytest.raises(UnsupportedError, match="op 'tanh' has no ONNX lowering"):
        to_onnx(example_models["mlp"])


# -- every family against the NumPy reference ------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_family_converts_to_standard_onnx(family, example_models):
    model = to_onnx(example_models[family])
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert {node.domain for node in model.graph.node} == {""}


def test_every_family_agrees_with_the_reference(runtime, reference, example_models):
    report = run_suite([OracleSource(sorted(example_models.values()), reference)], runtime, checks=MODEL_CHECKS)
    assert report.ok, report.render()
    assert not unexpected_skips(report), report.render()
    passed = {(r.model.split("-")[0], r.check) for r in report.results if r.status == "pass"}
    assert {(family, check) for family in FAMILIES for check in ("deterministic", "edge_observations")} <= passed
    assert {("lstm", "recurrent_sequence"), ("cnn_lstm", "recurrent_sequence"), ("dqn", "sampling"),
            ("sac", "sampling"), ("cnn", "sampling")} <= passed


def test_fuzzed_models_agree_with_the_reference(runtime, reference):
    """Hypothesis models of every family but the CNN ones, which the examples and golden packs cover: the generator's
    scale-3 CNNs reach logits of 250, where NumPy and onnxruntime alike are 2-3e-5 from the float64 value."""
    families = [family for family in FAMILIES if not family.startswith("cnn")]
    result = fuzz(runtime, reference, families, MODEL_CHECKS, max_examples=30, shrink=False)
    assert not result.caught, result.failure


@pytest.mark.parametrize("opset", [MIN_OPSET, 18])
def test_other_opsets(opset, reference, example_models):
    """Opsets before and after ReduceMax/ReduceMean took their axes as an input."""
    models = [example_models[family] for family in ("lstm", "dqn", "sac")]
    report = run_suite([OracleSource(models, reference)], OnnxRuntime(opset), checks=["deterministic", "sampling"],
                       config=Config(batches=[7]))
    assert report.ok and report.counts()["pass"] == 6, report.render()


def test_unsupported_opsets_are_refused(example_models):
    for opset in (MIN_OPSET - 1, onnx.defs.onnx_opset_version() + 1):
        with pytest.raises(UnsupportedError, match="opset {} is not supported".format(opset)):
            to_onnx(example_models["mlp"], opset)


# -- SB2's answers -------------------------------------------------------------------------------------------------
def test_golden_packs_and_op_vectors(runtime):
    """SB2's recorded answers, and TensorFlow's answers for every op: all pass but the known SB2 disagreements;
    only what is not recorded and the predict interface (not part of an ONNX model) are skipped."""
    report = run_suite([GoldenSource([GOLDEN])], runtime, known=KnownFailures.read(KNOWN_FAILURES))
    assert report.ok, report.render()
    skipped = {r.key: r.message for r in report.results if r.status == "skip"}
    assert all("not recorded" in m or "'predict' feature" in m for m in skipped.values()), skipped
    vectors = [r for r in report.results if r.check == "op_vectors"][0]
    assert vectors.status == "pass" and vectors.probes > 300 and not vectors.message, vectors.as_dict()


# -- the real zoo ----------------------------------------------------------------------------------------------------
ZOO_MODELS = zoo_models()


def test_zoo_is_present():
    require_zoo(ZOO_MODELS)


@pytest.mark.parametrize("relative", ZOO_MODELS)
def test_zoo_model(relative, runtime, reference, tmp_path):
    """Every zoo model the safe exporter reads, converted and compared with the NumPy runtime on 64 observations
    (plus sampled actions and edge observations)."""
    source = os.path.join(ZOO, relative)
    sbif_file, _ = export(source, loader="safe")
    path = str(tmp_path / "model.sbif")
    sbif_file.write(path)
    report = run_suite([OracleSource([path], reference)], runtime, checks=MODEL_CHECKS,
                       config=Config(batches=[64]))
    assert report.ok, report.render()
    assert not unexpected_skips(report), report.render()
    assert report.counts()["pass"] >= 2, report.render()


# -- the model's interface -------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["lstm", "vecnormalize", "cnn"])
@pytest.mark.parametrize("rows", [1, 300])
def test_dynamic_batch(family, rows, example_models):
    path = example_models[family]
    info = ModelInfo(path)
    session = session_for(to_onnx(path))
    rng = np.random.default_rng(rows)
    feeds = dict(obs=info.observations(rows, rng), **info.noise(rows, rng))
    if info.recurrent:
        feeds[info.recurrent["state_input"]] = rng.standard_normal((rows, info.state_size)).astype(np.float32)
        feeds[info.recurrent["mask_input"]] = (rng.random(rows) < 0.5).astype(np.float32)
    names = list(info.outputs)
    actual = dict(zip(names, session.run(names, feeds)))
    expected, scales = ErrorScales(SbifFile.read(path)).run(feeds, names)  # the NumPy reference's, SPEC section 6
    for name in names:
        assert actual[name].dtype == expected[name].dtype and actual[name].shape == expected[name].shape, name
        if info.rules[name]["rule"] == "float":
            assert result_agreement(expected[name], actual[name], scales[name]) <= 1.0, name
        else:
            assert np.array_equal(actual[name], expected[name]), name


@pytest.mark.parametrize("family", ["lstm", "dqn"])
def test_inputs_outputs_and_metadata(family, example_models):
    sbif_file = SbifFile.read(example_models[family])
    document = sbif_file.document
    model = to_onnx(sbif_file)

    def described(values):
        return [(v.name, onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    def declared(entries):
        return [(e["name"], e["dtype"], ["batch" if d is None else d for d in e["shape"]]) for e in entries]

    assert described(model.graph.input) == declared(document["inputs"])
    assert described(model.graph.output) == declared(document["outputs"])
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert set(metadata) == {"sbif"} and json.loads(metadata["sbif"]) == document
    assert model.producer_name == "sbif" and model.producer_version == sbif.__version__
    declared_tensors = {entry["name"] for entry in document["tensors"]}
    initializers = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    read = {name for node in model.graph.node for name in node.input}
    for name in declared_tensors & read:
        assert np.array_equal(initializers[name], sbif_file.tensors[name]), name
    assert set(initializers) <= read  # no unused initializer: tensors inference never reads stay out


def test_convert_writes_the_model(example_models, tmp_path):
    target = str(tmp_path / "policy.onnx")
    model = convert(example_models["mlp"], target)
    assert onnx.load(target).SerializeToString() == model.SerializeToString()


# -- the runtime adapter ---------------------------------------------------------------------------------------------
def test_runtime_adapter_as_a_process(example_models):
    """`python -m conformance.adapters.onnx_runtime` speaks the protocol: hello, run, op, shutdown."""
    process = ProcessRuntime([sys.executable, "-m", "conformance.adapters.onnx_runtime"], cwd=ROOT)
    try:
        assert process.hello["runtime"]["name"] == "sbif-onnxruntime"
        assert set(process.features) == set(FEATURES) and set(process.ops) == set(REGISTRY)
        info = ModelInfo(example_models["mlp"])
        obs = info.observations(3, np.random.default_rng(0))
        answer = process.run(info.path, {"obs": obs}, ["action", "value"])
        expected = sbif.load(info.path).run({"obs": obs}, ["action", "value"])
        assert answer.ok and np.array_equal(answer.outputs["action"], expected["action"]), answer
        answer = process.op("argmax", [np.array([[np.nan, 1, 2, 2]], np.float32)])
        assert answer.ok and answer.outputs["0"].tolist() == [2], answer
    finally:
        process.close()


def test_inputs_an_output_needs_must_be_given(example_models):
    policy = OnnxPolicy(example_models["mlp"])
    obs = ModelInfo(example_models["mlp"]).observations(2, np.random.default_rng(0))
    assert set(policy.run({"obs": obs}, ["action"])) == {"action"}  # noise_uniform is not needed
    with pytest.raises(sbif.InputError, match="missing input.*noise_uniform"):
        policy.run({"obs": obs}, ["action_sample"])


def test_bad_op_requests_are_errors_not_crashes(runtime):
    answer = runtime.op("add", [np.zeros(2, np.float32)])
    assert answer.status == "errored" and "takes 2 input" in answer.message, answer


# -- dependencies --------------------------------------------------------------------------------------------------
def test_missing_onnx_says_how_to_install_it(example_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(UnsupportedError, match="pip install onnx"):
        to_onnx(example_models["mlp"])


def test_importing_sbif_does_not_import_onnx():
    code = ("import sys, sbif, sbif.convert, sbif.convert.onnx; "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
