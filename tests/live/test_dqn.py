"""Differential tests for DQN: SB2 against the exported file.

Every DQN policy class (SB2's four, plus custom `FeedForwardPolicy` subclasses) on every observation space kind,
dueling or not, with and without layer norm, several `layers` and activations, random weights; the zoo's DQN
CartPole agent; param-noise models; and SB2's stochastic predict (a draw from softmax(q) with
`numpy.random.choice`), reproduced draw for draw from SB2's own uniforms and checked statistically.
"""
import itertools
import os

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.errors import ExportError, UnsupportedError
from sbif.export import build_sbif
from sbif.export.live import (compare_with_sb2, describe_live_model, load_sb2_model, quiet, sb2_policy,
                              verify_export)
from sbif.runtime.error_scales import predict_agreement

from .agreement import action_disagreements, assert_report_agrees
from .dqn_models import ACTIVATIONS, make_dqn
from .sb2_models import gym, save

ZOO_CARTPOLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, "shared", "zoo", "dqn",
                            "CartPole-v1.pkl")
MLP_OBSERVATIONS = ["box", "discrete", "multi_discrete", "multi_binary", "box_unbounded_2d", "image_uint8",
                    "box_mixed_bounds"]
CNN_OBSERVATIONS = ["image_36_uint8", "image_36_float"]
#: policy_kwargs variants for the MLP policies, used in turn (layers, activation)
MLP_VARIANTS = [{}, {"layers": [16]}, {"layers": [8, 6, 5], "act_fun": "tanh"}, {"layers": [], "act_fun": "elu"},
                {"layers": [12], "act_fun": "leaky_relu"}, {"layers": [9, 7], "act_fun": "swish"},
                {"layers": [10], "act_fun": "sigmoid"}]
CNN_VARIANTS = [{}, {"layers": [16, 8]}, {"layers": [12], "act_fun": "tanh"}, {"layers": [], "pad": "SAME"}]

CASES = []
for policy, dueling in itertools.product(("MlpPolicy", "LnMlpPolicy", "LnMlpNoDuelingPolicy", "TanhMlpPolicy"),
                                         (True, False)):
    for obs in MLP_OBSERVATIONS[:5] if policy != "MlpPolicy" else MLP_OBSERVATIONS:
        kwargs = {} if policy == "TanhMlpPolicy" else dict(MLP_VARIANTS[len(CASES) % len(MLP_VARIANTS)])
        CASES.append((policy, obs, dueling, kwargs))
for policy, dueling, obs in itertools.product(("CnnPolicy", "LnCnnPolicy"), (True, False), CNN_OBSERVATIONS):
    CASES.append((policy, obs, dueling, dict(CNN_VARIANTS[len(CASES) % len(CNN_VARIANTS)])))


def export(model, tmp_path, name="model"):
    """Save with SB2, load with SB2, export; return (the loaded SB2 model, the SBIF policy)."""
    source = save(model, tmp_path, name)
    loaded, algorithm = load_sb2_model(source)
    assert algorithm == "DQN"
    target = str(tmp_path / (name + ".sbif"))
    build_sbif(describe_live_model(loaded, algorithm, source)).write(target)
    return loaded, sbif.load(target)


def check_matches(model, exported, observations):
    report = compare_with_sb2(model, exported, observations)
    assert set(report) == {"action_mismatches", "probabilities", "q_values"}, report
    assert_report_agrees(report)


def policy_kwargs(kwargs, dueling):
    resolved = dict(kwargs, dueling=dueling)
    if "act_fun" in resolved:
        resolved["act_fun"] = ACTIVATIONS[resolved["act_fun"]]
    return resolved


@pytest.mark.parametrize("policy,obs_kind,dueling,kwargs", CASES,
                         ids=["{}-{}-{}-{}".format(p, o, "dueling" if d else "plain", i)
                              for i, (p, o, d, _) in enumerate(CASES)])
def test_policy_matches_sb2(policy, obs_kind, dueling, kwargs, tmp_path):
    index = CASES.index((policy, obs_kind, dueling, kwargs))
    model, exported = export(make_dqn(policy, obs_kind, seed=index, policy_kwargs=policy_kwargs(kwargs, dueling)),
                             tmp_path)
    observations = sample_observations(exported.observation_space, 64, np.random.default_rng(index))
    check_matches(model, exported, observations)
    resolved = exported.document["provenance"]["policy_kwargs"]
    # LnMlpPolicy ignores dueling=False (it passes dueling=True to FeedForwardPolicy); the graph says what ran
    assert resolved["dueling"] == (dueling or policy == "LnMlpPolicy")
    assert resolved["feature_extraction"] == ("cnn" if policy.endswith("CnnPolicy") else "mlp")
    if "layer_norm" in resolved:
        assert resolved["layer_norm"] == policy.startswith("Ln")
    if policy == "TanhMlpPolicy":
        assert resolved["act_fun"] == {"name": "tanh"}  # not in policy_kwargs: read off the TF graph
    assert exported.document["predict"]["deterministic_default"] is True
    # SB2's default for DQN is deterministic: predict() without the flag gives the greedy action
    expected, _ = model.predict(observations)
    actual, state = exported.predict(observations)
    assert state is None and action_disagreements(exported, expected, actual, observations) == 0


