"""Facts about SB3 save files that need neither torch nor unpickling: which algorithm saved a file, where its
class lives, and which SB3 version wrote it."""
from __future__ import annotations

import zipfile
from typing import Any, Dict, Mapping, Optional, Tuple

from ...errors import ExportError, preview
from .description import SB3_ALGORITHMS
from .policy_classes import PolicyClass
from .save_file import VERSION_MEMBER

#: algorithm -> (module, class) that loads it (the live loader imports them; the safe loader only names them).
ALGORITHM_CLASSES: Dict[str, Tuple[str, str]] = {
    "A2C": ("stable_baselines3", "A2C"), "PPO": ("stable_baselines3", "PPO"), "DQN": ("stable_baselines3", "DQN"),
    "SAC": ("stable_baselines3", "SAC"), "TD3": ("stable_baselines3", "TD3"), "DDPG": ("stable_baselines3", "DDPG"),
    "ARS": ("sb3_contrib", "ARS"), "QRDQN": ("sb3_contrib", "QRDQN"), "TQC": ("sb3_contrib", "TQC"),
    "TRPO": ("sb3_contrib", "TRPO"), "RecurrentPPO": ("sb3_contrib", "RecurrentPPO"),
    "MaskablePPO": ("sb3_contrib", "MaskablePPO"), "CrossQ": ("sb3_contrib", "CrossQ"),
}
#: An attribute only that algorithm's `__init__` sets, for the families several algorithms share.
ALGORITHM_MARKERS = (("TRPO", "cg_max_steps"), ("PPO", "clip_range"))
#: DDPG is TD3 with these settings (`ddpg/ddpg.py`): a TD3 saved with all three computes the same policy anyway.
DDPG_SETTINGS = {"policy_delay": 1, "target_noise_clip": 0.0, "target_policy_noise": 0.1}
#: `data` entries SB3 pickles that predict never reads, and what the live loader hands SB3 instead of unpickling them
#: (`custom_objects`): schedules must be callable, `train_freq` an int SB3 converts, `target_entropy` a number; a
#: buffer class of None makes SB3 choose its default; anything else is None.
SCHEDULE_ENTRIES = ("lr_schedule", "learning_rate", "clip_range", "clip_range_vf", "exploration_schedule",
                    "delta_std_schedule")
PLACEHOLDERS: Dict[str, Any] = {"train_freq": 1, "target_entropy": 0.0}


def unused_schedule(progress_remaining: float) -> float:
    """The schedule the live loader gives SB3 for a schedule the file pickled (predict never calls it)."""
    return 0.0


def placeholder(key: str) -> Any:
    """What the live loader gives SB3 for the pickled `data` entry `key` it does not unpickle."""
    return unused_schedule if key in SCHEDULE_ENTRIES else PLACEHOLDERS.get(key)


def detect_algorithm(policy: PolicyClass, data: Mapping[str, Any], path: str) -> str:
    """Which algorithm saved `data`, among those that use `policy`'s class."""
    candidates = policy.algorithms
    if len(candidates) == 1:
        return candidates[0]
    for algorithm, marker in ALGORITHM_MARKERS:
        if algorithm in candidates and marker in data:
            return algorithm
    if "DDPG" in candidates:
        return "DDPG" if all(data.get(key) == value for key, value in DDPG_SETTINGS.items()) else "TD3"
    if "A2C" in candidates:
        return "A2C"
    raise ExportError("{}: cannot tell which of {} saved this file; pass --algo NAME".format(
        path, ", ".join(candidates)))


def canonical_sb3_algorithm(name: Any) -> str:
    """An SB3 algorithm's class name from a name in any case ('qrdqn', as rl-zoo3 names its folders)."""
    by_upper = {algorithm.upper(): algorithm for algorithm in SB3_ALGORITHMS}
    canonical = by_upper.get(name.upper()) if isinstance(name, str) else None
    if canonical is None:
        raise ExportError("unknown SB3 algorithm {}; SB3 and sb3-contrib have {} (in any case)".format(
            preview(name), ", ".join(SB3_ALGORITHMS)))
    return canonical


def saved_sb3_version(path: str) -> Optional[str]:
    """The SB3 version recorded in the zip (`_stable_baselines3_version`), None when the file has none."""
    with zipfile.ZipFile(path) as archive:
        if VERSION_MEMBER not in archive.namelist():
            return None
        return archive.read(VERSION_MEMBER).decode("utf-8", "replace").strip()
