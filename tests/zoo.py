"""The real SB2 models of `../shared/zoo` (rl-baselines-zoo), for the tests that read them: discovery, the
rule that the folder must be there in CI, and which normalization the zoo applied to each."""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "..", "shared", "zoo")


def zoo_models(exclude: Sequence[str] = ()) -> List[str]:
    """`algorithm/file` of every model (.zip, .pkl), algorithms in `exclude` (folder names) left out."""
    if not os.path.isdir(ZOO):
        return []
    return [os.path.join(algorithm, name) for algorithm in sorted(os.listdir(ZOO))
            if algorithm not in exclude and os.path.isdir(os.path.join(ZOO, algorithm))
            for name in sorted(os.listdir(os.path.join(ZOO, algorithm))) if name.endswith((".zip", ".pkl"))]


def require_zoo(models: Sequence[str]) -> None:
    """Skip where the zoo is absent, except in CI (CI=true), where it must be there."""
    if not models:
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/zoo is missing: CI must have it")
        pytest.skip("../shared/zoo is not present on this machine")


def zoo_normalization(path: str) -> Dict[str, str]:
    """The zoo's rule as `sbif.export.export` options: its config.yml decides (normalize, frame_stack); without
    one, an obs_rms.pkl beside the model is applied."""
    folder = os.path.splitext(path)[0]
    config, stats = os.path.join(folder, "config.yml"), os.path.join(folder, "obs_rms.pkl")
    if os.path.exists(config):
        return {"zoo_config": config}
    return {"vecnormalize": stats} if os.path.exists(stats) else {}
