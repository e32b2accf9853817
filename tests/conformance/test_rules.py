"""Comparison rules (SPEC section 6): float tolerance, NaN/inf, dtype/shape, near-ties for every kind of decision."""
import numpy as np
import pytest

from conformance.rules import compare, output_rules


def test_float_rule():
    e = np.array([1.0, 100.0, -5.0], np.float32)
    assert compare({"rule": "float"}, e, e + np.float32(5e-6)).ok
    result = compare({"rule": "float"}, e, e + np.array([0, 2e-3, 0], np.float32))
    assert not result.ok and result.where == "[1]" and 1e-5 < result.error < 3e-5
    assert compare({"rule": "float"}, e, e * np.float32(1 + 2e-6)).ok  # relative part
    assert compare({"rule": "float", "atol": 1e-3}, e, e + np.float32(5e-4)).ok


@pytest.mark.parametrize("expected, actual, ok", [
    ([np.nan, 1.0], [np.nan, 1.0], True),
    ([np.nan, 1.0], [0.0, 1.0], False),
    ([np.inf, 1.0], [np.inf, 1.0], True),
    ([np.inf, 1.0], [3.4e38, 1.0], False),
    ([-np.inf, 1.0], [np.inf, 1.0], False),
    ([1.0, 1.0], [np.nan, 1.0], False),
])
def test_nan_and_inf_rules(expected, actual, ok):
    result = compare({"rule": "float"}, np.float32(expected), np.float32(actual))
    assert result.ok == ok
    if not ok:
        assert result.error == float("inf") and result.where == "[0]"


def test_dtype_shape_and_none():
    assert not compare({"rule": "float"}, np.zeros(3, np.float32), np.zeros(3, np.float64)).ok
    assert not compare({"rule": "float"}, np.zeros(3, np.float32), np.zeros((3, 1), np.float32)).ok
    assert compare({"rule": "float"}, None, None).ok
    assert not compare({"rule": "float"}, None, np.zeros(1)).ok
    pair = [np.zeros((1, 2), np.float32), np.ones((1, 2), np.float32)]
    assert compare({"rule": "float"}, pair, [p.copy() for p in pair]).ok
    assert not compare({"rule": "float"}, pair, pair[0]).ok
    bad = compare({"rule": "float"}, pair, [pair[0], pair[1] + 1])
    assert not bad.ok and bad.where.startswith("item 1")


def test_categorical_near_tie():
    logits = np.array([[1.0, 1.0 + 4e-6, -3.0], [0.0, 2.0, 1.0]], np.float32)
    rule = {"rule": "discrete", "ties": {"kind": "categorical", "scores": "logits"}}
    expected = np.array([1, 1])
    assert compare(rule, expected, np.array([0, 1]), {"logits": logits}).ok  # row 0 is a near-tie
    result = compare(rule, expected, np.array([1, 2]), {"logits": logits})
    assert not result.ok and result.error == 1 and result.where == "row 1"
    assert not compare({"rule": "discrete", "ties": {"kind": "none"}}, expected, np.array([0, 1])).ok


def test_multi_categorical_and_gumbel_ties():
    logits = np.array([[0.5, 0.5, 1.0, 2.0, 2.0]], np.float32)  # components of 2 and 3
    rule = {"rule": "discrete", "ties": {"kind": "multi_categorical", "scores": "logits", "nvec": [2, 3]}}
    assert compare(rule, np.array([[0, 1]]), np.array([[1, 2]]), {"logits": logits}).ok
    assert not compare(rule, np.array([[0, 1]]), np.array([[0, 0]]), {"logits": logits}).ok
    u = np.array([[0.5, 0.5, 0.3, 0.9, 0.1]], np.float32)
    gumbel = {"rule": "discrete", "ties": {"kind": "gumbel", "scores": "logits", "noise": "u", "nvec": [2, 3]}}
    # with the noise, component 1's scores are 1 - log(-log .3), 2 - log(-log .9), 2 - log(-log .1): no tie
    assert not compare(gumbel, np.array([[0, 1]]), np.array([[0, 2]]), {"logits": logits}, {"u": u}).ok
    assert compare(gumbel, np.array([[0, 1]]), np.array([[1, 1]]), {"logits": logits}, {"u": u}).ok


def test_bernoulli_and_inverse_cdf_ties():
    p = np.array([[0.5 + 1e-6, 0.9]], np.float32)
    mode = {"rule": "discrete", "ties": {"kind": "bernoulli_mode", "probabilities": "p"}}
    assert compare(mode, np.array([[1.0, 1.0]], np.float32), np.array([[0.0, 1.0]], np.float32), {"p": p}).ok
    assert not compare(mode, np.array([[1.0, 1.0]], np.float32), np.array([[1.0, 0.0]], np.float32), {"p": p}).ok
    sample = {"rule": "discrete", "ties": {"kind": "bernoulli_sample", "probabilities": "p", "noise": "u"}}
    u = np.array([[0.2, 0.9 - 1e-7]], np.float32)
    assert compare(sample, np.array([[1.0, 1.0]], np.float32), np.array([[1.0, 0.0]], np.float32), {"p": p},
                   {"u": u}).ok
    assert not compare(sample, np.array([[1.0, 1.0]], np.float32), np.array([[0.0, 1.0]], np.float32), {"p": p},
                       {"u": u}).ok
    cdf = {"rule": "discrete", "ties": {"kind": "inverse_cdf", "probabilities": "p", "noise": "u"}}
    probabilities = np.array([[0.25, 0.25, 0.5]], np.float32)
    at_boundary = np.array([[0.5 - 1e-7]], np.float32)
    assert compare(cdf, np.array([2]), np.array([1]), {"p": probabilities}, {"u": at_boundary}).ok
    assert not compare(cdf, np.array([2]), np.array([0]), {"p": probabilities}, {"u": np.array([[0.7]])}).ok


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
