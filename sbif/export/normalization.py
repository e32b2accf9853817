"""VecNormalize observation statistics, folded into the graph so `predict` takes raw environment observations.

SB2's `VecNormalize` (and the zoo's saved `obs_rms.pkl`) compute, in float64,
`clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)` and the model's feed then casts the result to
the observation dtype. The graph does exactly that: the `obs` input becomes float64 (a float32 observation
converts exactly), and `sqrt(var + epsilon)` is stored precomputed in float64, as NumPy computes it.

With the zoo's `frame_stack: n`, `VecFrameStack` stacks n normalized frames along the last axis, so the model
sees n times the statistics' last dimension: the graph takes the n raw frames stacked the same way and
normalizes each with the same statistics (the mean and std are tiled n times along the last axis).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np

from ..errors import ExportError, preview
from .description import Space, real_number
from .graph_builder import GraphBuilder

DEFAULT_CLIP_OBS = 10.0
DEFAULT_EPSILON = 1e-8


class ObservationNormalization:
    """Running mean/variance statistics with VecNormalize's clip and epsilon."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, clip_obs: float = DEFAULT_CLIP_OBS,
                 epsilon: float = DEFAULT_EPSILON, source: str = "", frame_stack: int = 1):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.var = np.asarray(var, dtype=np.float64)
        self.source = source
        self.clip_obs = real_number(clip_obs, "normalization {}: clip_obs".format(source))
        self.epsilon = real_number(epsilon, "normalization {}: epsilon".format(source))
        if isinstance(frame_stack, bool) or not isinstance(frame_stack, int) or frame_stack < 1:
            raise ExportError("normalization {}: frame_stack must be a positive integer, got {}".format(
                source, preview(frame_stack)))
        self.frame_stack = frame_stack
        if self.frame_stack > 1 and self.mean.ndim == 0:
            raise ExportError("normalization statistics {} are scalars: frames cannot be stacked".format(source))
        if self.mean.shape != self.var.shape:
            raise ExportError("normalization statistics {}: mean {} and var {} differ in shape".format(
                source, self.mean.shape, self.var.shape))
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.var)) and np.all(self.var >= 0)):
            raise ExportError("normalization statistics {} hold non-finite or negative values".format(source))
        if not self.clip_obs > 0 or not self.epsilon >= 0:
            raise ExportError("normalization {}: clip_obs must be positive and epsilon non-negative".format(source))

    def apply(self, observations: np.ndarray) -> np.ndarray:
        """What the model is fed for raw observations (float64): SB2's `VecNormalize.normalize_obs`, per
        frame when frames are stacked."""
        return np.clip((np.asarray(observations) - self.stacked(self.mean)) / self.stacked(np.sqrt(
            self.var + self.epsilon)), -self.clip_obs, self.clip_obs)

    def stacked(self, statistic: np.ndarray) -> np.ndarray:
        """A per-frame statistic repeated for each stacked frame along the last axis (VecFrameStack's layout)."""
        if self.frame_stack == 1:
            return statistic
        return np.concatenate([statistic] * self.frame_stack, axis=-1)

    def typical_observations(self, shape: tuple, rng: np.random.Generator, spread: float = 3.0) -> np.ndarray:
        """Raw observations of `shape` (batch first) drawn around the statistics, many beyond the clip."""
        return self.stacked(self.mean) + spread * self.stacked(np.sqrt(self.var)) * rng.standard_normal(shape)

    def as_kwargs(self) -> dict:
        kwargs = {"clip_obs": self.clip_obs, "epsilon": self.epsilon}
        if self.frame_stack > 1:
            kwargs["frame_stack"] = self.frame_stack
        return kwargs


