"""`export`: an SB2 save file in, a validated (and, with the live loader, verified) SBIF file out."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from ..errors import UnsupportedError
from ..format import SbifFile
from .build import build_sbif

LOADERS = ("live",)


def export(source: str, algorithm: Optional[str] = None, loader: str = "live",
           verify: bool = True) -> Tuple[SbifFile, Dict[str, float]]:
    """Read `source` with `loader` and build its SBIF file; with `verify`, also compare against SB2.

    Returns the file and the verification report (worst error per output; empty without verification).
    """
    if loader != "live":
        raise UnsupportedError("unknown loader {!r}; available: {}".format(loader, ", ".join(LOADERS)))
    from . import live
    from ..runtime import Policy

    model, algorithm = live.load_sb2_model(source, algorithm)
    sbif_file = build_sbif(live.describe_live_model(model, algorithm, source))
    report = live.verify_export(model, Policy(sbif_file)) if verify else {}
    return sbif_file, report
