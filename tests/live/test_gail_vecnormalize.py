"""GAIL exports as the TRPO policy it wraps; VecNormalize statistics (SB2's own save and the zoo's
obs_rms.pkl) fold into the graph so the exported policy takes raw environment observations."""
import os

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.errors import ExportError
from sbif.export import build_sbif
from sbif.export.live import compare_with_sb2, describe_live_model, load_sb2_model, quiet
from sbif.export.normalization import read_normalization
from sbif.runtime.error_scales import predict_agreement

from .agreement import assert_report_agrees
from .sb2_models import SpacesEnv, randomize, sb2

gym = pytest.importorskip("gym")


@pytest.mark.parametrize("action", [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 2.0, (2,), np.float32)])
def test_gail_exports_as_its_trpo_policy(action, tmp_path):
    env = SpacesEnv(gym.spaces.Box(-2.0, 2.0, (5,), np.float32), action)
    with quiet():
        model = sb2.GAIL("MlpPolicy", env, expert_dataset=None, timesteps_per_batch=8, seed=0)
        randomize(model, 0)
        model.save(str(tmp_path / "gail.zip"))
    loaded, algorithm = load_sb2_model(str(tmp_path / "gail.zip"))
    assert algorithm == "GAIL"
    sbif_file = build_sbif(describe_live_model(loaded, algorithm, str(tmp_path / "gail.zip")))
    assert not any(node_input.startswith("adversary/") for node in sbif_file.document["graph"]
                   for node_input in node["inputs"])
    policy = sbif.Policy(sbif_file)
    assert_report_agrees(compare_with_sb2(loaded, policy, sample_observations(policy.observation_space, 64,
                                                                               np.random.default_rng(0))))


class SkewedEnv(SpacesEnv):
    """4-D observations far from zero mean and unit scale (what VecNormalize is for); the spaces come from
    the caller."""

    def reset(self):
        return (np.random.standard_normal(4) * [1.0, 5.0, 0.1, 30.0] + [0.0, 3.0, -1.0, 100.0]).astype(np.float32)

    def step(self, action):
        return self.reset(), 0.0, False, {}


def make_normalized(tmp_path, clip_obs=10.0, epsilon=1e-8):
    """A PPO2 model and a VecNormalize whose statistics saw 200 steps of skewed observations."""
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)

    venv = sb2.common.vec_env.VecNormalize(sb2.common.vec_env.DummyVecEnv(
        [lambda: SkewedEnv(space, gym.spaces.Discrete(3))]), clip_obs=clip_obs, epsilon=epsilon)
    venv.reset()
    for _ in range(200):
        venv.step(np.array([0]))
    with quiet():
        model = sb2.PPO2("MlpPolicy", venv, n_steps=8, nminibatches=1, seed=1)
        randomize(model, 1)
        model.save(str(tmp_path / "model.zip"))
    return model, venv


@pytest.mark.parametrize("layout", ["vecnormalize", "zoo_obs_rms"])
def test_vecnormalize_is_folded_into_the_graph(layout, tmp_path):
    model, venv = make_normalized(tmp_path, clip_obs=3.0, epsilon=1e-6)
    if layout == "vecnormalize":
        venv.save(str(tmp_path / "vecnormalize.pkl"))
        stats = read_normalization(str(tmp_path / "vecnormalize.pkl"))
        assert (stats.clip_obs, stats.epsilon) == (3.0, 1e-6)
    else:
        venv.save_running_average(str(tmp_path))
        stats = read_normalization(os.path.join(str(tmp_path), "obs_rms.pkl"), clip_obs=3.0, epsilon=1e-6)
    loaded, algorithm = load_sb2_model(str(tmp_path / "model.zip"))
    path = str(tmp_path / "model.sbif")
    build_sbif(describe_live_model(loaded, algorithm, str(tmp_path / "model.zip")), stats).write(path)
    policy = sbif.load(path)
    assert policy.document["provenance"]["vecnormalize"] == {"clip_obs": 3.0, "epsilon": 1e-6}
    raw = (np.random.default_rng(2).standard_normal((256, 4)) * [1, 5, 0.1, 30] + [0, 3, -1, 100]).astype(np.float32)
    raw[:8] *= 50  # far outside the statistics: exercises the clip
    expected, _ = loaded.predict(venv.normalize_obs(raw), deterministic=True)
    actual, _ = policy.predict(raw, deterministic=True)
    assert np.array_equal(expected, actual)
    assert predict_agreement(policy, loaded.action_probability(venv.normalize_obs(raw)), "action_probability", raw,
                             "probability") <= 1.0


