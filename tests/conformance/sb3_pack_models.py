"""The SB3 saves the golden packs of conformance/golden/regenerate.py are recorded for (modern environment).

The conformance package may not import SB3 (only its oracle does), so the presets build their models here, from the
enumeration's own builders (tests/sb3_models.py): random weights from a seed, tiny networks.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from tests.sb3_models import build_model, make_case, make_env, save_model

#: rl-zoo3's layout: `ENV.zip` beside `ENV/vecnormalize.pkl`.
VECNORMALIZE_FILE = "vecnormalize.pkl"


def save_case(directory: str, name: str, algorithm: str, policy: str, observation: str, action: str,
              policy_kwargs: Optional[Dict[str, Any]] = None, seed: int = 0, **algorithm_kwargs: Any) -> str:
    """The model of `make_case(...)`, random from `seed`, saved by SB3 as `directory/NAME.zip`; an `activation_fn`
    may be given as the name of its torch.nn class."""
    policy_kwargs = dict(policy_kwargs or {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        policy_kwargs["activation_fn"] = getattr(torch.nn, policy_kwargs["activation_fn"])
    case = make_case(algorithm, policy, observation, action, policy_kwargs, **algorithm_kwargs)
    source = os.path.join(directory, name + ".zip")
    os.replace(save_model(case, directory, seed), source)
    return source


def save_vecnormalized(directory: str, name: str, seed: int) -> Tuple[str, str]:
    """A PPO on a 4-dimensional Box, trained (as far as the statistics go) under SB3's VecNormalize, laid out as
    rl-zoo3 lays it out: (`NAME.zip`, `NAME/vecnormalize.pkl`). The statistics are far from the identity and the
    clip is tight, so a runtime that leaves out the normalization or its clip fails."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    case = make_case("PPO", "MlpPolicy", "box", "discrete", {"net_arch": [8]})
    model = build_model(case, seed)
    source = os.path.join(directory, name + ".zip")
    model.save(source)
    normalized = VecNormalize(DummyVecEnv([lambda: make_env(case, seed)]), clip_obs=2.5)
    rng = np.random.RandomState(seed)
    normalized.obs_rms.mean = rng.uniform(-2.0, 2.0, 4)
    normalized.obs_rms.var = rng.uniform(0.05, 9.0, 4)
    folder = os.path.join(directory, name)
    os.makedirs(folder)
    statistics = os.path.join(folder, VECNORMALIZE_FILE)
    normalized.save(statistics)
    return source, statistics