def test_single_observation_and_action_probability_of_actions(tmp_path):
    model, exported = export(make_dqn("MlpPolicy", "multi_discrete", seed=3), tmp_path)
    observations = sample_observations(exported.observation_space, 8, np.random.default_rng(3))
    action, _ = exported.predict(observations[0])
    assert action.shape == () and action == model.predict(observations[0])[0]
    assert predict_agreement(exported, model.action_probability(observations[0]), "action_probability",
                             observations[0], "probability") <= 1.0
    actions = np.arange(8) % 4
    for logp in (False, True):
        expected = model.action_probability(observations, actions=actions, logp=logp)
        assert predict_agreement(exported, expected, "action_probability", observations, "probability",
                                 actions=actions, logp=logp) <= 1.0, logp


def test_param_noise_model(tmp_path):
    """param_noise adds perturbed_model/ and adaptive_model/ copies; predict uses deepq/model only."""
    model, exported = export(make_dqn("LnMlpPolicy", "box", seed=5, policy_kwargs={"layers": [16, 8]},
                                      param_noise=True), tmp_path)
    names = [entry["name"] for entry in exported.document["tensors"]]
    assert any(name.startswith("deepq/perturbed_model/") for name in names)
    assert any(name.startswith("deepq/adaptive_model/") for name in names)
    used = {name for node in exported.document["graph"] for name in node["inputs"]}
    assert not any(name.startswith(("deepq/perturbed_model/", "deepq/adaptive_model/", "deepq/target_q_func/"))
                   for name in used)
    check_matches(model, exported, sample_observations(exported.observation_space, 64, np.random.default_rng(5)))
    assert set(verify_export(model, exported)) == {"action_mismatches", "probabilities", "q_values"}


def test_export_command_path_verifies_q_values(tmp_path):
    """`sbif export`'s path: load, build and verify against SB2, Q-values included."""
    from sbif.export import export as export_file

    source = save(make_dqn("CnnPolicy", "image_36_uint8", seed=8, policy_kwargs={"layers": [8]}), tmp_path, "model")
    sbif_file, report = export_file(source, loader="live")
    assert sbif_file.document["provenance"]["algorithm"] == "DQN"
    assert set(report) == {"action_mismatches", "probabilities", "q_values"}, report
    assert_report_agrees(report)


def cartpole_observations(count, seed):
    """CartPole-v1 states a random policy visits (its velocity bounds are float32 max: uniform samples from
    them are ~1e38 and overflow any float32 network, in an order-dependent way)."""
    with quiet():
        env = gym.make("CartPole-v1")
    env.seed(seed)
    rng = np.random.RandomState(seed)
    observations, obs = [], env.reset()
    while len(observations) < count:
        observations.append(obs)
        obs, _, done, _ = env.step(int(rng.randint(2)))
        if done:
            obs = env.reset()
    return np.array(observations, dtype=np.float32)


def test_zoo_cartpole(tmp_path):
    """The rl-baselines-zoo DQN agent (`utils.CustomDQNPolicy`, which the live loader stands in for: layers [64],
    layer norm, dueling)."""
    if not os.path.isfile(ZOO_CARTPOLE):
        pytest.skip("../shared/zoo is not present on this machine")
    model, algorithm = load_sb2_model(ZOO_CARTPOLE)
    target = str(tmp_path / "cartpole.sbif")
    description = describe_live_model(model, algorithm, ZOO_CARTPOLE)
    build_sbif(description).write(target)
    exported = sbif.load(target)
    assert description.policy_class == "CustomDQNPolicy"
    assert exported.document["provenance"]["policy_kwargs"] == {
        "feature_extraction": "mlp", "dueling": True, "layers": [64], "layer_norm": True, "act_fun": {"name": "relu"}}
    observations = cartpole_observations(512, seed=0)
    check_matches(model, exported, observations)
    # and it still balances the pole: one full episode, greedy actions from the exported file
    with quiet():
        env = gym.make("CartPole-v1")
    env.seed(1)
    obs, total, done = env.reset(), 0.0, False
    while not done:
        obs, reward, done, _ = env.step(int(exported.predict(obs)[0]))
        total += reward
    assert total == 500.0


