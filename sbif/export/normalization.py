"""VecNormalize observation statistics, folded into the graph so `predict` takes raw environment observations.

SB2's `VecNormalize` (and the zoo's saved `obs_rms.pkl`) compute, in float64,
`clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)` and the model's feed then casts the result to
the observation dtype. The graph does exactly that: the `obs` input becomes float64 (a float32 observation
converts exactly), and `sqrt(var + epsilon)` is stored precomputed in float64, as NumPy computes it.
"""
from __future__ import annotations

import numpy as np

from ..errors import ExportError
from .description import Space
from .graph_builder import GraphBuilder

DEFAULT_CLIP_OBS = 10.0
DEFAULT_EPSILON = 1e-8


class ObservationNormalization:
    """Running mean/variance statistics with VecNormalize's clip and epsilon."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, clip_obs: float = DEFAULT_CLIP_OBS,
                 epsilon: float = DEFAULT_EPSILON, source: str = ""):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.var = np.asarray(var, dtype=np.float64)
        self.clip_obs, self.epsilon, self.source = float(clip_obs), float(epsilon), source
        if self.mean.shape != self.var.shape:
            raise ExportError("normalization statistics {}: mean {} and var {} differ in shape".format(
                source, self.mean.shape, self.var.shape))
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.var)) and np.all(self.var >= 0)):
            raise ExportError("normalization statistics {} hold non-finite or negative values".format(source))
        if not self.clip_obs > 0 or not self.epsilon >= 0:
            raise ExportError("normalization {}: clip_obs must be positive and epsilon non-negative".format(source))

    def as_kwargs(self) -> dict:
        return {"clip_obs": self.clip_obs, "epsilon": self.epsilon}


def normalized_observation(builder: GraphBuilder, obs: str, space: Space, stats: ObservationNormalization) -> str:
    """Graph ops for VecNormalize on the float64 `obs` input; returns the value SB2's model is fed."""
    if space.kind != "box":
        raise ExportError("VecNormalize statistics apply to Box observations, not {}".format(space.kind))
    if stats.mean.shape != space.shape:
        raise ExportError("normalization statistics {} have shape {} but observations have shape {}".format(
            stats.source, stats.mean.shape, space.shape))
    mean = builder.constant_tensor("vecnormalize/mean", stats.mean)
    scale = builder.constant_tensor("vecnormalize/std", np.sqrt(stats.var + stats.epsilon))
    low = builder.op("constant", [], {"value": -stats.clip_obs, "dtype": "float64"}, name="vecnormalize/low")
    high = builder.op("constant", [], {"value": stats.clip_obs, "dtype": "float64"}, name="vecnormalize/high")
    centered = builder.op("sub", [obs, mean], name="vecnormalize/centered")
    scaled = builder.op("div", [centered, scale], name="vecnormalize/scaled")
    clipped = builder.op("clip", [scaled, low, high], name="vecnormalize/clipped")
    return builder.op("cast", [clipped], {"to": space.dtype}, name="vecnormalize/fed")
