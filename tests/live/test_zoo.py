"""Every real model in ../shared/zoo, loaded by SB2 2.10.2 through the live loader (which brings its own
stand-ins for what the zoo's pickles name and SB2 no longer has: the zoo's `utils` policy classes, the deleted
`stable_baselines.ddpg.memory`), exported with the zoo's observation normalization where its folder beside the
model enables it (found as `sbif.export.export` finds it), and matched against SB2 on 256 observations; the safe
loader must give the same document."""
import os

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.export import build_sbif
from sbif.export.exporter import decide_normalization
from sbif.export.live import compare_with_sb2, describe_live_model, load_sb2_model
from sbif.export.safe import describe_safe_file
from tests.zoo import ZOO, require_zoo, zoo_models

from .agreement import assert_report_agrees

MODELS = zoo_models()


def test_zoo_is_present_in_ci():
    require_zoo(MODELS)


@pytest.mark.parametrize("relative", MODELS)
def test_zoo_model(relative, tmp_path):
    path = os.path.join(ZOO, relative)
    normalization = decide_normalization(path).statistics
    model, algorithm = load_sb2_model(path)
    target = str(tmp_path / "model.sbif")
    live_file = build_sbif(describe_live_model(model, algorithm, path), normalization)
    live_file.write(target)
    policy = sbif.load(target)
    observations = sample_observations(policy.observation_space, 256, np.random.default_rng(0))
    if normalization is not None:
        observations = normalization.typical_observations(observations.shape, np.random.default_rng(1)).astype(
            observations.dtype)
    assert_report_agrees(compare_with_sb2(model, policy, observations, normalization))
    safe_file = build_sbif(describe_safe_file(path), normalization)
    assert dict(live_file.document, provenance=None) == dict(safe_file.document, provenance=None)