def test_refuses_what_it_cannot_place(tmp_path):
    model = make_dqn("MlpPolicy", "box", seed=1, policy_kwargs={"layers": [8]})
    path = save(model, tmp_path, "model")
    description = describe_live_model(model, "DQN", path)
    description.parameters["deepq/model/action_value/extra/w:0"] = np.zeros((3, 3), np.float32)
    with pytest.raises(UnsupportedError, match="deepq/model/action_value/extra/w:0"):
        build_sbif(description)
    description = describe_live_model(model, "DQN", path)
    del description.parameters["deepq/model/state_value/fully_connected/weights:0"]
    with pytest.raises(ExportError):
        build_sbif(description)


def test_refuses_layer_norm_of_width_one(tmp_path):
    """contrib layer_norm on one unit gives beta + rounding noise of x * gamma * 1e6: refused, not approximated."""
    model = make_dqn("LnMlpPolicy", "box", seed=2, policy_kwargs={"layers": [1]})
    with pytest.raises(UnsupportedError, match="width 1"):
        build_sbif(describe_live_model(model, "DQN", save(model, tmp_path, "model")))


# --- stochastic predict ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sampling_model(tmp_path_factory):
    model, exported = export(make_dqn("MlpPolicy", "box", seed=11, policy_kwargs={"layers": [16]}, n_actions=5),
                             tmp_path_factory.mktemp("sampling"))
    return model, exported


def test_stochastic_predict_reproduces_sb2_draws(sampling_model):
    """SB2 draws each row with `np.random.choice(n, p=softmax(q))`, i.e. one `random_sample()` double u per row
    and the inverse CDF. Fed the same u (truncated to the float32 noise grid), SBIF picks SB2's action on every
    row, except where u lies within 1e-6 of a CDF step (a near-tie of the two float32 softmaxes)."""
    model, exported = sampling_model
    observations = sample_observations(exported.observation_space, 3000, np.random.default_rng(1))
    np.random.seed(123)
    expected, _ = model.predict(observations, deterministic=False)
    np.random.seed(123)
    u = np.random.random_sample(len(observations))  # the doubles SB2's choice() calls consumed, in order
    noise = (np.floor(u * 2.0 ** 24) / 2.0 ** 24).astype(np.float32)[:, None]
    actual, _ = exported.predict(observations, deterministic=False, noise={"noise_uniform": noise})
    assert actual.dtype == np.int64 and actual.shape == (len(observations),)
    cdf = np.cumsum(model.action_probability(observations).astype(np.float64), axis=1)
    cdf /= cdf[:, -1:]
    near = np.min(np.abs(cdf - u[:, None]), axis=1) < 1e-6
    differ = expected != actual
    assert not np.any(differ & ~near), np.nonzero(differ & ~near)
    assert differ.sum() <= 1


def test_stochastic_frequencies_match_softmax(sampling_model):
    """On one observation, 40000 draws from SBIF (its own float32 uniforms) and from SB2 both have the frequencies
    softmax(q) predicts, within 5 standard errors per action, and agree with each other."""
    model, exported = sampling_model
    candidates = sample_observations(exported.observation_space, 64, np.random.default_rng(2))
    probabilities = model.action_probability(candidates)
    entropy = -np.sum(probabilities * np.log(probabilities), axis=1)
    observation = candidates[int(np.argmax(entropy))]
    p = model.action_probability(observation).astype(np.float64)
    assert p.min() > 0.02, p  # every action matters for the test
    draws = 40000
    batch = np.repeat(observation[None], draws, axis=0)
    ours, _ = exported.predict(batch, deterministic=False, rng=7)
    np.random.seed(7)
    theirs, _ = model.predict(batch, deterministic=False)
    ours_f = np.bincount(ours, minlength=len(p)) / draws
    theirs_f = np.bincount(theirs, minlength=len(p)) / draws
    se = np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(ours_f - p) <= 5 * se), (ours_f, p)
    assert np.all(np.abs(theirs_f - p) <= 5 * se), (theirs_f, p)
    assert np.all(np.abs(ours_f - theirs_f) <= 5 * np.sqrt(2) * se), (ours_f, theirs_f)
    # the default (no rng) draws from the policy's own generator, in range
    sample, _ = exported.predict(observation, deterministic=False)
    assert sample.shape == () and 0 <= sample < len(p)


def test_sb2_policy_is_the_step_model(sampling_model):
    model, _ = sampling_model
    assert sb2_policy(model) is model.step_model