def test_zoo_normalized_model(tmp_path):
    """a2c/BipedalWalker-v2 ships obs_rms.pkl and `normalize: true`: SB2 on normalized observations equals
    the exported file on raw ones."""
    zoo = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, "shared", "zoo")
    source = os.path.join(zoo, "a2c", "BipedalWalker-v2.pkl")
    if not os.path.exists(source):
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/zoo is missing in CI")
        pytest.skip("../shared/zoo is not present")
    stats = read_normalization(os.path.join(zoo, "a2c", "BipedalWalker-v2", "obs_rms.pkl"))
    model, algorithm = load_sb2_model(source)
    policy = sbif.Policy(build_sbif(describe_live_model(model, algorithm, source), stats))
    raw = np.random.default_rng(3).standard_normal((256, 24)).astype(np.float32) * np.sqrt(stats.var) + stats.mean
    normalized = np.clip((raw - stats.mean) / np.sqrt(stats.var + stats.epsilon), -10, 10)
    expected, _ = model.predict(normalized, deterministic=True)
    assert predict_agreement(policy, expected, "predict", raw, "action", deterministic=True) <= 1.0


def test_statistics_of_the_wrong_shape_are_refused(tmp_path):
    model, venv = make_normalized(tmp_path)
    venv.save(str(tmp_path / "vecnormalize.pkl"))
    stats = read_normalization(str(tmp_path / "vecnormalize.pkl"))
    stats.mean, stats.var = stats.mean[:3], stats.var[:3]
    loaded, algorithm = load_sb2_model(str(tmp_path / "model.zip"))
    with pytest.raises(ExportError, match="shape"):
        build_sbif(describe_live_model(loaded, algorithm, str(tmp_path / "model.zip")), stats)


def test_zoo_frame_stack_normalizes_each_frame(tmp_path):
    """The zoo's `frame_stack` over `normalize`: VecFrameStack stacks normalized frames; the exported file
    takes the raw frames stacked the same way (missing frames at reset are the statistics' mean, which
    normalizes to VecFrameStack's zeros) and matches SB2 step by step through the real wrappers."""
    vec_env = sb2.common.vec_env
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)

    np.random.seed(4)
    normalized = vec_env.VecNormalize(vec_env.DummyVecEnv([lambda: SkewedEnv(space, gym.spaces.Discrete(3))]),
                                      clip_obs=4.0)
    stacked = vec_env.VecFrameStack(normalized, 3)
    stacked.reset()
    for _ in range(100):
        stacked.step(np.array([0]))
    normalized.training = False
    with quiet():
        model = sb2.PPO2("MlpPolicy", stacked, n_steps=8, nminibatches=1, seed=2)
        randomize(model, 2)
        model.save(str(tmp_path / "model.zip"))
    normalized.save_running_average(str(tmp_path))
    config = tmp_path / "config.yml"
    config.write_text("normalize: \"{'clip_obs': 4.0}\"\nframe_stack: 3\nn_envs: 1\n")

    from sbif.export.exporter import export

    sbif_file, _ = export(str(tmp_path / "model.zip"), loader="live", zoo_config=str(config))
    assert sbif_file.document["provenance"]["vecnormalize"] == {"clip_obs": 4.0, "epsilon": 1e-8, "frame_stack": 3}
    policy = sbif.Policy(sbif_file)
    mean = normalized.obs_rms.mean
    raw_frames = [mean, mean, normalized.get_original_obs()[0]]
    observation = stacked.reset()
    raw_frames[-1] = normalized.get_original_obs()[0]
    for step in range(20):
        raw_stack = np.concatenate(raw_frames[-3:])[None]
        expected, _ = model.predict(observation, deterministic=True)
        actual, _ = policy.predict(raw_stack, deterministic=True)
        assert np.array_equal(expected, actual), step
        assert predict_agreement(policy, model.action_probability(observation), "action_probability", raw_stack,
                                 "probability") <= 1.0, step
        observation, _, _, _ = stacked.step(expected)
        raw_frames.append(normalized.get_original_obs()[0])


@pytest.mark.parametrize("algorithm", ["SAC", "TD3", "DDPG"])
def test_critics_of_normalized_off_policy_models(algorithm, tmp_path):
    """With statistics folded in, the file takes raw observations and SB2 normalized ones: the critic outputs
    (qf1, qf2, value, qf) are compared on the same footing as the actions."""
    from sbif.export.normalization import ObservationNormalization

    from .off_policy_models import make_model as make_off_policy

    model = make_off_policy(algorithm, "MlpPolicy", "box", "box3", seed=3)
    rng = np.random.default_rng(3)
    stats = ObservationNormalization(rng.standard_normal(5) * 10, rng.random(5) * 50 + 0.1, clip_obs=4.0)
    path = str(tmp_path / "model.zip")
    with quiet():
        model.save(path)
    loaded, name = load_sb2_model(path)
    policy = sbif.Policy(build_sbif(describe_live_model(loaded, name, path), stats))
    raw = stats.typical_observations((64, 5), rng).astype(np.float32)
    report = compare_with_sb2(loaded, policy, raw, stats)
    critics = {"SAC": {"qf1", "qf2", "value"}, "TD3": {"qf1", "qf2"}, "DDPG": {"qf"}}[algorithm]
    assert critics <= set(report), report
    assert_report_agrees(report)
