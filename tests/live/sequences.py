"""Recurrent policies stepped side by side in SB2 and SBIF (needs the SB2 environment)."""
from sbif.compare import sample_observations
from sbif.export.live import sb2_policy
from sbif.runtime.error_scales import predict_agreement

from .agreement import action_disagreements


def run_sequence(model, exported, n_envs, rng, steps=20):
    """Step SB2 and SBIF side by side with random resets; compare probabilities, values, actions and states at
    every step under SPEC section 6's rule (each float result within its error scales on that step's inputs,
    discrete actions equal but for near-ties). SBIF is fed SB2's state, so an error is reported at the step
    where it arises and every step's inputs are exact. Returns the worst ratio |SB2 - SBIF| / (8 scales) seen."""
    sb2_state, our_state = model.initial_state, None
    kind = exported.document["predict"]["distribution"]["kind"]
    worst = 0.0

    def check(ratio, what, step):
        assert ratio <= 1.0, (what, step, ratio)
        return max(worst, ratio)

    for step in range(steps):
        obs = sample_observations(exported.observation_space, n_envs, rng)
        mask = rng.random(n_envs) < (0.0 if step == 0 else 0.25)
        inputs = dict(observation=obs, state=our_state, mask=mask)
        worst = check(predict_agreement(exported, model.action_probability(obs, sb2_state, mask),
                                        "action_probability", result="probability", **inputs), "probabilities", step)
        value = sb2_policy(model).value(exported.observation_batch(obs)[0], sb2_state, mask)
        worst = check(predict_agreement(exported, value, "value", result="value", **inputs), "value", step)
        expected, sb2_state = model.predict(obs, sb2_state, mask, deterministic=True)
        if kind == "diag_gaussian":
            worst = check(predict_agreement(exported, expected, "predict", result="action", deterministic=True,
                                            **inputs), "action", step)
        else:
            actual, _ = exported.predict(obs, our_state, mask, deterministic=True)
            assert action_disagreements(exported, expected, actual, **inputs) == 0, (step, expected, actual)
        worst = check(predict_agreement(exported, sb2_state, "predict", result="state", deterministic=True, **inputs),
                      "state", step)
        our_state = sb2_state  # keep the two in lock-step, so an error is reported where it arises
    return worst
