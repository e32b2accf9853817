"""Differential tests for SAC, TD3 and DDPG: SB2 against the exported file run by the NumPy runtime.

The matrix is every algorithm x policy class (Mlp, LnMlp, Cnn, LnCnn) x observation space SB2 builds them with
(Box float with finite, infinite and mixed bounds, small uint8 images, Discrete, MultiDiscrete, MultiBinary for
the MLP policies; 36x36+ images for the CNN ones), with Box actions of asymmetric bounds (one float64 space),
random weights (biases, layer-norm gains, SAC's log-std head, DDPG's running statistics), rotating `layers`,
activations and algorithm settings (DDPG normalization, ranges, parameter and action noise; TD3 action noise).

Checked: deterministic actions and every critic output against SB2 (`compare_with_sb2`); the stochastic actions
against SB2 fed the very same noise (SAC: TensorFlow's random tensor is fed; TD3/DDPG: the action noise object
returns the draws the file is fed), against a NumPy re-derivation, and statistically against SB2's own sampling.
"""
import itertools
import os
import warnings

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.errors import InputError, SbifError
from sbif.export import build_sbif
from sbif.export.live import compare_with_sb2, describe_live_model, load_sb2_model
from sbif.export.off_policy import running_mean_std
from sbif.ops.rounding import CONFIDENCE
from sbif.runtime.error_scales import ErrorScales, predict_agreement, predict_scales, result_agreement
from tests.zoo import ZOO, require_zoo, zoo_models

from .agreement import assert_report_agrees
from .off_policy_models import (ACTION_SPACES, ACTIVATIONS, OFF_POLICY_ALGORITHMS, POLICIES, FixedNoise, TanhTD3Policy,
                                custom_cnn, make_model, sb2)
from .sb2_models import IMAGE_SPACES, OBSERVATION_SPACES, save

#: SB2 warns that these algorithms have no action probabilities (compare_with_sb2 asks, as for any model)
pytestmark = [pytest.mark.filterwarnings("ignore:.*action probabilit.*:UserWarning"),
              pytest.mark.filterwarnings("ignore:Even though SAC has a Gaussian policy:UserWarning")]

NormalActionNoise = sb2.common.noise.NormalActionNoise
AdaptiveParamNoiseSpec = sb2.common.noise.AdaptiveParamNoiseSpec
OrnsteinUhlenbeckActionNoise = sb2.common.noise.OrnsteinUhlenbeckActionNoise

MLP_OBSERVATIONS = sorted(OBSERVATION_SPACES)
CNN_OBSERVATIONS = sorted(IMAGE_SPACES)
ACTION_KINDS = sorted(ACTION_SPACES)
#: (policy_kwargs, activation name or None for SB2's default relu), rotating over the matrix
VARIANTS = [({}, None), ({"layers": [16]}, "tanh"), ({"layers": [12, 8, 6]}, "elu"),
            ({"layers": [32, 16]}, "leaky_relu"), ({}, "softplus"), ({"layers": [8, 8]}, "sigmoid")]


def algorithm_variants(algorithm, action_width):
    """Algorithm settings that change what predict computes, rotating over the matrix."""
    vector = NormalActionNoise(mean=np.linspace(-0.1, 0.2, action_width), sigma=np.linspace(0.2, 0.4, action_width))
    if algorithm == "SAC":
        return [{}, {"ent_coef": 0.1}]
    if algorithm == "TD3":
        return [{}, {"action_noise": vector}, {"action_noise": NormalActionNoise(0.05, 0.3)}]
    return [{"normalize_observations": True},
            {"normalize_observations": True, "normalize_returns": True, "return_range": (-1.5, 2.0)},
            {"observation_range": (-2.5, 3.0)},
            {"normalize_observations": True, "param_noise": AdaptiveParamNoiseSpec(0.2, 0.2)},
            {"action_noise": vector},
            {"normalize_observations": True, "param_noise": AdaptiveParamNoiseSpec(0.1, 0.1),
             "action_noise": NormalActionNoise(np.float32(0.05), np.float32(0.2))},
            {}]


