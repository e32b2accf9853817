"""The SB3 test models (tests/sb3_models.py): every case builds, saves and loads back with SB3 and predicts, its
random weights replaced every value SB3 initialized, the enumeration covers what SB3 offers, and what it leaves
out SB3 refuses for the reason given."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")  # the modern environment's; the SB2 environment skips this file
pytest.importorskip("sb3_contrib")

import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm  # noqa: E402
from stable_baselines3.common.torch_layers import NatureCNN  # noqa: E402

from tests.sb3_models import (ACTION_SPACES, ACTIVATIONS, ALGORITHMS, IMAGE_SIDE, MLP_OBSERVATIONS,  # noqa: E402
                              OBSERVATION_SPACES, SB3_CASES, UNBUILDABLE, GoalSpacesEnv, Sb3Case, build_model,
                              build_untrained_model, enumeration_table, is_her, load_model, make_env,
                              random_observations, randomize_parameters, save_model)

CASE_IDS = [case.id for case in SB3_CASES]
#: Policies whose observation is a Dict (the others are tried on the MLP observation kinds).
MULTI_INPUT = ("MultiInputPolicy", "MultiInputLstmPolicy")


def policy_state(model) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.policy.state_dict().items()}


@pytest.mark.parametrize("case", SB3_CASES, ids=CASE_IDS)
def test_randomization_changes_every_parameter_and_buffer(case: Sb3Case):
    model = build_untrained_model(case, seed=3)
    initial = policy_state(model)
    randomize_parameters(model, seed=3)
    randomized = policy_state(model)
    kept = [name for name, value in initial.items() if bool((randomized[name] == value).any())]
    assert not kept, "these kept (some of) SB3's initial values: {}".format(kept)
    assert all(torch.isfinite(value).all() for value in randomized.values())
    if hasattr(model, "exploration_rate"):
        assert 0.0 < model.exploration_rate <= 1.0
    if hasattr(model, "weights"):  # ARS: the vector it saves is its policy's parameters
        assert torch.equal(model.weights, torch.nn.utils.parameters_to_vector(model.policy.parameters()))


@pytest.mark.parametrize("case", SB3_CASES, ids=CASE_IDS)
def test_every_case_saves_loads_and_predicts(case: Sb3Case, tmp_path):
    path = save_model(case, tmp_path, seed=1)
    loaded = load_model(case, path, seed=1)
    built = policy_state(build_model(case, seed=1))
    assert type(loaded).__name__ == case.algorithm
    assert set(loaded.policy.state_dict()) == set(built)
    for name, value in loaded.policy.state_dict().items():
        assert torch.equal(value, built[name]), name
    n = 32
    observations = random_observations(case.observation_space, n, np.random.RandomState(2))
    extra = {"episode_start": np.arange(n) % 3 == 0} if case.algorithm == "RecurrentPPO" else {}
    for deterministic in (True, False):
        actions, state = loaded.predict(observations, deterministic=deterministic, **extra)
        assert actions.shape == (n,) + case.action_space.shape
        if isinstance(case.action_space, spaces.Box):
            assert np.all(actions >= case.action_space.low) and np.all(actions <= case.action_space.high)
        else:
            assert all(case.action_space.contains(np.asarray(action, case.action_space.dtype)) for action in actions)
        assert (state is not None) == (case.algorithm == "RecurrentPPO")
        if deterministic:  # every action component depends on the observation (randomize_parameters' calibration)
            components = actions.reshape(n, -1)
            assert all(len(np.unique(components[:, column])) > 1 for column in range(components.shape[1]))


def test_case_ids_are_unique():
    assert len(set(CASE_IDS)) == len(CASE_IDS)


def test_the_enumeration_is_the_size_the_tests_can_afford():
    assert 120 <= len(SB3_CASES) <= 200


def test_every_algorithm_offers_every_policy_in_the_enumeration():
    for name, algorithm in ALGORITHMS.items():
        built = {case.policy for case in SB3_CASES if case.algorithm == name}
        assert built == set(algorithm.policy_aliases), name


def test_every_space_an_algorithm_may_take_is_built_or_refused_by_sb3():
    """Per algorithm: each action space class, and each observation kind of its non-Dict policies, is in a case or
    in UNBUILDABLE (whose own test shows SB3 refuses it)."""
    refused = [entry.case for entry in UNBUILDABLE]
    for name in ALGORITHMS:
        for action_class in {type(make()) for make in ACTION_SPACES.values()}:
            assert any(case.algorithm == name and type(case.action_space) is action_class
                       for case in SB3_CASES + refused), (name, action_class.__name__)
        for observation in MLP_OBSERVATIONS:
            assert any(case.algorithm == name and case.policy not in MULTI_INPUT
                       and case.observation_space == OBSERVATION_SPACES[observation]()
                       for case in SB3_CASES + refused), (name, observation)


def test_every_activation_appears():
    used = {case.policy_kwargs.get("activation_fn") for case in SB3_CASES}
    assert set(ACTIVATIONS) <= used


def test_every_off_policy_algorithm_with_a_multi_input_policy_has_a_her_case():
    her = {case.algorithm for case in SB3_CASES if is_her(case)}
    assert her == {name for name, algorithm in ALGORITHMS.items()
                   if issubclass(algorithm, OffPolicyAlgorithm) and "MultiInputPolicy" in algorithm.policy_aliases}


def test_the_options_that_change_a_policy_graph_each_appear():
    def appears(predicate) -> bool:
        return any(predicate(case.policy_kwargs, case.algorithm_kwargs, case) for case in SB3_CASES)

    assert appears(lambda p, a, c: a.get("use_sde") and p.get("squash_output") and c.algorithm == "PPO")
    assert appears(lambda p, a, c: a.get("use_sde") and p.get("full_std") is False)
    assert appears(lambda p, a, c: a.get("use_sde") and p.get("use_expln"))
    assert appears(lambda p, a, c: a.get("use_sde") and c.algorithm == "SAC" and p.get("clip_mean") == 0.0)
    assert appears(lambda p, a, c: a.get("use_sde") and c.algorithm == "SAC" and "clip_mean" not in p)
    assert appears(lambda p, a, c: p.get("normalize_images") is False)
    assert appears(lambda p, a, c: p.get("share_features_extractor") is False and c.policy == "CnnPolicy")
    assert appears(lambda p, a, c: p.get("share_features_extractor") is True and c.algorithm == "SAC")
    assert appears(lambda p, a, c: p.get("shared_lstm") and not p.get("enable_critic_lstm", True))
    assert appears(lambda p, a, c: p.get("enable_critic_lstm") is False and not p.get("shared_lstm"))
    assert appears(lambda p, a, c: p.get("n_lstm_layers") == 2)
    assert appears(lambda p, a, c: c.algorithm == "CrossQ" and p.get("batch_norm", True))
    assert appears(lambda p, a, c: "n_quantiles" in p and c.algorithm == "QRDQN")
    assert appears(lambda p, a, c: "n_quantiles" in p and c.algorithm == "TQC")
    assert appears(lambda p, a, c: c.policy == "LinearPolicy" and p.get("with_bias"))
    for arch in ([], dict(pi=[8], vf=[6, 4]), dict(pi=[8], qf=[6, 4])):
        assert appears(lambda p, a, c: p.get("net_arch") == arch), arch
    assert appears(lambda p, a, c: "net_arch" not in p and c.policy == "MlpPolicy")


@pytest.mark.parametrize("entry", UNBUILDABLE, ids=[entry.case.id for entry in UNBUILDABLE])
def test_unbuildable_combinations_are_refused_by_sb3_for_the_reason_given(entry):
    with pytest.raises(Exception) as refusal:
        build_model(entry.case)
    assert entry.reason in str(refusal.value)


def test_images_are_as_small_as_nature_cnn_allows():
    NatureCNN(spaces.Box(0, 255, (1, IMAGE_SIDE, IMAGE_SIDE), np.uint8))
    with pytest.raises(RuntimeError):
        NatureCNN(spaces.Box(0, 255, (1, IMAGE_SIDE - 1, IMAGE_SIDE), np.uint8))


def test_random_observations_cover_each_space_its_bounds_and_beyond():
    rng = np.random.RandomState(0)
    for kind, make in OBSERVATION_SPACES.items():
        space = make()
        batch = random_observations(space, 64, rng)
        subspaces = space.spaces if isinstance(space, spaces.Dict) else {None: space}
        for key, subspace in subspaces.items():
            values = batch[key] if key is not None else batch
            assert values.shape == (64,) + subspace.shape and values.dtype == subspace.dtype, (kind, key)
            if isinstance(subspace, spaces.Box) and subspace.dtype == np.uint8:
                assert values.min() == 0 and values.max() == 255, (kind, key)
            elif isinstance(subspace, spaces.Box):
                finite = np.isfinite(subspace.low)
                assert np.array_equal(values[0][finite], subspace.low[finite].astype(values.dtype)), (kind, key)
                assert (values[2:] < subspace.low)[..., finite].any(), (kind, key)
                assert (values[2:] > subspace.high)[..., finite].any(), (kind, key)
            else:
                assert all(subspace.contains(value) for value in values), (kind, key)
                assert len(np.unique(values, axis=0)) > 1, (kind, key)


def test_goal_environments_keep_hers_compute_reward_contract():
    """HER recomputes rewards of relabelled transitions with compute_reward, over batches: a step's reward must be
    compute_reward of its goals, for one goal and for a batch."""
    for case in [case for case in SB3_CASES if is_her(case)][:2]:
        env = make_env(case, seed=4)
        assert isinstance(env, GoalSpacesEnv)
        env.reset(seed=4)
        goals = []
        for _ in range(6):
            observation, reward, _, _, _ = env.step(env.action_space.sample())
            goals.append((observation["achieved_goal"], observation["desired_goal"], reward))
            assert reward == env.compute_reward(observation["achieved_goal"], observation["desired_goal"], {})
        achieved, desired, rewards = (np.stack(column) for column in zip(*goals))
        assert np.array_equal(env.compute_reward(achieved, desired, [{}] * len(goals)), rewards)
        reached = env.compute_reward(achieved, achieved, [{}] * len(goals))
        assert np.array_equal(reached, np.zeros(len(goals), np.float32))


def test_a_her_model_trains_on_its_goal_environment():
    """HerReplayBuffer's sampling (which calls compute_reward on relabelled goals) runs on the goal environment."""
    case = next(case for case in SB3_CASES if is_her(case) and case.algorithm == "SAC")
    model = build_model(case, seed=5)
    model.learn(total_timesteps=12)
    assert model.replay_buffer.size() > 0


def test_the_enumeration_table_counts_every_case_once():
    table = enumeration_table()
    assert sum(row[-1] for row in table) == len(SB3_CASES)
    assert len({row[:-1] for row in table}) == len(table)
    assert {row[0] for row in table} >= set(ALGORITHMS) | {"SAC + HER", "DQN + HER"}
