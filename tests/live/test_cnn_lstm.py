"""Differential tests for CNN and recurrent actor-critic policies: SB2 against the exported file.

Recurrent policies run sequences of 20 steps over several envs at once, with episode resets at random
steps; SB2's state and ours are carried separately and compared at every step.
"""
import itertools

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.export import build_sbif
from sbif.export.live import compare_with_sb2, describe_live_model, load_sb2_model
from sbif.runtime.error_scales import ErrorScales, predict_scales, result_agreement

from .agreement import assert_report_agrees
from .sb2_models import ACTION_SPACES, IMAGE_SPACES, make_model, save
from .sequences import run_sequence

#: SB2's buildable (algorithm, policy) pairs beyond MlpPolicy (sb2-inference.md §1.2, checked by building)
PAIRS = [("A2C", p) for p in ("CnnPolicy", "MlpLstmPolicy", "MlpLnLstmPolicy", "CnnLstmPolicy", "CnnLnLstmPolicy")]
PAIRS += [("ACER", p) for p in ("CnnPolicy", "MlpLstmPolicy", "MlpLnLstmPolicy", "CnnLstmPolicy", "CnnLnLstmPolicy")]
PAIRS += [("ACKTR", p) for p in ("CnnPolicy", "MlpLstmPolicy", "MlpLnLstmPolicy")]
PAIRS += [("PPO2", p) for p in ("CnnPolicy", "MlpLstmPolicy", "MlpLnLstmPolicy", "CnnLstmPolicy", "CnnLnLstmPolicy")]
PAIRS += [("PPO1", "CnnPolicy"), ("TRPO", "CnnPolicy")]
MLP_OBSERVATIONS = ["box", "discrete", "multi_discrete", "multi_binary", "box_unbounded_2d"]
RECURRENT_KWARGS = [{"n_lstm": 16}, {"n_lstm": 8, "net_arch": [12, "lstm", dict(pi=[6], vf=[5])]},
                    {"n_lstm": 10, "layers": [9]}, {"n_lstm": 7, "net_arch": ["lstm", 8, dict(vf=[4])]}]

CASES = []
for (algorithm, policy), action in itertools.product(PAIRS, ACTION_SPACES):
    if algorithm == "ACER" and action != "discrete":
        continue
    index = len(CASES)
    if policy.startswith("Cnn"):
        obs = sorted(IMAGE_SPACES)[index % len(IMAGE_SPACES)]
        kwargs = {"n_lstm": 16} if "Lstm" in policy else {}
    else:
        obs = MLP_OBSERVATIONS[index % len(MLP_OBSERVATIONS)]
        kwargs = RECURRENT_KWARGS[index % len(RECURRENT_KWARGS)]
    CASES.append((algorithm, policy, obs, action, kwargs))


def export(model, tmp_path):
    source = save(model, tmp_path, "model")
    loaded, algorithm = load_sb2_model(source)
    target = str(tmp_path / "model.sbif")
    build_sbif(describe_live_model(loaded, algorithm, source)).write(target)
    return loaded, sbif.load(target)


@pytest.mark.parametrize("algorithm,policy,obs_kind,action_kind,kwargs", CASES,
                         ids=["-".join(case[:4]) + ("-" + str(i) if "Lstm" in case[1] else "")
                              for i, case in enumerate(CASES)])
def test_policy_matches_sb2(algorithm, policy, obs_kind, action_kind, kwargs, tmp_path):
    index = CASES.index((algorithm, policy, obs_kind, action_kind, kwargs))
    recurrent = "Lstm" in policy
    n_envs = 3 if recurrent else 1
    model, exported = export(make_model(algorithm, obs_kind, action_kind, 0, seed=index, policy=policy,
                                        n_envs=n_envs, policy_kwargs=dict(kwargs)), tmp_path)
    assert (exported.recurrent is not None) == recurrent
    rng = np.random.default_rng(index)
    if not recurrent:
        assert_report_agrees(compare_with_sb2(model, exported, sample_observations(exported.observation_space, 16,
                                                                                    rng)))
        return
    run_sequence(model, exported, n_envs, rng)


def test_recurrent_state_is_batch_free(tmp_path):
    """SB2 needs exactly n_envs rows; the exported policy takes any number, each row answered alike whatever the
    batch (within its error scales), and as SB2 answers it."""
    model, exported = export(make_model("PPO2", "box", "discrete", 0, policy="MlpLstmPolicy", n_envs=2,
                                        policy_kwargs={"n_lstm": 8}), tmp_path)
    obs = sample_observations(exported.observation_space, 5, np.random.default_rng(0))
    actions, state = exported.predict(obs, deterministic=True)
    state_scale = predict_scales(exported, ErrorScales(exported.model), "predict", obs, deterministic=True)["state"]
    assert state.shape == state_scale.shape == (5, 16)
    single, single_state = exported.predict(obs[3], deterministic=True)
    assert single == actions[3] and result_agreement(state[3], single_state, state_scale[3]) <= 1.0
    expected, sb2_state = model.predict(obs[:2], deterministic=True)
    assert np.array_equal(expected, actions[:2])
    assert result_agreement(sb2_state, state[:2], state_scale[:2]) <= 1.0