CASES = []
for _algorithm, _policy in itertools.product(OFF_POLICY_ALGORITHMS, POLICIES):
    for _obs in (CNN_OBSERVATIONS if "Cnn" in _policy else MLP_OBSERVATIONS):
        CASES.append((_algorithm, _policy, _obs, ACTION_KINDS[len(CASES) % len(ACTION_KINDS)], len(CASES)))


def settings_for(algorithm, obs_kind, action_kind, index):
    width = ACTION_SPACES[action_kind]().shape[0]
    options = algorithm_variants(algorithm, width)
    settings = dict(options[index % len(options)])
    if algorithm == "DDPG" and obs_kind == "multi_discrete":
        # SB2 cannot normalize MultiDiscrete observations (obs_rms has the space's shape, the one-hot does not)
        settings.pop("normalize_observations", None)
    policy_kwargs, activation = VARIANTS[index % len(VARIANTS)]
    policy_kwargs = dict(policy_kwargs)
    if activation is not None:
        policy_kwargs["act_fun"] = ACTIVATIONS[activation]
    return policy_kwargs, settings


def export(model, tmp_path, name="model"):
    """Save with SB2, load with SB2, export, write and read the file: (SB2 model, SBIF policy)."""
    source = save(model, tmp_path, name)
    loaded, algorithm = load_sb2_model(source)
    target = str(tmp_path / (name + ".sbif"))
    build_sbif(describe_live_model(loaded, algorithm, source)).write(target)
    return loaded, sbif.load(target)


def observations_for(policy, rng, count=24):
    """Random observations plus edge rows (bounds, large magnitudes that DDPG's observation clip cuts)."""
    space = policy.observation_space
    batch = sample_observations(space.to_json(), count, rng)
    if space.kind == "box":
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        edges = [np.where(np.isfinite(low), low, -1e3), np.where(np.isfinite(high), high, 1e3), np.zeros(space.shape)]
        batch = np.concatenate([batch, np.asarray(edges).astype(space.dtype)])
    elif space.kind == "discrete":
        batch = np.concatenate([batch, [0, space.n - 1]])
    return batch


# -- SB2 fed the noise the file is fed -------------------------------------------------------------------------
def sb2_sample(model, observations, z):
    """SB2's predict(deterministic=False) with the given noise: SAC's TensorFlow random tensor is fed `z`; TD3 and
    DDPG get an action noise object that returns mean + sigma * z (z: one row, as SB2 draws once per call)."""
    if type(model).__name__ == "SAC":
        policy = model.policy_tf
        noise = model.graph.get_tensor_by_name("model/random_normal:0")
        original = policy.step
        policy.step = lambda obs, state=None, mask=None, deterministic=False: policy.sess.run(
            policy.deterministic_policy if deterministic else policy.policy, {policy.obs_ph: obs, noise: z})
        try:
            return model.predict(observations, deterministic=False)[0]
        finally:
            policy.step = original
    saved = model.action_noise
    if saved is not None:
        mean, sigma = np.asarray(saved._mu, np.float64), np.asarray(saved._sigma, np.float64)
        k = z.shape[-1]
        model.action_noise = FixedNoise(np.broadcast_to(mean, (k,)) + np.broadcast_to(sigma, (k,)) *
                                        z[0].astype(np.float64))
    try:
        return model.predict(observations, deterministic=False)[0]
    finally:
        model.action_noise = saved


