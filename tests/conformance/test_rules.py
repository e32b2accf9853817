"""Comparison rules (SPEC section 6): the float rule under error scales (and what it leaves out), NaN/inf,
dtype/shape, near-ties judged with the scores' scales for every kind of decision, and op vectors' ULP rule."""
import numpy as np
import pytest

import sbif
from conformance.rules import compare, output_rules
from sbif.ops.rounding import CONFIDENCE

FLOAT = {"rule": "float"}


def test_float_rule_is_eight_error_scales():
    e = np.array([1.0, 100.0, -5.0], np.float32)
    scale = np.array([1e-7, 1e-5, 1e-6])
    inside = (e + np.float32(0.9 * CONFIDENCE) * scale.astype(np.float32)).astype(np.float32)
    result = compare(FLOAT, e, inside, scale=scale)
    assert result.ok and 0.5 < result.error <= 1.0
    outside = e + np.array([0, 2 * CONFIDENCE * 1e-5, 0], np.float32)
    result = compare(FLOAT, e, outside, scale=scale)
    assert not result.ok and result.where == "[1]" and 1.9 < result.error < 2.1
    assert "expected 100 ±" in result.detail
    # the same difference passes where the computation is worse conditioned (a larger scale), and fails where
    # it is better conditioned: the tolerance is the scale, not the value's size
    assert compare(FLOAT, e, outside, scale=scale * 4).ok
    assert not compare(FLOAT, e, e + np.float32(2e-6), scale=np.full(3, 1e-8)).ok
    assert compare(FLOAT, e, e.copy(), scale=np.zeros(3)).ok  # a zero scale asks for equality...
    assert not compare(FLOAT, e, np.nextafter(e, np.float32(np.inf)), scale=np.zeros(3)).ok  # ...bit for bit


def test_float_rule_needs_scales_of_the_output_shape():
    e = np.ones(3, np.float32)
    missing = compare(FLOAT, e, e.copy())
    assert not missing.ok and "no error scales" in missing.detail
    wrong_shape = compare(FLOAT, e, e.copy(), scale=np.zeros(2))
    assert not wrong_shape.ok and "error scales of shape" in wrong_shape.detail
    assert compare(FLOAT, np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), scale=np.zeros((0, 2))).ok


def test_undetermined_elements_are_left_out_and_counted():
    """A NaN scale marks an element float evaluation does not determine: any value passes there, and is counted;
    the other elements are still judged."""
    e = np.array([1.0, 2.0, 3.0], np.float32)
    scale = np.array([1e-7, np.nan, 1e-7])
    result = compare(FLOAT, e, np.array([1.0, -7.0, 3.0], np.float32), scale=scale)
    assert result.ok and result.excluded == 1 and "not determined" in result.detail
    result = compare(FLOAT, e, np.array([1.0, -7.0, 3.5], np.float32), scale=scale)
    assert not result.ok and result.where == "[2]"


@pytest.mark.parametrize("expected, actual, ok", [
    ([np.nan, 1.0], [np.nan, 1.0], True),
    ([np.nan, 1.0], [0.0, 1.0], False),
    ([np.inf, 1.0], [np.inf, 1.0], True),
    ([np.inf, 1.0], [3.4e38, 1.0], False),
    ([-np.inf, 1.0], [np.inf, 1.0], False),
    ([1.0, 1.0], [np.nan, 1.0], False),
])
def test_nan_and_inf_rules(expected, actual, ok):
    """NaN matches NaN and infinities match exactly, however large the scale."""
    result = compare(FLOAT, np.float32(expected), np.float32(actual), scale=np.full(2, 1e30))
    assert result.ok == ok
    if not ok:
        assert result.error == float("inf") and result.where == "[0]"


def test_dtype_shape_and_none():
    scale = np.zeros(3)
    assert not compare(FLOAT, np.zeros(3, np.float32), np.zeros(3, np.float64), scale=scale).ok
    assert not compare(FLOAT, np.zeros(3, np.float32), np.zeros((3, 1), np.float32), scale=scale).ok
    assert compare(FLOAT, None, None).ok
    assert not compare(FLOAT, None, np.zeros(1)).ok
    pair = [np.zeros((1, 2), np.float32), np.ones((1, 2), np.float32)]
    pair_scales = [np.full((1, 2), 1e-7), np.full((1, 2), 1e-7)]
    assert compare(FLOAT, pair, [p.copy() for p in pair], scale=pair_scales).ok
    assert not compare(FLOAT, pair, pair[0], scale=pair_scales).ok
    bad = compare(FLOAT, pair, [pair[0], pair[1] + 1], scale=pair_scales)
    assert not bad.ok and bad.where.startswith("item 1")


