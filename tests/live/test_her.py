"""HER: the inner model's graph, plus the dict observation (KEY_ORDER flattening) in predict."""
import numpy as np
import pytest

import sbif
from sbif.export import build_sbif
from sbif.export.live import describe_live_model, load_sb2_model, quiet
from sbif.runtime.error_scales import predict_agreement

from .agreement import action_disagreements
from .sb2_models import randomize, sb2

gym = pytest.importorskip("gym")


class GoalEnv(gym.GoalEnv):
    """A goal environment that only carries its spaces (HER needs compute_reward)."""

    def __init__(self, action_space, kind="box"):
        if kind == "box":
            spaces = {"observation": gym.spaces.Box(-3.0, 3.0, (4,), np.float32),
                      "achieved_goal": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
                      "desired_goal": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)}
        else:
            spaces = {key: gym.spaces.MultiBinary(n) for key, n in
                      (("observation", 3), ("achieved_goal", 2), ("desired_goal", 2))}
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = action_space

    def reset(self):
        return self.observation_space.sample()

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, {}

    def compute_reward(self, achieved_goal, desired_goal, info):
        return -np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)


CASES = [("SAC", gym.spaces.Box(-2.0, 1.0, (2,), np.float32), "box"),
         ("TD3", gym.spaces.Box(-1.0, 1.0, (3,), np.float32), "box"),
         ("DDPG", gym.spaces.Box(0.0, 4.0, (2,), np.float32), "box"),
         ("DQN", gym.spaces.Discrete(4), "box"),
         ("DQN", gym.spaces.Discrete(3), "multi_binary")]


@pytest.mark.parametrize("inner,action_space,kind", CASES, ids=["{}-{}".format(c[0], c[2]) for c in CASES])
def test_her_matches_sb2_with_dict_observations(inner, action_space, kind, tmp_path):
    env = GoalEnv(action_space, kind)
    with quiet():
        model = sb2.HER("MlpPolicy", env, getattr(sb2, inner), seed=0)
        randomize(model.model, 0)
        model.save(str(tmp_path / "her.zip"))
    loaded, algorithm = load_sb2_model(str(tmp_path / "her.zip"))
    assert algorithm == "HER"
    sbif_file = build_sbif(describe_live_model(loaded, algorithm, str(tmp_path / "her.zip")))
    assert sbif_file.document["observation_dict"]["keys"] == ["observation", "achieved_goal", "desired_goal"]
    assert sbif_file.document["provenance"]["algorithm"] == "HER"
    policy = sbif.Policy(sbif_file)
    env.observation_space.seed(1)
    dicts = [env.observation_space.sample() for _ in range(64)]
    batch = {key: np.stack([d[key] for d in dicts]) for key in ("observation", "achieved_goal", "desired_goal")}
    flat = np.concatenate([batch[key] for key in ("observation", "achieved_goal", "desired_goal")], axis=-1)
    expected, _ = loaded.predict(flat, deterministic=True)
    from_dict, _ = policy.predict(batch, deterministic=True)
    from_flat, _ = policy.predict(flat, deterministic=True)
    assert np.array_equal(from_dict, from_flat)
    single, _ = policy.predict(dicts[0], deterministic=True)  # one row: BLAS may round differently
    if inner == "DQN":
        assert action_disagreements(policy, expected, from_dict, batch) == 0
        assert action_disagreements(policy, from_dict[0], single, dicts[0]) == 0
    else:
        assert predict_agreement(policy, expected, "predict", batch, "action", deterministic=True) <= 1.0
        assert predict_agreement(policy, from_dict[0], "predict", dicts[0], "action", deterministic=True) <= 1.0
