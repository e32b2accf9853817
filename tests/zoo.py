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


#: The float tolerance when another runtime is compared with the NumPy reference on trained weights. Their layers
#: add large terms that cancel, so float32 results depend on the summation order the spec leaves free: over 640
#: observations per zoo model, onnxruntime, torch and the C runtime differ from the reference by up to 2.5e-5
#: (HER FetchReach's action, DDPG's critic), where the reference itself is 1.4e-5 from the float64 value of the
#: same graph and the other runtime closer. 1e-4 keeps headroom and still catches any wrong op (errors of order 1).
ZOO_ATOL = 1e-4


def trained_weights_source(paths: Sequence[str], oracle):
    """An `OracleSource` over `paths` whose float outputs are compared within `ZOO_ATOL`."""
    from conformance.runner import OracleSource

    class TrainedWeightsSource(OracleSource):
        def items(self, checks, config):
            for model, info, check, plan in super().items(checks, config):
                for rule in info.rules.values() if info is not None else ():
                    if rule["rule"] == "float":
                        rule.update(atol=ZOO_ATOL, rtol=ZOO_ATOL)
                yield model, info, check, plan

    return TrainedWeightsSource(list(paths), oracle)
