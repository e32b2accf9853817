"""Self-test by mutation: every deliberately broken runtime is caught by its named check within a bounded number
of (derandomized) Hypothesis examples. Families SBIF cannot export yet are skipped with the exporter's reason."""
import numpy as np
import pytest

from conformance.generate import fuzz
from conformance.mutants import MUTANTS

#: every mutant must be caught within this many examples (the CI profile is derandomized: same count every run)
BOUND = 25
REQUIRED = ("lstm_gate_order", "no_image_scaling", "no_action_clip", "no_unscale", "ln_epsilon_1e-5",
            "nhwc_as_nchw", "mask_after_step", "normalization_float32", "dueling_mean_omitted", "argmax_last_tie")


def test_the_required_mutants_and_five_more_exist():
    assert set(REQUIRED) <= set(MUTANTS)
    assert len(set(MUTANTS) - set(REQUIRED)) >= 5


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name, reference, buildable_families):
    mutant = MUTANTS[name]
    families = [f for f in mutant.families if f == "ops" or buildable_families.get(f) is None]
    if not families:
        pytest.skip("SBIF cannot build {} models yet: {}".format(
            "/".join(mutant.families), "; ".join(str(buildable_families.get(f)) for f in mutant.families)))
    result = fuzz(mutant.runtime(), reference, families, [mutant.check], max_examples=BOUND + 10, shrink=False,
                  constraints=mutant.constraints)
    assert result.caught, "{} was not caught by {} in {} examples".format(name, mutant.check, result.examples)
    assert result.failure["check"] == mutant.check
    assert result.first_failure_at <= BOUND, "{} needed {} examples".format(name, result.first_failure_at)


@pytest.mark.parametrize("name", sorted(n for n in MUTANTS if MUTANTS[n].families != ["ops"]))
def test_mutant_applies_to_models_of_its_family(name, buildable_families, tmp_path):
    """`applies` finds what the mutant breaks in models drawn from its families and constraints."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from conformance.generate import model_specs
    from conformance.models import build_model

    mutant = MUTANTS[name]
    families = [f for f in mutant.families if buildable_families.get(f) is None]
    if not families:
        pytest.skip("no buildable family for {} ({})".format(name, ", ".join(mutant.families)))

    class Found(Exception):
        pass

    @settings(max_examples=30, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.one_of([model_specs(f, **mutant.constraints) for f in families]))
    def draw(spec):
        sbif_file = build_model(spec)
        if mutant.applies(sbif_file.document, sbif_file.tensors):
            raise Found(spec["family"])

    with pytest.raises(Found):
        draw()


def test_mutants_are_harmless_where_they_do_not_apply(reference, example_models):
    """A graph-rewriting mutant loads files it does not apply to unchanged (no false alarms in the suite)."""
    path = example_models["mlp"]  # discrete actions: no clip, no unscale, no LSTM
    obs = {"obs": np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)}
    expected = reference.run(path, obs, ["action", "value", "probabilities"]).outputs
    for name in ("no_action_clip", "no_unscale", "lstm_gate_order", "mask_after_step", "no_image_scaling"):
        actual = MUTANTS[name].runtime().run(path, obs, ["action", "value", "probabilities"])
        assert actual.ok and all(np.array_equal(expected[k], actual.outputs[k]) for k in expected), name
