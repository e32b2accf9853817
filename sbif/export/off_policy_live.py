"""SB2's own critic values for SAC, TD3 and DDPG (needs Stable-Baselines): what the exported `qf1`, `qf2`,
`value` and `qf` outputs must reproduce, read from the TensorFlow graph SB2 built."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np


def sb2_critic_values(model: Any, observations: np.ndarray) -> Dict[str, np.ndarray]:
    """{output name: [B] values} evaluated by SB2 on a batch already shaped and typed as SB2 feeds it.

    SAC: values_fn/qf1, qf2 at the deterministic action tanh(mean), and values_fn/vf. SB2's `qf1` tensors on the
    policy take the sampled action, so the deterministic action is computed first and fed in its place.
    TD3: values_fn/qf1, qf2 at the actor's action. DDPG: `critic_with_actor_tf` (clipped, de-normalized).
    """
    name = type(model).__name__
    policy = model.policy_tf
    if name == "SAC":
        action = policy.sess.run(policy.deterministic_policy, {policy.obs_ph: observations})
        q1, q2, value = policy.sess.run([policy.qf1, policy.qf2, policy.value_fn],
                                        {policy.obs_ph: observations, policy.policy: action})
        return {"qf1": q1[:, 0], "qf2": q2[:, 0], "value": value[:, 0]}
    if name == "TD3":
        q1, q2 = policy.sess.run([policy.qf1, policy.qf2], {policy.obs_ph: observations})
        return {"qf1": q1[:, 0], "qf2": q2[:, 0]}
    if name == "DDPG":
        return {"qf": model.sess.run(model.critic_with_actor_tf, {model.obs_train: observations})[:, 0]}
    return {}


def compare_critics(model: Any, policy: Any, feeds: Dict[str, np.ndarray],
                    sb2_observations: np.ndarray) -> Dict[str, float]:
    """The error of each exported critic output against SB2, relative to the batch's critic scale:
    max |actual - expected| / (s + |expected|) with s = max(1, max |expected|), i.e. `float_error` of both divided
    by s. Q-values carry the scale of the returns, and a Q near 0 is the cancellation of terms of that scale, which
    float32 evaluates only to ~1e-7 of the scale in SB2 itself (on the zoo's SAC Pendulum model SB2 is 1.3e-5 from
    the float64 value at such a point, per SPEC's element-wise rule, and SBIF 3.7e-6): measuring against the scale
    keeps the check sharp (a wrong layer is off by O(1)) without failing on float32 rounding.

    `feeds` are the exported file's inputs, `sb2_observations` what SB2 is fed for them (normalized, when the
    file folds VecNormalize statistics in and so takes raw observations)."""
    from ..compare import float_error

    report = {}
    for name, expected in sb2_critic_values(model, sb2_observations).items():
        if name in policy.output_names:
            actual = policy.run(feeds, [name])[name]
            scale = max(1.0, float(np.max(np.abs(expected)))) if np.all(np.isfinite(expected)) else 1.0
            report[name] = float_error(np.asarray(expected, np.float64) / scale, np.asarray(actual, np.float64) / scale)
    return report
