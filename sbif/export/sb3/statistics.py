"""rl-zoo3's `vecnormalize.pkl` (SB3's pickled VecNormalize, read as data) as the statistics the graph folds in."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Union

from ...errors import ExportError, UnsupportedError
from ..normalization import KeyedNormalization, ObservationNormalization


def read_sb3_normalization(path: str, clip_obs: Optional[float] = None, epsilon: Optional[float] = None,
                           frame_stack: int = 1) -> Union[ObservationNormalization, KeyedNormalization]:
    """The observation statistics of an SB3 VecNormalize save; `clip_obs` and `epsilon` from the zoo's config
    override the saved ones, as the zoo's `normalize` kwargs do. Dict observations give one statistic per key of
    `norm_obs_keys` (SPEC section 5.7)."""
    from .vecnormalize import read_sb3_vecnormalize

    saved = read_sb3_vecnormalize(path)
    if not saved.norm_obs:
        raise ExportError("{}: the VecNormalize save does not normalize observations (norm_obs is false); pass "
                          "--no-normalize".format(path))
    clip = saved.clip_obs if clip_obs is None else clip_obs
    eps = saved.epsilon if epsilon is None else epsilon
    if not isinstance(saved.obs_rms, dict):
        return ObservationNormalization(saved.obs_rms.mean, saved.obs_rms.var, clip, eps, path, frame_stack)
    if frame_stack > 1:
        raise UnsupportedError("{}: frame stacking over dict observations is not supported".format(path))
    keys = saved.norm_obs_keys if saved.norm_obs_keys is not None else list(saved.obs_rms)
    missing = [key for key in keys if key not in saved.obs_rms]
    if missing:
        raise ExportError("{}: norm_obs_keys names {} without statistics".format(path, ", ".join(missing)))
    statistics = OrderedDict((key, ObservationNormalization(saved.obs_rms[key].mean, saved.obs_rms[key].var, clip,
                                                            eps, "{} [{}]".format(path, key))) for key in keys)
    return KeyedNormalization(statistics, statistics[keys[0]].clip_obs if keys else float(clip),
                              statistics[keys[0]].epsilon if keys else float(eps))
