"""The JavaScript library's predict contract (runtimes/js/src/predict.js, SPEC section 5) through the conformance
protocol's `predict` requests (runtimes/js/src/protocol-predict.js): the suite's predict_api check against every golden
pack (SB2's and SB3's recorded answers) and against the NumPy reference on generated models, and the reference's
refusals, message for message."""
import os

import numpy as np
import pytest

from conformance.checks import Config
from conformance.golden import GoldenSource
from conformance.models import ModelInfo
from conformance.protocol import PythonRuntime
from conformance.rules import compare
from conformance.runner import OracleSource, run_suite
from conformance.scales import ReferenceScales

from .conftest import GOLDEN

#: what they check is JavaScript in Node, the same under either Python: the modern environment runs them, once
pytestmark = pytest.mark.javascript


@pytest.fixture(scope="module")
def js_predict(node_runtime):
    """The Node driver (runtimes/js/bin/sbif-protocol.js), which answers `predict` requests."""
    return node_runtime


def golden(name):
    return os.path.join(GOLDEN, name + ".sbif")


def test_the_driver_claims_predict(js_predict):
    assert "predict" in js_predict.features, js_predict.hello


def test_predict_agrees_with_every_golden_pack(js_predict):
    """SB2's and SB3's own predict / action_probability / value answers, compared by SPEC section 6's rule: every pack
    passes whose ops the runtime implements; the others are skipped for those ops alone."""
    report = run_suite([GoldenSource([GOLDEN])], js_predict, checks=["predict_api"])
    assert report.ok, report.render()
    runnable = 0
    for result in report.results:
        lacking = sorted(set(ModelInfo(golden(result.model[:-len(".sbif")])).ops) - set(js_predict.ops))
        if lacking:
            assert result.status == "skip" and all(op in result.message for op in lacking), report.render()
        else:
            runnable += 1
            assert result.status == "pass" and result.probes >= 3, report.render()
    assert runnable >= 40, report.render()


def test_predict_agrees_with_the_reference_on_generated_models(js_predict, reference, example_models):
    """The families SBIF builds without Stable-Baselines (recurrent, VecNormalize, every space kind), planned afresh
    and answered by the NumPy reference."""
    runnable = [path for path in sorted(example_models.values())
                if set(ModelInfo(path).ops) <= set(js_predict.ops)]
    report = run_suite([OracleSource(runnable, reference)], js_predict, checks=["predict_api"],
                       config=Config(batches=[7]))
    assert report.ok, report.render()
    assert all(r.status in ("pass", "skip") for r in report.results), report.render()
    assert sum(r.status == "pass" for r in report.results) >= 3, report.render()


def _request(model, method, observation, **fields):
    return dict({"type": "predict", "model": golden(model), "method": method, "observation": observation,
                 "state": None, "mask": None, "deterministic": True, "noise": None, "actions": None,
                 "logp": False}, **fields)


OBS_4 = np.zeros((2, 4), np.float32)
REFUSED = [
    ("observation shape", _request("demo_ppo2_cartpole", "predict", np.zeros(3, np.float32))),
    ("batch of the wrong width", _request("demo_ppo2_cartpole", "value", np.zeros((2, 5), np.float32))),
    ("no stochastic action", _request("zoo_ddpg_pendulum", "predict", np.zeros((2, 3), np.float32),
                                      deterministic=False)),
    ("float categorical actions", _request("demo_ppo2_cartpole", "action_probability", OBS_4,
                                           actions=np.array([0.0, 1.0], np.float32))),
    ("bool categorical actions", _request("demo_ppo2_cartpole", "action_probability", OBS_4,
                                          actions=np.array([True, False]))),
    ("categorical index out of range", _request("demo_ppo2_cartpole", "action_probability", OBS_4,
                                                actions=np.array([0, 2], np.int64))),
    ("more actions than observations", _request("demo_ppo2_cartpole", "action_probability", OBS_4,
                                                actions=np.array([0, 1, 1], np.int64))),
    ("multi-categorical actions of another width", _request(
        "a2c_mlp_multidiscrete", "action_probability", np.zeros((2, 3), np.int32),
        actions=np.zeros((2, 3), np.int64))),
    ("Gaussian actions that do not reshape", _request(
        "trpo_mlp_mixedbounds_box", "action_probability", np.zeros((2, 3), np.float32),
        actions=np.zeros(3, np.float32))),
    ("actions to a deterministic policy", _request("td3_mlp_box", "action_probability", np.zeros((2, 5), np.float32),
                                                    actions=np.zeros((2, 1), np.float32))),
    ("state of the wrong width", _request("ppo2_lstm_box_discrete", "predict", np.zeros((2, 5), np.float32),
                                          state=np.zeros((2, 7), np.float32))),
    ("mask of the wrong length", _request("ppo2_lstm_box_discrete", "predict", np.zeros((2, 5), np.float32),
                                          mask=np.zeros(3, np.float32))),
    ("a dict observation for an array policy", _request("demo_ppo2_cartpole", "predict",
                                                        {"observation": np.zeros(4, np.float32)})),
    ("a HER dict without a key", _request("her_sac_goals", "predict", {"observation": np.zeros(4, np.float32),
                                                                       "achieved_goal": np.zeros(2, np.float32)})),
    ("SB3: a Discrete observation out of range", _request("sb3_trpo_mlp_discreteobs_box", "predict",
                                                          np.array([1, 9], np.int32))),
    ("SB3: a gSDE file sampling", _request("sb3_ppo_gsde", "predict", np.zeros((2, 4), np.float32),
                                           deterministic=None)),
]


