"""Facts about SB2 save files that need neither TensorFlow nor unpickling: format, hash, algorithm."""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Mapping

from ..errors import ExportError, preview
from .description import ALGORITHMS

#: A key only that algorithm's `save()` writes (present in every SB2 2.x version we know), in check order.
ALGORITHM_MARKERS = (
    ("HER", "n_sampled_goal"),
    ("GAIL", "using_gail"),
    ("TRPO", "max_kl"),
    ("ACER", "q_coef"),
    ("ACKTR", "kfac_clip"),
    ("PPO1", "clip_param"),
    ("PPO2", "cliprange"),
    ("DQN", "exploration_fraction"),
    ("DDPG", "nb_rollout_steps"),
    ("TD3", "policy_delay"),
    ("SAC", "target_entropy"),
    ("A2C", "alpha"),
)


def detect_algorithm(data: Mapping[str, Any], path: str = "model") -> str:
    """Which SB2 algorithm saved `data` (the dict SB2 stores next to the parameters)."""
    if not isinstance(data, Mapping):
        raise ExportError("{}: the saved data is not a dict; is this an SB2 model file?".format(path))
    for algorithm, marker in ALGORITHM_MARKERS:
        if marker in data:
            if algorithm == "GAIL" and not data.get("using_gail"):
                continue
            return algorithm
    raise ExportError("{}: cannot tell which algorithm saved this file; pass --algo NAME".format(path))


def canonical_algorithm(name: Any) -> str:
    """The algorithm as SB2 names its class ('PPO2') from a name in any case ('ppo2', as the zoo names its
    folders): what `--algo` means to both loaders. ExportError for a name SB2 does not have."""
    canonical = name.upper() if isinstance(name, str) else None
    if canonical not in ALGORITHMS:
        raise ExportError("unknown algorithm {}; SB2 has {} (in any case)".format(preview(name), ", ".join(ALGORITHMS)))
    return canonical


def file_format(path: str) -> str:
    """'zip' for SB2 >= 2.8 archives, 'pkl' for the legacy cloudpickle files."""
    with open(path, "rb") as handle:
        return "zip" if handle.read(4) == b"PK\x03\x04" else "pkl"


def describe_source(path: str) -> Dict[str, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"file_name": os.path.basename(path), "sha256": digest.hexdigest(), "format": file_format(path)}