def test_reference_scales_pass_rounding_and_fail_wrong_values(example_models):
    """Under the scales the reference computes for a request (`conformance.scales`), a float32 program's rounding
    passes — one ULP on every element — and a wrong value fails, even one off by 1e-4 relative."""
    from conformance.models import ModelInfo
    from conformance.scales import ReferenceScales

    families = [family for family in ("mlp", "lstm", "sac") if family in example_models]
    assert "mlp" in families
    for family in families:
        info = ModelInfo(example_models[family])
        feeds = dict(obs=info.observations(16, np.random.default_rng(0)), **info.noise(16, np.random.default_rng(1)),
                     **info.initial_inputs(16))
        names = [name for name, rule in info.rules.items() if rule["rule"] == "float"]
        scales, _ = ReferenceScales().for_request({"type": "run", "model": info.path, "inputs": feeds,
                                                   "outputs": names})
        expected = sbif.load(info.path, backend="numpy").run(feeds, names)
        for name in names:
            e, scale = expected[name], scales[name]
            assert compare(FLOAT, e, np.nextafter(e, np.float32(np.inf)), scale=scale).ok, (family, name)
            wrong = e.copy()
            wrong.flat[5] += np.float32(1e-4) * (1 + abs(wrong.flat[5]))
            result = compare(FLOAT, e, wrong, scale=scale)
            assert not result.ok and result.error > 1, (family, name, result)


# -- near-ties ------------------------------------------------------------------------------------------------------
def test_categorical_near_tie_is_judged_with_the_logits_scales():
    logits = np.array([[1.0, 1.0 + 4e-6, -3.0], [0.0, 2.0, 1.0]], np.float32)
    rule = {"rule": "discrete", "ties": {"kind": "categorical", "scores": "logits"}}
    expected = np.array([1, 1])
    wide = {"logits": np.full((2, 3), 1e-6)}  # 8·sqrt(2)·1e-6 = 1.1e-5 > 4e-6
    assert compare(rule, expected, np.array([0, 1]), {"logits": logits}, scales=wide).ok  # row 0 is a near-tie
    result = compare(rule, expected, np.array([1, 2]), {"logits": logits}, scales=wide)
    assert not result.ok and result.error == 1 and result.where == "row 1"
    narrow = {"logits": np.full((2, 3), 1e-7)}  # 1.1e-6 < 4e-6: the logits tell the choices apart
    assert not compare(rule, expected, np.array([0, 1]), {"logits": logits}, scales=narrow).ok
    undetermined = {"logits": np.array([[np.nan, 1e-7, 1e-7], [1e-7, 1e-7, 1e-7]])}  # either choice is correct
    assert compare(rule, expected, np.array([0, 1]), {"logits": logits}, scales=undetermined).ok
    assert not compare(rule, expected, np.array([0, 1]), {"logits": logits}).ok  # no scales: no tie can be shown
    assert not compare({"rule": "discrete", "ties": {"kind": "none"}}, expected, np.array([0, 1]), scales=wide).ok


def test_multi_categorical_and_gumbel_ties():
    logits = np.array([[0.5, 0.5, 1.0, 2.0, 2.0]], np.float32)  # components of 2 and 3
    scales = {"logits": np.full((1, 5), 1e-7)}
    rule = {"rule": "discrete", "ties": {"kind": "multi_categorical", "scores": "logits", "nvec": [2, 3]}}
    assert compare(rule, np.array([[0, 1]]), np.array([[1, 2]]), {"logits": logits}, scales=scales).ok
    assert not compare(rule, np.array([[0, 1]]), np.array([[0, 0]]), {"logits": logits}, scales=scales).ok
    u = np.array([[0.5, 0.5, 0.3, 0.9, 0.1]], np.float32)
    gumbel = {"rule": "discrete", "ties": {"kind": "gumbel", "scores": "logits", "noise": "u", "nvec": [2, 3]}}
    # with the noise, component 1's scores are 1 - log(-log .3), 2 - log(-log .9), 2 - log(-log .1): no tie
    assert not compare(gumbel, np.array([[0, 1]]), np.array([[0, 2]]), {"logits": logits}, {"u": u},
                       scales=scales).ok
    assert compare(gumbel, np.array([[0, 1]]), np.array([[1, 1]]), {"logits": logits}, {"u": u}, scales=scales).ok