@pytest.mark.parametrize("request_", [case[1] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_refusals_say_what_the_reference_says(js_predict, reference, request_):
    """Bad input is an `errored` answer whose message is the reference's InputError message."""
    expected, actual = reference.request(request_), js_predict.request(request_)
    assert expected.status == "errored" and expected.message.startswith("InputError: "), expected
    assert actual.status == "errored", actual
    assert actual.message == expected.message[len("InputError: "):]


def _state_pair_scales(model, rows_scales):
    """The scales of state rows laid out as SB3's (h, c) pair, stacked as the protocol sends the pair."""
    import sbif

    return np.stack(sbif.load(golden(model), backend="numpy").state_pair(np.asarray(rows_scales)))


LAYOUTS = [
    ("SB3 recurrent without a state: the (h, c) pair",
     _request("sb3_recurrentppo_shared_lstm_multibinary", "predict", np.zeros((3, 2, 3), np.float32)),
     lambda scales: dict(scales, state=_state_pair_scales("sb3_recurrentppo_shared_lstm_multibinary",
                                                          scales["state"]))),
    ("SB3 recurrent, one observation with a state row: rows back",
     _request("sb3_recurrentppo_lstm_discrete", "predict", np.zeros(4, np.float32), state=np.ones(16, np.float32),
              mask=np.ones(1, np.float32)),
     lambda scales: dict(scales, state=np.asarray(scales["state"]).reshape(1, 16))),
    ("SB2 recurrent, one observation with a state row",
     _request("ppo2_lstm_box_discrete", "predict", np.ones(5, np.float32), state=np.ones(8, np.float32)), None),
    ("SB3 feed-forward: the state comes back as given",
     _request("sb3_ppo_mlp_box", "predict", np.zeros((2, 3), np.float32), state=np.ones(3, np.float32)),
     lambda scales: dict(scales, state=np.zeros(3))),
    ("Bernoulli int8 actions: float32", _request(
        "acktr_mlp_multibinary", "action_probability", np.ones((2, 4), np.int32),
        actions=np.array([[1, 0, 1], [0, 1, 1]], np.int8), logp=True), None),
    ("Bernoulli bool actions: float64", _request(
        "acktr_mlp_multibinary", "action_probability", np.ones((2, 4), np.int32),
        actions=np.array([[True, False, True], [False, True, True]])), None),
    ("Gaussian int32 actions: float64", _request(
        "trpo_mlp_mixedbounds_box", "action_probability", np.ones((2, 3), np.float32),
        actions=np.array([[1, 0], [0, 1]], np.int32)), None),
    ("Gaussian bool actions: float32", _request(
        "trpo_mlp_mixedbounds_box", "action_probability", np.ones((2, 3), np.float32),
        actions=np.array([[True, False], [False, True]]), logp=True), None),
]


@pytest.mark.parametrize("request_, layout", [case[1:] for case in LAYOUTS], ids=[case[0] for case in LAYOUTS])
def test_result_shapes_and_dtypes_are_the_references(js_predict, reference, request_, layout):
    """What the golden packs do not hold: the state SB3's predict returns without one, single observations of
    recurrent policies, and the probability dtypes SPEC section 5.4 derives from the actions' dtype. Values agree by
    SPEC section 6's rule, the reference's state scales laid out as the answer lays out the state (`layout`)."""
    expected, actual = reference.request(request_), js_predict.request(request_)
    assert expected.ok and actual.ok, (expected, actual)
    assert sorted(actual.outputs) == sorted(expected.outputs)
    scales, _ = ReferenceScales().for_request(request_)
    scales = layout(scales) if layout else scales
    for name, value in expected.outputs.items():
        got = actual.outputs[name]
        if value is None:
            assert got is None, name
            continue
        assert (got.dtype, got.shape) == (value.dtype, value.shape), name
        comparison = compare({"rule": "float" if value.dtype.kind == "f" else "exact"}, value, got,
                             scale=scales[name])
        assert comparison.ok, (name, comparison.detail)