def check_stochastic_matches_sb2(model, policy, observations, rng):
    name = policy.document["predict"]["stochastic_action"]
    algorithm = type(model).__name__
    if name is None:
        with pytest.raises(InputError, match="deterministic=True"):
            policy.predict(observations, deterministic=False)
        return
    noise_inputs = {entry["name"]: entry for entry in policy.document["inputs"] if entry["kind"] == "noise"}
    if algorithm == "SAC":
        z = rng.standard_normal((len(observations), policy.action_space.shape[0])).astype(np.float32)
        calls = [(observations, sb2_sample(model, observations, z), z)]
    elif algorithm == "TD3":
        k = noise_inputs["noise_normal"]["shape"][1] if noise_inputs else 1
        z = rng.standard_normal((1, k)).astype(np.float32)
        # SB2 adds one noise draw to every row
        calls = [(observations, sb2_sample(model, observations, z), np.repeat(z, len(observations), axis=0))]
    else:  # DDPG's _policy flattens the batch before adding the noise: SB2 samples one observation at a time
        k = noise_inputs["noise_normal"]["shape"][1] if noise_inputs else 1
        calls = []
        for observation in observations[:4]:
            z = rng.standard_normal((1, k)).astype(np.float32)
            calls.append((observation[None], sb2_sample(model, observation[None], z), z))
    for batch, expected, z in calls:
        actual, _ = policy.predict(batch, deterministic=False, noise={"noise_normal": z})
        assert np.asarray(actual).dtype == np.asarray(expected).dtype
        assert predict_agreement(policy, expected, "predict", batch, "action", deterministic=False,
                                 noise={"noise_normal": z}) <= 1.0
    if not noise_inputs and algorithm != "SAC" and not model.__dict__.get("param_noise"):
        # nothing to sample: SB2 returns the deterministic action, and so does the file (the very same output)
        assert np.array_equal(policy.predict(observations, deterministic=True)[0],
                              policy.predict(observations, deterministic=False)[0])


# -- the matrix ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm,policy_name,obs_kind,action_kind,index", CASES,
                         ids=["-".join(case[:4]) for case in CASES])
def test_policy_matches_sb2(algorithm, policy_name, obs_kind, action_kind, index, tmp_path):
    policy_kwargs, settings = settings_for(algorithm, obs_kind, action_kind, index)
    model, policy = export(make_model(algorithm, policy_name, obs_kind, action_kind, seed=index,
                                      policy_kwargs=policy_kwargs, **settings), tmp_path)
    rng = np.random.default_rng(index)
    observations = observations_for(policy, rng)
    report = compare_with_sb2(model, policy, observations)
    expected_outputs = {"SAC": {"action", "qf1", "qf2", "value"}, "TD3": {"action", "qf1", "qf2"},
                        "DDPG": {"action", "qf"}}[algorithm]
    assert set(report) == expected_outputs
    assert_report_agrees(report)

    # SB2's predict defaults to deterministic; one observation gives SB2's shape and dtype; no probabilities
    expected, _ = model.predict(observations)
    _, state = policy.predict(observations)
    assert state is None and predict_agreement(policy, expected, "predict", observations, "action") <= 1.0
    single_expected, _ = model.predict(observations[0])
    single_actual, _ = policy.predict(observations[0])
    assert np.shape(single_actual) == np.shape(single_expected)
    assert np.asarray(single_actual).dtype == np.asarray(single_expected).dtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model.action_probability(observations) is None
    assert policy.action_probability(observations) is None
    check_stochastic_matches_sb2(model, policy, observations[:8], rng)


def test_matrix_covers_every_policy_and_space():
    covered = {(a, p, o) for a, p, o, _, _ in CASES}
    assert len(covered) == 3 * (2 * len(MLP_OBSERVATIONS) + 2 * len(CNN_OBSERVATIONS))
    assert {a for _, _, _, a, _ in CASES} == set(ACTION_KINDS)


