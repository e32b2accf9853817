"""Every real model in ../shared/zoo. Those SB2 2.10.2 loads are exported with the live loader (with the
zoo's observation normalization where its config enables it) and matched against SB2 on 256 observations;
the safe loader must give the same document. Those SB2 cannot load (their classes live in the zoo's
absent `utils` module, or in SB2 modules since deleted) are still exported by the safe loader."""
import os

import numpy as np
import pytest

import sbif
from sbif.compare import sample_observations
from sbif.errors import ExportError
from sbif.export import build_sbif
from sbif.export.exporter import export, observation_normalization
from sbif.export.live import compare_with_sb2, describe_live_model, load_sb2_model
from sbif.export.safe import describe_safe_file
from tests.zoo import ZOO, require_zoo, zoo_models, zoo_normalization

from .agreement import assert_report_agrees

MODELS = zoo_models()


def test_zoo_is_present_in_ci():
    require_zoo(MODELS)


def normalization_for(path):
    """The statistics the zoo applied to this model's observations (tests/zoo.py), or None."""
    options = zoo_normalization(path)
    return observation_normalization(options.get("vecnormalize"), options.get("zoo_config"))


@pytest.mark.parametrize("relative", MODELS)
def test_zoo_model(relative, tmp_path):
    path = os.path.join(ZOO, relative)
    normalization = normalization_for(path)
    try:
        model, algorithm = load_sb2_model(path)
    except ExportError as exc:
        assert "No module named" in str(exc), exc  # only missing modules may stop SB2 itself
        safe_file, _ = export(path, loader="safe")
        assert sbif.Policy(safe_file).predict(sample_observations(
            safe_file.document["observation_space"], 4, np.random.default_rng(0)), deterministic=True)[0] is not None
        return
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
