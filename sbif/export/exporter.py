"""`export`: an SB2 save file in, a validated (and, with the live loader, verified) SBIF file out."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..errors import UnsupportedError
from ..format import SbifFile
from .build import build_sbif

#: 'safe' reads the file as data (any environment, no code from the file runs); 'live' loads it with
#: Stable-Baselines itself (the SB2 environment only) and can verify the export against SB2.
LOADERS = ("safe", "live")
DEFAULT_LOADER = "safe"


def export(source: str, algorithm: Optional[str] = None, loader: str = DEFAULT_LOADER, verify: bool = True,
           policy_kwargs: Any = None, policy: Optional[str] = None) -> Tuple[SbifFile, Dict[str, float]]:
    """Read `source` with `loader` and build its SBIF file; with the live loader and `verify`, compare it with SB2.

    `policy_kwargs` (a dict or JSON object text) and `policy` (a class name) complete what the file does not
    tell the safe loader. Returns the file and the verification report (worst error per output), which is
    empty when nothing was verified: SB2 is only there to compare against with the live loader.
    """
    if loader not in LOADERS:
        raise UnsupportedError("unknown loader {!r}; available: {}".format(loader, ", ".join(LOADERS)))
    if loader == "safe":
        from .safe import describe_safe_file

        return build_sbif(describe_safe_file(source, algorithm, policy_kwargs, policy)), {}
    if policy_kwargs is not None or policy is not None:
        raise UnsupportedError("--policy-kwargs and --policy complete what the safe loader cannot read; the live "
                               "loader takes the policy from Stable-Baselines itself")
    from . import live
    from ..runtime import Policy

    model, algorithm = live.load_sb2_model(source, algorithm)
    sbif_file = build_sbif(live.describe_live_model(model, algorithm, source))
    report = live.verify_export(model, Policy(sbif_file)) if verify else {}
    return sbif_file, report
