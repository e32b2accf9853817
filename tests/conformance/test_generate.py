"""Hypothesis generation: drawn models are buildable and valid, inputs respect the spaces, the fuzz loop finds
nothing on a correct runtime, and on a broken one shrinks to a small replayable case file."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.cases import read_case, replay
from conformance.generate import FAMILY_CHECKS, box_spaces, fuzz, model_specs
from conformance.models import FAMILIES, ModelInfo, sample_space, write_model
from conformance.mutants import MUTANTS


@pytest.mark.parametrize("family", FAMILIES)
def test_drawn_models_build(family, buildable_families, tmp_path):
    if buildable_families.get(family):
        pytest.skip("SBIF cannot build {} models yet: {}".format(family, buildable_families[family]))

    @settings(max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(model_specs(family))
    def builds(spec):
        path = write_model(spec, str(tmp_path))
        info = ModelInfo(path)
        assert info.provenance["algorithm"] in ("PPO2", "A2C", "ACKTR", "PPO1", "TRPO", "ACER", "DQN", "SAC", "TD3",
                                                "DDPG", "HER")
        if family == "her":  # the dict's parts tile the flat observation, in SB2's key order
            parts = info.observation_dict["spaces"]
            assert info.observation_dict["keys"] == ["observation", "achieved_goal", "desired_goal"]
            assert sum(parts[key]["shape"][0] for key in parts) == info.observation_space["shape"][0]
        json.dumps(spec)  # specs are plain JSON (case files carry them)

    builds()


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(box_spaces(), st.integers(1, 6), st.integers(0, 1000))
def test_sampled_observations_respect_the_space(space, count, seed):
    values = sample_space(space, count, np.random.default_rng(seed))
    assert values.shape == (count,) + tuple(space["shape"]) and values.dtype == np.dtype(space["dtype"])
    from sbif.format.document import decode_bound

    low = decode_bound(space["low"], space["shape"], "float64")
    high = decode_bound(space["high"], space["shape"], "float64")
    wide = values.astype(np.float64)
    assert np.all((wide >= low) & (wide <= high)) and np.all(np.isfinite(wide))
    assert np.all(np.abs(wide) <= max(1e6, 255))  # realistic magnitudes, whatever the bounds


def test_reference_against_itself_finds_nothing(reference, buildable_families):
    families = [f for f in FAMILIES if buildable_families.get(f) is None] + ["ops"]
    result = fuzz(reference, reference, families, max_examples=30, shrink=False)
    assert not result.caught, result.failure
    assert result.examples >= 30


def test_a_failure_shrinks_to_a_replayable_case(tmp_path, reference):
    mutant = MUTANTS["no_action_clip"]
    case_file = str(tmp_path / "found.sbifcase")
    result = fuzz(mutant.runtime(), reference, ["mlp"], ["deterministic"], max_examples=30, shrink=True,
                  case_file=case_file, constraints=mutant.constraints)
    assert result.caught and result.case_file == case_file
    case = read_case(case_file)
    spec = case["model"]["spec"]
    # shrunk: one row, the smallest architecture Hypothesis could keep failing
    request = case["probes"][0]["request"]
    assert request["inputs"]["obs"]["shape"][0] == 1
    assert spec["action"]["kind"] == "box" and len(spec.get("net_arch", [])) <= 1
    assert not replay(case, mutant.runtime()).ok
    assert replay(case, reference).ok


def test_derandomized_profile_is_reproducible(reference):
    mutant = MUTANTS["tanh_float16"]
    counts = [fuzz(mutant.runtime(), reference, ["mlp"], ["deterministic"], max_examples=30, shrink=False,
                   constraints=mutant.constraints).first_failure_at for _ in range(2)]
    assert counts[0] == counts[1] and counts[0] is not None


def test_every_family_has_checks():
    assert set(FAMILY_CHECKS) == set(FAMILIES) | {"ops"}
