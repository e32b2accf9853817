"""rl-zoo3's `vecnormalize.pkl` (SB3's pickled VecNormalize, read as data) as the statistics the graph folds in."""
from __future__ import annotations

from typing import Optional

from ...errors import ExportError, UnsupportedError
from ..normalization import ObservationNormalization


def read_sb3_normalization(path: str, clip_obs: Optional[float] = None, epsilon: Optional[float] = None,
                           frame_stack: int = 1) -> ObservationNormalization:
    """The observation statistics of an SB3 VecNormalize save; `clip_obs` and `epsilon` from the zoo's config
    override the saved ones, as the zoo's `normalize` kwargs do. Dict observations (one statistic per key) are not
    supported by this SBIF version yet."""
    from .vecnormalize import read_sb3_vecnormalize

    saved = read_sb3_vecnormalize(path)
    if not saved.norm_obs:
        raise ExportError("{}: the VecNormalize save does not normalize observations (norm_obs is false); pass "
                          "--no-normalize".format(path))
    if isinstance(saved.obs_rms, dict):
        raise UnsupportedError("{}: per-key statistics of dict observations are not supported by this SBIF version "
                               "yet".format(path))
    return ObservationNormalization(saved.obs_rms.mean, saved.obs_rms.var,
                                    saved.clip_obs if clip_obs is None else clip_obs,
                                    saved.epsilon if epsilon is None else epsilon, path, frame_stack)
