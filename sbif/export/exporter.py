"""`export`: an SB2 save file in, a validated (and, with the live loader, verified) SBIF file out."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from ..errors import UnsupportedError
from ..format import SbifFile
from .build import build_sbif

#: 'safe' reads the file as data (any environment, no code from the file runs); 'live' loads it with
#: Stable-Baselines itself (the SB2 environment only) and can verify the export against SB2.
LOADERS = ("safe", "live")
DEFAULT_LOADER = "safe"


def export(source: str, algorithm: Optional[str] = None, loader: str = DEFAULT_LOADER, verify: bool = True,
           policy_kwargs: Any = None, policy: Optional[str] = None, vecnormalize: Optional[str] = None,
           zoo_config: Optional[str] = None) -> Tuple[SbifFile, Dict[str, float]]:
    """Read `source` with `loader` and build its SBIF file; with the live loader and `verify`, compare it with SB2.

    `policy_kwargs` (a dict or JSON object text) and `policy` (a class name) complete what the file does not
    tell the safe loader. Returns the file and the verification report (worst error per output), which is
    empty when nothing was verified: SB2 is only there to compare against with the live loader.
    `vecnormalize` (a VecNormalize save or obs_rms.pkl) and `zoo_config` (a zoo config.yml, whose `normalize`
    setting decides) fold observation normalization into the graph.
    """
    normalization = observation_normalization(vecnormalize, zoo_config)
    if loader not in LOADERS:
        raise UnsupportedError("unknown loader {!r}; available: {}".format(loader, ", ".join(LOADERS)))
    if loader == "safe":
        from .safe import describe_safe_file

        return build_sbif(describe_safe_file(source, algorithm, policy_kwargs, policy), normalization), {}
    if policy_kwargs is not None or policy is not None:
        raise UnsupportedError("--policy-kwargs and --policy complete what the safe loader cannot read; the live "
                               "loader takes the policy from Stable-Baselines itself")
    from . import live
    from ..runtime import Policy

    model, algorithm = live.load_sb2_model(source, algorithm)
    sbif_file = build_sbif(live.describe_live_model(model, algorithm, source), normalization)
    report = live.verify_export(model, Policy(sbif_file), normalization=normalization) if verify else {}
    return sbif_file, report


def observation_normalization(vecnormalize: Optional[str], zoo_config: Optional[str]) -> Optional[Any]:
    """The statistics to fold in: from `vecnormalize`, with clip_obs/epsilon from the zoo config's `normalize`
    kwargs when given and per frame when it stacks frames; a zoo config without `normalize` means none (even
    if obs_rms.pkl lies beside it). Frame stacking alone needs nothing: the model's space is the stacked one."""
    from .normalization import read_normalization
    from .zoo_config import frame_stack, normalize_kwargs, read_zoo_config

    kwargs: Dict[str, Any] = {}
    frames = 1
    if zoo_config is not None:
        config = read_zoo_config(zoo_config)
        frames = frame_stack(config, zoo_config)
        found = normalize_kwargs(config, zoo_config)
        if found is None or found.get("norm_obs", True) is False:
            return None
        kwargs = found
        if vecnormalize is None:
            folder = os.path.dirname(os.path.abspath(zoo_config))
            candidates = [os.path.join(folder, name) for name in ("vecnormalize.pkl", "obs_rms.pkl")]
            vecnormalize = next((path for path in candidates if os.path.exists(path)), None)
            if vecnormalize is None:
                raise UnsupportedError("{} enables normalize but neither vecnormalize.pkl nor obs_rms.pkl is "
                                       "beside it; pass --vecnormalize PATH".format(zoo_config))
    if vecnormalize is None:
        return None
    return read_normalization(vecnormalize, kwargs.get("clip_obs"), kwargs.get("epsilon"), frames)