def test_bernoulli_ties():
    p = np.array([[0.5 + 1e-6, 0.9]], np.float32)  # the scores of component 0, 1 - p and p, differ by 2e-6
    mode = {"rule": "discrete", "ties": {"kind": "bernoulli_mode", "probabilities": "p"}}
    wide, narrow = {"p": np.full((1, 2), 3e-7)}, {"p": np.full((1, 2), 1e-9)}
    ones, flipped = np.array([[1.0, 1.0]], np.float32), np.array([[0.0, 1.0]], np.float32)
    assert compare(mode, ones, flipped, {"p": p}, scales=wide).ok
    assert not compare(mode, ones, flipped, {"p": p}, scales=narrow).ok
    assert not compare(mode, ones, np.array([[1.0, 0.0]], np.float32), {"p": p}, scales=wide).ok
    sample = {"rule": "discrete", "ties": {"kind": "bernoulli_sample", "probabilities": "p", "noise": "u"}}
    u = np.array([[0.2, 0.9 - 1e-7]], np.float32)  # u < p decides: component 1's u is 1 ULP below p
    assert compare(sample, ones, np.array([[1.0, 0.0]], np.float32), {"p": p}, {"u": u}, scales=wide).ok
    assert not compare(sample, ones, np.array([[1.0, 0.0]], np.float32), {"p": p}, {"u": u}, scales=narrow).ok
    assert not compare(sample, ones, flipped, {"p": p}, {"u": u}, scales=wide).ok


def test_inverse_cdf_ties():
    cdf = {"rule": "discrete", "ties": {"kind": "inverse_cdf", "probabilities": "p", "noise": "u"}}
    probabilities = np.array([[0.25, 0.25, 0.5]], np.float32)  # the boundary between actions 1 and 2 is 0.5
    scales = {"p": np.full((1, 3), 1e-7)}
    at_boundary = np.array([[0.5 - 1e-7]], np.float32)
    assert compare(cdf, np.array([2]), np.array([1]), {"p": probabilities}, {"u": at_boundary}, scales=scales).ok
    assert not compare(cdf, np.array([2]), np.array([1]), {"p": probabilities}, {"u": at_boundary},
                       scales={"p": np.full((1, 3), 1e-9)}).ok
    assert not compare(cdf, np.array([2]), np.array([0]), {"p": probabilities}, {"u": np.array([[0.7]])},
                       scales=scales).ok


# -- op vectors and the rules of a file ---------------------------------------------------------------------------
def test_ulp_rule():
    rule = {"rule": "ulp", "ulp": 2}
    one = np.float32([1.0])
    assert compare(rule, one, np.nextafter(one, np.float32(2))).ok
    three_ulp = one
    for _ in range(3):
        three_ulp = np.nextafter(three_ulp, np.float32(2))
    result = compare(rule, one, three_ulp)
    assert not result.ok and "3 ULP" in result.detail
    assert compare({"rule": "ulp", "ulp": 0, "abs": 1e-3}, one, one + np.float32(5e-4)).ok
    assert compare({"rule": "ulp", "exact": True}, np.float32([0.0]), np.float32([-0.0])).ok
    assert not compare({"rule": "ulp", "ulp": 4}, np.float32([1.0]), np.float32([np.nan])).ok


def test_output_rules_from_documents(example_models):
    from conformance.models import ModelInfo

    mlp = ModelInfo(example_models["mlp"])
    assert mlp.rules["action"] == {"rule": "discrete", "ties": {"kind": "categorical", "scores": "logits",
                                                                 "nvec": None}}
    assert mlp.rules["action_sample"]["ties"]["kind"] == "gumbel"
    assert mlp.rules["probabilities"] == {"rule": "float"}
    if "dqn" in example_models:
        dqn = ModelInfo(example_models["dqn"])
        assert dqn.rules["action_sample"]["ties"]["kind"] == "inverse_cdf"
    if "sac" in example_models:
        sac = ModelInfo(example_models["sac"])
        assert sac.rules["action"] == {"rule": "float"}
    document = ModelInfo(example_models["mlp"]).document
    assert output_rules(document) == mlp.rules
