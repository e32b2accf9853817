"""The real SB2 models of `../shared/zoo` (rl-baselines-zoo), for the tests that read them: discovery and the
rule that the folder must be there in CI. Which normalization the zoo applied to each is `sbif.export.export`'s
to find (its `ENV/` folder beside the model), as it is for a user."""
from __future__ import annotations

import os
from typing import List, Sequence

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "..", "shared", "zoo")


def zoo_models() -> List[str]:
    """`algorithm/file` of every model (.zip, .pkl)."""
    if not os.path.isdir(ZOO):
        return []
    return [os.path.join(algorithm, name) for algorithm in sorted(os.listdir(ZOO))
            if os.path.isdir(os.path.join(ZOO, algorithm))
            for name in sorted(os.listdir(os.path.join(ZOO, algorithm))) if name.endswith((".zip", ".pkl"))]


def require_zoo(models: Sequence[str]) -> None:
    """Skip where the zoo is absent, except in CI (CI=true), where it must be there."""
    if not models:
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/zoo is missing: CI must have it")
        pytest.skip("../shared/zoo is not present on this machine")