class KeyedNormalization:
    """VecNormalize statistics of a dict observation space (SB3's `norm_obs_keys`): one `ObservationNormalization`
    per normalized key, in the file's order; the other keys pass through (SPEC section 5.7)."""

    def __init__(self, statistics: "OrderedDict[str, ObservationNormalization]", clip_obs: float, epsilon: float):
        self.statistics = statistics
        self.clip_obs, self.epsilon = clip_obs, epsilon

    def apply(self, observations: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """What SB3's VecNormalize hands the policy: the normalized keys as float32, the others unchanged."""
        return {key: (self.statistics[key].apply(value).astype(np.float32) if key in self.statistics else value)
                for key, value in observations.items()}

    def typical(self, observations: Dict[str, np.ndarray], rng: np.random.Generator) -> Dict[str, np.ndarray]:
        """`observations` with each normalized key drawn around its statistics instead (many beyond the clip)."""
        return {key: (self.statistics[key].typical_observations(np.shape(value), rng).astype(value.dtype)
                      if key in self.statistics else value) for key, value in observations.items()}

    def as_kwargs(self) -> dict:
        return {"clip_obs": self.clip_obs, "epsilon": self.epsilon, "keys": list(self.statistics)}


def normalized_observation(builder: GraphBuilder, obs: str, space: Space, stats: ObservationNormalization,
                           fed_dtype: Optional[str] = None, prefix: str = "vecnormalize") -> str:
    """Graph ops for VecNormalize on the float64 `obs` input; returns the value the model is fed: cast to the space's
    dtype, as SB2's feed does, or to `fed_dtype` (SB3's VecNormalize hands float32 to the policy). Tensors and nodes
    are named under `prefix` (`vecnormalize/KEY` for a dict space's key)."""
    if space.kind != "box":
        raise ExportError("VecNormalize statistics apply to Box observations, not {}".format(space.kind))
    mean = stats.stacked(stats.mean)
    if mean.shape != space.shape:
        stacking = " ({} stacked frames)".format(stats.frame_stack) if stats.frame_stack > 1 else ""
        raise ExportError("normalization statistics {} have shape {}{} but observations have shape {}".format(
            stats.source, stats.mean.shape, stacking, space.shape))
    mean = builder.constant_tensor(prefix + "/mean", mean)
    scale = builder.constant_tensor(prefix + "/std", stats.stacked(np.sqrt(stats.var + stats.epsilon)))
    low = builder.op("constant", [], {"value": -stats.clip_obs, "dtype": "float64"}, name=prefix + "/low")
    high = builder.op("constant", [], {"value": stats.clip_obs, "dtype": "float64"}, name=prefix + "/high")
    centered = builder.op("sub", [obs, mean], name=prefix + "/centered")
    scaled = builder.op("div", [centered, scale], name=prefix + "/scaled")
    clipped = builder.op("clip", [scaled, low, high], name=prefix + "/clipped")
    return builder.op("cast", [clipped], {"to": fed_dtype or space.dtype}, name=prefix + "/fed")


#: where the statistics live in the pickles SB2 and the zoo write
RUNNING_MEAN_STD = "stable_baselines.common.running_mean_std.RunningMeanStd"
VEC_NORMALIZE = "stable_baselines.common.vec_env.vec_normalize.VecNormalize"
MAX_STATS_FILE_BYTES = 64 << 20


def read_normalization(path: str, clip_obs: Optional[float] = None, epsilon: Optional[float] = None,
                       frame_stack: int = 1) -> ObservationNormalization:
    """Statistics from a saved `VecNormalize` (SB2 >= 2.9, with its own clip_obs/epsilon) or a zoo
    `obs_rms.pkl` (a pickled RunningMeanStd; clip_obs/epsilon from the caller, else VecNormalize's defaults).
    The pickle is read as data by the safe unpickler: nothing in it runs."""
    from .safe_pickle import Stub, loads

    try:
        if os.path.getsize(path) > MAX_STATS_FILE_BYTES:
            raise ExportError("{} is too large to be VecNormalize statistics".format(path))
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ExportError("cannot read normalization statistics {}: {}".format(path, exc.strerror or exc)) from None
    saved = loads(data, path)
    reference = type(saved).reference() if isinstance(saved, Stub) else type(saved).__name__  # file-chosen names
    state = getattr(saved, "state", None)
    if reference == VEC_NORMALIZE and isinstance(state, dict):
        if state.get("norm_obs") is False:
            raise ExportError("{}: this VecNormalize does not normalize observations (norm_obs=False)".format(path))
        rms = state.get("obs_rms")
        clip_obs = state.get("clip_obs", DEFAULT_CLIP_OBS) if clip_obs is None else clip_obs
        epsilon = state.get("epsilon", DEFAULT_EPSILON) if epsilon is None else epsilon
    elif reference == RUNNING_MEAN_STD:
        rms = saved
    else:
        raise ExportError("{} holds a {}, not VecNormalize statistics (a VecNormalize or a RunningMeanStd "
                          "pickle)".format(path, preview(reference)))
    rms_state = getattr(rms, "state", None)
    if not isinstance(rms_state, dict) or "mean" not in rms_state or "var" not in rms_state:
        raise ExportError("{}: the running statistics have no mean/var".format(path))
    return ObservationNormalization(_array(rms_state["mean"], path), _array(rms_state["var"], path),
                                    DEFAULT_CLIP_OBS if clip_obs is None else clip_obs,
                                    DEFAULT_EPSILON if epsilon is None else epsilon, source=path,
                                    frame_stack=frame_stack)


def _array(value: object, path: str) -> np.ndarray:
    """A statistic as float64: a real numeric array (never complex: the imaginary part would be dropped), or a
    number float64 can hold."""
    array = getattr(value, "array", value)
    if isinstance(array, np.ndarray):
        if array.dtype.kind not in "biuf":
            raise ExportError("{}: the statistics are {} arrays, not real numbers".format(path, array.dtype.name))
        return np.asarray(array, dtype=np.float64)
    if isinstance(array, (float, int)):
        return np.asarray(real_number(array, "{}: a statistic".format(path), finite=False), dtype=np.float64)
    raise ExportError("{}: the statistics are not numeric arrays".format(path))
