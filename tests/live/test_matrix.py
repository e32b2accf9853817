"""Every SB2 model a user can build, exported and matched: algorithm x policy class x observation kind x
action kind, as enumerated by `buildable` (324 combinations, `shared/reference/sb2-inference.md` section 6).

Each is built by SB2 with random weights (every parameter, logstd and layer-norm gains included), exported
with the live loader and compared with SB2 on its deterministic actions, probabilities, values, Q-values and
critics; recurrent policies run 20-step sequences over two envs with resets at random steps. The enumeration
is checked both ways: the count, and a sample of the combinations it rules out, which SB2 refuses to build.
The terminal summary prints the table of the closing note: combinations per family, and the worst difference
from SB2 as a fraction of what SPEC section 6 allows (|SB2 - SBIF| / (8 error scales); <= 1 passes).
"""
import itertools

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.export import build_sbif
from sbif.export.live import compare_with_sb2, describe_live_model, load_sb2_model, quiet

from .agreement import assert_report_agrees
from .sequences import run_sequence

ACTOR_CRITIC = ("A2C", "ACER", "ACKTR", "PPO1", "PPO2", "TRPO", "GAIL")
ACTOR_CRITIC_POLICIES = ("MlpPolicy", "CnnPolicy", "MlpLstmPolicy", "MlpLnLstmPolicy", "CnnLstmPolicy",
                         "CnnLnLstmPolicy")
Q_LEARNING = ("DQN", "SAC", "TD3", "DDPG")
Q_LEARNING_POLICIES = ("MlpPolicy", "LnMlpPolicy", "CnnPolicy", "LnCnnPolicy")
#: observation kind -> the space the test models use (sb2_models / off_policy_models names); I is 36x36x2 uint8
OBSERVATIONS = {"B": "box", "I": "image_36_uint8", "D": "discrete", "MD": "multi_discrete", "MB": "multi_binary"}
ACTIONS = ("d", "b", "md", "mb")
FAMILY = {"A2C": "actor-critic", "ACER": "actor-critic", "ACKTR": "actor-critic", "PPO1": "actor-critic",
          "PPO2": "actor-critic", "TRPO": "actor-critic", "GAIL": "actor-critic", "DQN": "DQN", "SAC": "SAC",
          "TD3": "TD3", "DDPG": "DDPG"}


def buildable(algorithm, policy, obs, action):
    """SB2 2.10.2's rules (each checked by building): CNN policies need images; ACER takes Discrete actions;
    ACKTR's K-FAC cannot build CNN-LSTMs; PPO1/TRPO/GAIL cannot build recurrent policies; GAIL's
    discriminator needs a 1-D float Box observation and Discrete or Box actions, and an MLP; DQN acts
    Discrete, SAC/TD3/DDPG Box."""
    if "Cnn" in policy and obs != "I":
        return False
    if algorithm in Q_LEARNING:
        return action == ("d" if algorithm == "DQN" else "b")
    if algorithm == "ACER":
        return action == "d"
    if algorithm == "ACKTR":
        return policy not in ("CnnLstmPolicy", "CnnLnLstmPolicy")
    if algorithm in ("PPO1", "TRPO"):
        return "Lstm" not in policy
    if algorithm == "GAIL":
        return policy == "MlpPolicy" and obs == "B" and action in ("d", "b")
    return True


EVERY = [(algorithm, policy, obs, action)
         for algorithm in ACTOR_CRITIC + Q_LEARNING
         for policy in (ACTOR_CRITIC_POLICIES if algorithm in ACTOR_CRITIC else Q_LEARNING_POLICIES)
         for obs, action in itertools.product(OBSERVATIONS, ACTIONS)]
COMBINATIONS = [combination for combination in EVERY if buildable(*combination)]
#: combinations the rules exclude for a reason SB2 itself enforces (not the ones excluded by definition,
#: like a CNN on a non-image space), each of which SB2 must refuse to build
REFUSED = [("ACER", "MlpPolicy", "B", "b"), ("ACKTR", "CnnLstmPolicy", "I", "d"), ("PPO1", "MlpLstmPolicy", "B", "d"),
           ("TRPO", "MlpLnLstmPolicy", "D", "md"), ("GAIL", "MlpPolicy", "D", "d"), ("GAIL", "MlpPolicy", "B", "md"),
           ("DQN", "MlpPolicy", "B", "b"), ("SAC", "MlpPolicy", "B", "d"), ("TD3", "LnMlpPolicy", "MB", "md"),
           ("DDPG", "MlpPolicy", "B", "d")]


def make(algorithm, policy, obs, action, seed):
    """An SB2 model with random weights; recurrent ones for two envs."""
    if algorithm in ACTOR_CRITIC:
        from .sb2_models import make_model

        actions = {"d": "discrete", "b": "box", "md": "multi_discrete", "mb": "multi_binary"}
        return make_model(algorithm, OBSERVATIONS[obs], actions[action], seed, seed=seed, policy=policy,
                          n_envs=2 if "Lstm" in policy else 1)
    if algorithm == "DQN":
        from .dqn_models import make_dqn

        return make_dqn(policy, OBSERVATIONS[obs], seed=seed)
    from .off_policy_models import make_model as make_off_policy

    return make_off_policy(algorithm, policy, OBSERVATIONS[obs], "box3", seed=seed)


def test_the_enumeration_is_sb2s():
    assert len(EVERY) == 7 * 6 * 20 + 4 * 4 * 20
    assert len(COMBINATIONS) == 324
    assert not set(REFUSED) & set(COMBINATIONS)


@pytest.mark.parametrize("algorithm,policy,obs,action", REFUSED, ids=["-".join(c) for c in REFUSED])
def test_sb2_refuses_what_the_enumeration_excludes(algorithm, policy, obs, action):
    from .sb2_models import ACTION_SPACES, IMAGE_SPACES, OBSERVATION_SPACES, SpacesEnv, sb2

    spaces = dict(OBSERVATION_SPACES, **IMAGE_SPACES)
    actions = {"d": "discrete", "b": "box", "md": "multi_discrete", "mb": "multi_binary"}
    env = SpacesEnv(spaces[OBSERVATIONS[obs]](), ACTION_SPACES[actions[action]]())
    extra = {"expert_dataset": None} if algorithm == "GAIL" else {}
    with pytest.raises(Exception):
        with quiet():
            getattr(sb2, algorithm)(policy, env, **extra)


@pytest.mark.parametrize("algorithm,policy,obs,action", COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def test_combination_matches_sb2(algorithm, policy, obs, action, tmp_path, record_property):
    seed = COMBINATIONS.index((algorithm, policy, obs, action))
    model = make(algorithm, policy, obs, action, seed)
    source = str(tmp_path / "model.zip")
    with quiet():
        model.save(source)
    loaded, detected = load_sb2_model(source)
    assert detected == algorithm
    policy_file = build_sbif(describe_live_model(loaded, detected, source))
    exported = sbif.Policy(policy_file)
    rng = np.random.default_rng(seed)
    record_property("family", FAMILY[algorithm])
    if "Lstm" in policy:
        worst = run_sequence(loaded, exported, 2, rng)
    else:
        report = compare_with_sb2(loaded, exported, sample_observations(exported.observation_space, 32, rng))
        assert_report_agrees(report)
        worst = max(value for key, value in report.items() if key != "action_mismatches")
    record_property("max_ratio", worst)
