"""Differential tests: SB2 itself against the exported file run by the NumPy runtime.

The matrix is every actor-critic algorithm x observation space x action space SB2 can build with MlpPolicy,
each with random weights and one of the net_arch/activation variants (rotating, so every variant meets many
spaces). The rule is spec/SPEC.md section 6's: discrete actions identical (near-ties excepted), every float within 8
error scales of SB2's (the scales the NumPy reference computes for those very inputs).
"""
import itertools

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.export import build_sbif
from sbif.export.live import compare_with_sb2, describe_live_model, load_sb2_model
from sbif.runtime.error_scales import predict_agreement

from .agreement import assert_report_agrees
from .sb2_models import ACTION_SPACES, ALGORITHMS, ARCHITECTURES, OBSERVATION_SPACES, buildable, make_model, save

COMBINATIONS = [combo for combo in itertools.product(ALGORITHMS, OBSERVATION_SPACES, ACTION_SPACES)
                if buildable(combo[0], combo[2])]


def observations_for(policy, rng):
    """Random observations plus edge rows: bounds, large magnitudes, out-of-range indices."""
    space = policy.observation_space
    batch = sample_observations(space, 24, rng)
    if space["kind"] == "box":
        from sbif.format.document import decode_bound
        shape = tuple(space["shape"])
        low = decode_bound(space["low"], shape, space["dtype"])
        high = decode_bound(space["high"], shape, space["dtype"])
        edges = [np.where(np.isfinite(low), low, -1e4), np.where(np.isfinite(high), high, 1e4), np.zeros(shape)]
        batch = np.concatenate([batch, np.asarray(edges).astype(space["dtype"])])
    elif space["kind"] == "discrete":
        batch = np.concatenate([batch, [0, space["n"] - 1, space["n"]]])
    return batch


@pytest.mark.parametrize("algorithm,obs_kind,action_kind", COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def test_export_matches_sb2(algorithm, obs_kind, action_kind, tmp_path):
    index = COMBINATIONS.index((algorithm, obs_kind, action_kind))
    source = save(make_model(algorithm, obs_kind, action_kind, index, seed=index), tmp_path, "model")
    model, detected = load_sb2_model(source)
    assert detected == algorithm
    target = str(tmp_path / "model.sbif")
    build_sbif(describe_live_model(model, detected, source)).write(target)
    policy = sbif.load(target)

    observations = observations_for(policy, np.random.default_rng(index))
    assert_report_agrees(compare_with_sb2(model, policy, observations))

    # One observation (not batched): same shape and dtype as SB2, and action_probability of given actions.
    single = observations[0]
    expected_action, _ = model.predict(single, deterministic=True)
    actual_action, state = policy.predict(single, deterministic=True)
    assert state is None
    assert np.shape(actual_action) == np.shape(expected_action)
    assert np.asarray(actual_action).dtype == np.asarray(expected_action).dtype
    actions, _ = model.predict(observations, deterministic=True)
    for logp in (False, True):
        expected = model.action_probability(observations, actions=actions, logp=logp)
        assert predict_agreement(policy, expected, "action_probability", observations, "probability",
                                 actions=actions, logp=logp) <= 1.0, logp
    assert predict_agreement(policy, model.action_probability(single), "action_probability", single,
                             "probability") <= 1.0


def test_matrix_covers_every_variant():
    assert len(COMBINATIONS) >= len(ARCHITECTURES) * 3
