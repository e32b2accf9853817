"""rl-zoo3's `vecnormalize.pkl` (a pickled Stable-Baselines3 `VecNormalize`) read as plain data.

SB3's `VecNormalize.save` pickles the wrapper without its env (`__getstate__`): the observation statistics
(`obs_rms`, a `RunningMeanStd` of float64 `mean` and `var` and a float `count`, or a dict of them for Dict
observations), `norm_obs`, `epsilon`, `clip_obs` and `norm_obs_keys` are what inference needs
(`normalize_obs`: `clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)` in float64). Pickles from
SB3 before `norm_obs_keys` existed have `obs_keys` instead; VecNormalize's `__setstate__` then normalizes every
key of a Dict observation, which are the keys of `obs_rms`. Return statistics (`ret_rms`) matter only in training.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Union

import numpy as np

from ...errors import ExportError, SbifError, preview
from .. import safe_pickle
from ..description import real_number
from ..safe_pickle import Stub, materialize, stub_reference
from .dialect import STABLE_BASELINES3_MODULES, SB3_DATA_DIALECT

#: Largest statistics file read (an image observation's mean and var are a few MiB).
MAX_VECNORMALIZE_BYTES = 64 * 1024 * 1024


class RunningStats(NamedTuple):
    """A RunningMeanStd: mean and var (float64 arrays of the observation's shape) and the sample count."""

    mean: np.ndarray
    var: np.ndarray
    count: float


class Sb3Normalization(NamedTuple):
    """What inference needs of a VecNormalize: `obs_rms` is one RunningStats, or key -> RunningStats (Dict
    observations; `norm_obs_keys` then lists the keys normalized, in the file's order), or None when `norm_obs`
    is False and the file keeps no statistics."""

    norm_obs: bool
    obs_rms: Union[None, RunningStats, "OrderedDict[str, RunningStats]"]
    epsilon: float
    clip_obs: float
    norm_obs_keys: Optional[List[str]]


def read_sb3_vecnormalize(path: str) -> Sb3Normalization:
    """The observation normalization a `vecnormalize.pkl` holds, validated (finite statistics, var >= 0, mean and
    var of one shape, clip_obs > 0, epsilon >= 0); ExportError naming the file and the problem otherwise."""
    if not os.path.isfile(path):
        raise ExportError("no such file: {}".format(path))
    size = os.path.getsize(path)
    if size > MAX_VECNORMALIZE_BYTES:
        raise ExportError("{}: the file is {} bytes; a VecNormalize save is read up to {}".format(
            path, size, MAX_VECNORMALIZE_BYTES))
    with open(path, "rb") as handle:
        blob = handle.read(size + 1)
    wrapper = safe_pickle.loads(blob, path, dialect=SB3_DATA_DIALECT)
    reference = stub_reference(wrapper) if isinstance(wrapper, Stub) else None
    if reference is None or reference[0].split(".")[0] not in STABLE_BASELINES3_MODULES \
            or reference[1] != "VecNormalize" or not isinstance(wrapper.state, dict):
        raise ExportError("{}: not a pickled Stable-Baselines3 VecNormalize".format(path))
    state = wrapper.state
    norm_obs = state.get("norm_obs")
    if not isinstance(norm_obs, bool):
        raise ExportError("{}: norm_obs must be a boolean, got {}".format(path, preview(norm_obs)))
    obs_rms = state.get("obs_rms")
    statistics: Union[None, RunningStats, "OrderedDict[str, RunningStats]"] = None
    if obs_rms is None and not norm_obs:
        pass  # VecNormalize keeps no observation statistics when it does not normalize observations
    elif isinstance(obs_rms, dict):
        if not obs_rms or not all(isinstance(key, str) for key in obs_rms):
            raise ExportError("{}: obs_rms is a dict but not of statistics named by text".format(path))
        statistics = OrderedDict(
            (key, _running_stats(value, "{}: obs_rms[{}]".format(path, preview(key)))) for key, value in obs_rms.items())
    else:
        statistics = _running_stats(obs_rms, "{}: obs_rms".format(path))
    return Sb3Normalization(
        norm_obs=norm_obs,
        obs_rms=statistics,
        epsilon=_nonnegative(state.get("epsilon"), "{}: epsilon".format(path)),
        clip_obs=_positive(state.get("clip_obs"), "{}: clip_obs".format(path)),
        norm_obs_keys=_norm_obs_keys(state, statistics, path),
    )


def _running_stats(value: Any, what: str) -> RunningStats:
    reference = stub_reference(value) if isinstance(value, Stub) else None
    if reference is None or reference[1] != "RunningMeanStd" or not isinstance(value.state, dict):
        raise ExportError("{} is not a pickled RunningMeanStd".format(what))
    try:
        mean, var = (materialize(value.state.get(key)) for key in ("mean", "var"))
    except SbifError as exc:
        raise ExportError("{}: {}".format(what, exc)) from None
    arrays = []
    for name, array in (("mean", mean), ("var", var)):
        if isinstance(array, np.generic):
            array = np.asarray(array)
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
            raise ExportError("{}.{} is not a numeric array".format(what, name))
        arrays.append(array.astype(np.float64))  # float64 holds every float32 or integer statistic exactly
    mean, var = arrays
    if mean.shape != var.shape:
        raise ExportError("{}: mean {} and var {} differ in shape".format(what, mean.shape, var.shape))
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
        raise ExportError("{} holds non-finite statistics or a negative variance".format(what))
    count = real_number(value.state.get("count"), what + ".count")
    return RunningStats(mean, var, count)


def _nonnegative(value: Any, what: str) -> float:
    number = real_number(value, what)
    if number < 0:
        raise ExportError("{} must not be negative, got {}".format(what, preview(value)))
    return number


def _positive(value: Any, what: str) -> float:
    number = real_number(value, what, finite=False)
    if not number > 0:
        raise ExportError("{} must be positive, got {}".format(what, preview(value)))
    return number


def _norm_obs_keys(state: Dict[str, Any], statistics: Any, path: str) -> Optional[List[str]]:
    """The keys normalized: `norm_obs_keys`, else (older pickles, `obs_keys`) every key of the statistics; None
    for a single (non-Dict) statistic."""
    keys = state.get("norm_obs_keys")
    if keys is None:
        return list(statistics) if isinstance(statistics, dict) else None
    if not isinstance(keys, (list, tuple, set)) or not all(isinstance(key, str) for key in keys):
        raise ExportError("{}: norm_obs_keys is not a list of keys: {}".format(path, preview(keys)))
    if not isinstance(statistics, dict):
        raise ExportError("{}: norm_obs_keys {} name keys of a Dict observation, but obs_rms is one "
                          "statistic".format(path, preview(keys)))
    unknown = [key for key in keys if key not in statistics]
    if unknown:
        raise ExportError("{}: norm_obs_keys names {}, which obs_rms has no statistics for".format(
            path, preview(unknown)))
    return [key for key in statistics if key in keys] if isinstance(keys, set) else list(keys)


__all__ = ["RunningStats", "Sb3Normalization", "read_sb3_vecnormalize"]