# -- NumPy re-derivation of the sampled actions ------------------------------------------------------------
def numpy_tower(params, x, prefix, activation):
    """fc{i} (+ contrib layer norm) + activation, in float32, from the parameters alone."""
    i = 0
    while "{}fc{}/kernel:0".format(prefix, i) in params:
        x = x @ params["{}fc{}/kernel:0".format(prefix, i)] + params["{}fc{}/bias:0".format(prefix, i)]
        norm = prefix + ("LayerNorm" if i == 0 else "LayerNorm_{}".format(i))
        if norm + "/gamma:0" in params:
            mean = x.mean(axis=1, keepdims=True)
            variance = np.square(x - mean).mean(axis=1, keepdims=True)
            x = (x - mean) / np.sqrt(variance + np.float32(1e-12))
            x = x * params[norm + "/gamma:0"] + params[norm + "/beta:0"]
        x = activation(x)
        i += 1
    return x


def numpy_unscale(space, scaled):
    low, high = space.low, space.high
    return low + (0.5 * (scaled + 1.0) * (high - low))


@pytest.mark.parametrize("algorithm,policy_name,activation", [
    ("SAC", "MlpPolicy", "relu"), ("SAC", "LnMlpPolicy", "tanh"), ("TD3", "MlpPolicy", "tanh"),
    ("TD3", "LnMlpPolicy", "relu")])
def test_sampling_matches_numpy(algorithm, policy_name, activation, tmp_path):
    settings = {"action_noise": NormalActionNoise(np.array([0.1, -0.2, 0.0]), np.array([0.3, 0.2, 0.5]))} \
        if algorithm == "TD3" else {}
    model, policy = export(make_model(algorithm, policy_name, "box", "box3", seed=3,
                                      policy_kwargs={"act_fun": ACTIVATIONS[activation]}, **settings), tmp_path)
    params = model.get_parameters()
    act = {"relu": lambda v: np.maximum(v, np.float32(0)), "tanh": np.tanh}[activation]
    rng = np.random.default_rng(1)
    observations = sample_observations(policy.observation_space.to_json(), 64, rng)
    z = rng.standard_normal((64, 3)).astype(np.float32)
    hidden = numpy_tower(params, observations, "model/pi/", act)
    if algorithm == "SAC":
        mean = hidden @ params["model/pi/dense/kernel:0"] + params["model/pi/dense/bias:0"]
        log_std = np.clip(hidden @ params["model/pi/dense_1/kernel:0"] + params["model/pi/dense_1/bias:0"], -20, 2)
        scaled = np.tanh(mean + z * np.exp(log_std))
        assert scaled.dtype == np.float32
        outputs, scales = ErrorScales(policy.model).run({"obs": observations, "noise_normal": z}, ["mean", "std"])
        assert result_agreement(mean, outputs["mean"], scales["mean"]) <= 1.0
        assert result_agreement(np.exp(log_std), outputs["std"], scales["std"]) <= 1.0
    else:
        action = np.tanh(hidden @ params["model/pi/dense/kernel:0"] + params["model/pi/dense/bias:0"])
        noise = np.array([0.1, -0.2, 0.0]) + np.array([0.3, 0.2, 0.5]) * z.astype(np.float64)
        scaled = np.clip(action + noise, -1, 1)
    expected = numpy_unscale(model.action_space, scaled)
    actual, _ = policy.predict(observations, deterministic=False, noise={"noise_normal": z})
    assert actual.dtype == expected.dtype
    assert predict_agreement(policy, expected, "predict", observations, "action", deterministic=False,
                             noise={"noise_normal": z}) <= 1.0


# -- statistics of SB2's own sampling -----------------------------------------------------------------------
def sample_with_scales(policy, observation, rows, seed):
    """`rows` stochastic actions of the policy for one observation, drawn from `seed`, and their error scales."""
    batch = np.repeat(observation[None], rows, axis=0)
    noise = policy.noise_feeds(rows, seed, None)
    actions, _ = policy.predict(batch, deterministic=False, noise=noise)
    scales = predict_scales(policy, ErrorScales(policy.model), "predict", batch, deterministic=False, noise=noise)
    return actions, scales["action"]


