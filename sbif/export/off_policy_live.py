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
