"""Recurrent policies stepped side by side in SB2 and SBIF (needs the SB2 environment)."""
import numpy as np

from sbif.compare import ATOL, float_error, sample_observations
from sbif.export.live import sb2_policy


def run_sequence(model, exported, n_envs, rng, steps=20):
    """Step SB2 and SBIF side by side with random resets; compare actions, probabilities, values and states
    at every step (each within ATOL, discrete actions identical). Returns the worst float error seen."""
    sb2_state, our_state = model.initial_state, None
    kind = exported.document["predict"]["distribution"]["kind"]
    worst = 0.0

    def check(error, what, step):
        assert error <= ATOL, (what, step, error)
        return max(worst, error)

    for step in range(steps):
        obs = sample_observations(exported.observation_space, n_envs, rng)
        mask = rng.random(n_envs) < (0.0 if step == 0 else 0.25)
        expected_probability = model.action_probability(obs, sb2_state, mask)
        actual_probability = exported.action_probability(obs, our_state, mask)
        if isinstance(expected_probability, list):
            worst = check(max(float_error(e, a) for e, a in zip(expected_probability, actual_probability)),
                          "probabilities", step)
        else:
            worst = check(float_error(expected_probability, actual_probability), "probabilities", step)
        value = sb2_policy(model).value(exported.observation_batch(obs)[0], sb2_state, mask)
        worst = check(float_error(value, exported.value(obs, our_state, mask)), "value", step)
        expected, sb2_state = model.predict(obs, sb2_state, mask, deterministic=True)
        actual, our_state = exported.predict(obs, our_state, mask, deterministic=True)
        if kind == "diag_gaussian":
            worst = check(float_error(expected, actual), "action", step)
        else:
            assert np.array_equal(expected, actual), (step, expected, actual)
        worst = check(float_error(sb2_state, our_state), "state", step)
        our_state = sb2_state  # keep the two in lock-step, so an error is reported where it arises
    return worst