def assert_same_distribution(expected, actual, actual_scale):
    """Per component: means and variances within 5 standard errors (the variance's from the fourth moment, so
    that point masses at the clipped bounds are judged fairly), plus what float32 rounding may move a sample
    (SPEC section 6: 8 error scales of `actual`), all the difference there is in a component with no spread (SAC's
    std clipped to exp(-20)): two sets of samples within r of one point have means within r, variances below r²."""
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    n, m = len(expected), len(actual)
    mean_e, mean_a = expected.mean(axis=0), actual.mean(axis=0)
    var_e, var_a = expected.var(axis=0), actual.var(axis=0)
    rounding = CONFIDENCE * np.max(actual_scale, axis=0)
    assert np.any(var_e > 0) and np.all(np.isfinite(rounding)), (var_e, rounding)
    assert np.all(np.abs(mean_e - mean_a) <= 5 * np.sqrt(var_e / n + var_a / m) + rounding), (mean_e, mean_a)
    m4_e = np.mean((expected - mean_e) ** 4, axis=0)
    m4_a = np.mean((actual - mean_a) ** 4, axis=0)
    var_error = np.sqrt((m4_e - var_e ** 2) / n + (m4_a - var_a ** 2) / m)
    assert np.all(np.abs(var_e - var_a) <= 5 * var_error + rounding ** 2), (var_e, var_a)


@pytest.mark.parametrize("policy_name", ["MlpPolicy", "LnMlpPolicy"])
def test_sac_sampling_statistics(policy_name, tmp_path):
    model, policy = export(make_model("SAC", policy_name, "box", "box3", seed=11), tmp_path)
    observations = sample_observations(policy.observation_space.to_json(), 3, np.random.default_rng(2))
    for i, observation in enumerate(observations):
        expected, _ = model.predict(np.repeat(observation[None], 4000, axis=0), deterministic=False)
        assert_same_distribution(expected, *sample_with_scales(policy, observation, 4000, i))


@pytest.mark.parametrize("algorithm,noise", [
    ("TD3", NormalActionNoise(np.array([0.1, -0.2, 0.0]), np.array([0.3, 0.2, 0.5]))),
    ("TD3", NormalActionNoise(0.0, 0.6)),
    ("DDPG", NormalActionNoise(np.array([0.0, 0.3, -0.1]), np.array([0.4, 0.1, 0.3])))])
def test_action_noise_statistics(algorithm, noise, tmp_path):
    """SB2 draws one noise vector per predict call: sample call by call (one observation each)."""
    model, policy = export(make_model(algorithm, "MlpPolicy", "box", "box3", seed=5, action_noise=noise), tmp_path)
    observation = sample_observations(policy.observation_space.to_json(), 1, np.random.default_rng(3))[0]
    np.random.seed(0)
    expected = np.array([model.predict(observation, deterministic=False)[0] for _ in range(2000)])
    assert_same_distribution(expected, *sample_with_scales(policy, observation, 4000, 4))


# -- settings SBIF cannot sample, refusals, custom policies -----------------------------------------------------
@pytest.mark.parametrize("algorithm", ["TD3", "DDPG"])
def test_ornstein_uhlenbeck_noise_refuses_stochastic_predict(algorithm, tmp_path):
    noise = OrnsteinUhlenbeckActionNoise(mean=np.zeros(3), sigma=0.2 * np.ones(3))
    model, policy = export(make_model(algorithm, "MlpPolicy", "box", "box3", seed=2, action_noise=noise), tmp_path)
    assert policy.document["predict"]["stochastic_action"] is None
    observations = sample_observations(policy.observation_space.to_json(), 8, np.random.default_rng(0))
    with pytest.raises(InputError, match="cannot sample"):
        policy.predict(observations, deterministic=False)
    expected, _ = model.predict(observations)  # the default (deterministic) works
    assert predict_agreement(policy, expected, "predict", observations, "action") <= 1.0


def test_ddpg_running_statistics_are_sb2s(tmp_path):
    """The folded float32 mean is TensorFlow's bit for bit; the std within 1 ULP (Eigen's float32 sqrt is not
    always correctly rounded; NumPy's is)."""
    model, policy = export(make_model("DDPG", "MlpPolicy", "box_mixed_bounds", "box3", seed=4,
                                      normalize_observations=True, normalize_returns=True), tmp_path)
    for stats, name in ((model.obs_rms, "obs_rms"), (model.ret_rms, "ret_rms")):
        tf_mean, tf_std = model.sess.run([stats.mean, stats.std])
        mean, std = policy.model.tensors["sbif/{}_mean".format(name)], policy.model.tensors["sbif/{}_std".format(name)]
        assert mean.dtype == std.dtype == np.float32
        assert np.array_equal(tf_mean, mean)
        assert np.max(np.abs(tf_std.view(np.int32) - std.view(np.int32))) <= 1
    params = model.get_parameters()
    mean, std = running_mean_std(*(params["input/obs_rms/" + leaf + ":0"]
                                   for leaf in ("runningsum", "runningsumsq", "count")))
    assert np.any(std == np.sqrt(np.float32(1e-2)))  # the variance floor is exercised


def test_custom_policy_class_with_settings_in_its_class(tmp_path):
    """TanhTD3Policy sets layers and tanh in its class (policy_kwargs are empty): the export reads the policy."""
    model, policy = export(make_model("TD3", TanhTD3Policy, "box", "box1", seed=6), tmp_path)
    assert policy.document["provenance"]["policy_kwargs"]["act_fun"] == {"name": "tanh"}
    assert policy.document["provenance"]["policy_kwargs"]["layers"] == [24, 12]
    assert_report_agrees(compare_with_sb2(model, policy, observations_for(policy, np.random.default_rng(0))))


def test_custom_cnn_extractor_is_refused(tmp_path):
    model = make_model("SAC", "CnnPolicy", "image_36_uint8", "box1", seed=1,
                       policy_kwargs={"cnn_extractor": custom_cnn})
    source = save(model, tmp_path, "model")
    loaded, algorithm = load_sb2_model(source)
    with pytest.raises(SbifError, match="custom feature extractor"):
        build_sbif(describe_live_model(loaded, algorithm, source))


def test_layer_normalised_width_one_is_refused(tmp_path):
    """TF's layer norm of a single unit returns beta plus amplified rounding error (see spec/families.md, DQN)."""
    model = make_model("TD3", "LnMlpPolicy", "box", "box1", seed=1, policy_kwargs={"layers": [8, 1]})
    source = save(model, tmp_path, "model")
    loaded, algorithm = load_sb2_model(source)
    with pytest.raises(SbifError, match="width 1"):
        build_sbif(describe_live_model(loaded, algorithm, source))


# -- the zoo --------------------------------------------------------------------------------------------------
ZOO_MODELS = [model for model in zoo_models() if model.split(os.sep)[0] in ("sac", "td3", "ddpg")]


def test_zoo_is_present():
    require_zoo(ZOO_MODELS)


@pytest.mark.parametrize("relative", ZOO_MODELS)
def test_zoo_model(relative, tmp_path):
    path = os.path.join(ZOO, relative)
    # ddpg/Pendulum-v0.pkl names stable_baselines.ddpg.memory, gone since SB2 2.6: the live loader stands in for it
    model, algorithm = load_sb2_model(path)
    assert algorithm == relative.split("/")[0].upper()
    target = str(tmp_path / "model.sbif")
    build_sbif(describe_live_model(model, algorithm, path)).write(target)
    policy = sbif.load(target)
    rng = np.random.default_rng(0)
    observations = sample_observations(policy.observation_space.to_json(), 256, rng)
    report = compare_with_sb2(model, policy, observations)
    assert_report_agrees(report)
    check_stochastic_matches_sb2(model, policy, observations[:16], rng)
