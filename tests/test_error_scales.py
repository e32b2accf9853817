"""Error scales (SPEC section 6, `sbif/ops/rounding.py`, `sbif/runtime/error_scales.py`): every op has one, they
cover what TensorFlow itself computed, they are tight enough to catch float16 arithmetic, and SB2's undefined
behaviour is declared (NaN scale) rather than failed.

Runs in both environments and never imports TensorFlow: TensorFlow's answers are the op vectors (spec/vectors).
"""
from __future__ import annotations

import numpy as np
import pytest

from conformance.models import FAMILIES, build_model, family_status
from sbif.compare import float_agreement
from sbif.ops import REGISTRY, Op, resolve_attrs
from sbif.ops.rounding import CONFIDENCE, finish
from sbif.runtime import Policy
from sbif.runtime.error_scales import ErrorScales, predict_scales, result_agreement
from tests.test_op_vectors import CASE_IDS, CASES, decode


def scales_of(op, inputs, attrs):
    """The reference's outputs of one op on exact inputs, and their error scales."""
    with np.errstate(all="ignore"):
        result = op.compute(*inputs, **attrs)
        outputs = list(result) if isinstance(result, tuple) else [result]
        return outputs, finish(outputs, op.error_scale(inputs, [np.zeros(np.shape(x)) for x in inputs], outputs,
                                                      **attrs))


def test_every_op_states_its_error_scale():
    missing = [name for name, op in REGISTRY.items() if op.error_scale.__func__ is Op.error_scale.__func__]
    assert not missing


@pytest.mark.parametrize("op_name, item", CASES, ids=CASE_IDS)
def test_tensorflow_is_within_the_scales(op_name, item):
    """TF 1.15's own answer on every op vector is within λ scales of the reference's: TF is a correct program."""
    op = REGISTRY[op_name]
    inputs = [decode(t) for t in item["inputs"]]
    outputs, scales = scales_of(op, inputs, resolve_attrs(op, dict(item["attrs"]), op_name))
    for expected, output, scale in zip([decode(t) for t in item["outputs"]], outputs, scales):
        if expected.dtype.kind != "f":
            continue
        with np.errstate(invalid="ignore"):  # NaN compares false (numpy 1.18 warns)
            flushed = np.where(np.abs(expected) < np.finfo(expected.dtype).tiny, 0, expected)  # TF flushes subnormals
        agreement = float_agreement(flushed, np.asarray(output), scale)
        assert agreement.ok, "element {}: TF {!r}, reference {!r}, scale {!r} ({:.3g} of the limit)".format(
            agreement.where, expected.reshape(-1)[agreement.where], np.asarray(output).reshape(-1)[agreement.where],
            scale.reshape(-1)[agreement.where], agreement.ratio)


def test_float16_weights_exceed_the_scales():
    """A 64-wide dense layer with weights rounded through float16 is outside the scales (the rule has teeth)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    w = (rng.standard_normal((64, 64)) / 8).astype(np.float32)
    b = (rng.standard_normal(64) / 2).astype(np.float32)
    linear = REGISTRY["linear"]
    (reference,), (scale,) = scales_of(linear, [x, w, b], {})
    half = linear.compute(x, w.astype(np.float16).astype(np.float32), b)
    assert float_agreement(reference, half, scale).ratio > 3
    exact = linear.compute(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    assert float_agreement(reference, exact, scale).ratio < 0.3


def test_a_summation_order_is_free():
    """A correct program that sums in reverse order, in blocks, stays well inside the scales."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((16, 512)) * 30).astype(np.float32)
    w = rng.standard_normal((512, 8)).astype(np.float32)
    (reference,), (scale,) = scales_of(REGISTRY["matmul"], [x, w], {})
    reverse = np.zeros((16, 8), np.float32)
    for k in reversed(range(512)):
        reverse = (reverse + x[:, k:k + 1] * w[k]).astype(np.float32)
    assert float_agreement(reference, reverse, scale).ratio < 0.5


def test_layer_norm_variance_overflow_is_not_determined():
    """The row whose variance overflows float32 (SB2 answers NaN or beta by position) gets a NaN scale, and only it;
    a row that is NaN anyway is compared exactly (scale 0)."""
    x = np.array([[1.0, 2.0, 3.0, 4.0], [1e30, -1e30, 0.0, 1.0], [np.nan, 1.0, 2.0, 3.0]], np.float32)
    gamma, beta = np.ones(4, np.float32), np.full(4, 0.5, np.float32)
    (y,), (scale,) = scales_of(REGISTRY["layer_norm"], [x, gamma, beta], {"epsilon": 1e-12})
    assert np.all(np.isfinite(scale[0])) and np.all(np.isnan(scale[1])) and np.all(scale[2] == 0)
    assert np.array_equal(y[1], beta)
    agreement = float_agreement(y, np.where(np.arange(3)[:, None] == 1, np.nan, y), scale)
    assert agreement.ok and agreement.excluded == 4


def test_undetermined_scales_propagate_to_dependent_values_only():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [1e30, -1e30, 0.0, 1.0]], np.float32)
    (_,), (scale,) = scales_of(REGISTRY["layer_norm"], [x, np.ones(4, np.float32), np.zeros(4, np.float32)],
                               {"epsilon": 1e-12})
    for name in ("relu", "tanh", "exp", "neg", "swish", "softmax"):
        with np.errstate(over="ignore"):
            outputs = [REGISTRY[name].compute(x)]
        after = finish(outputs, REGISTRY[name].error_scale([x], [scale], outputs))[0]
        assert np.all(np.isfinite(after[0])) and np.all(np.isnan(after[1])), name
    w = np.ones((4, 3), np.float32)
    outputs = [REGISTRY["linear"].compute(x, w, np.zeros(3, np.float32))]
    carried = finish(outputs, REGISTRY["linear"].error_scale([x, w, np.zeros(3, np.float32)],
                                                             [scale, np.zeros((4, 3)), np.zeros(3)], outputs))[0]
    assert np.all(np.isfinite(carried[0])) and np.all(np.isnan(carried[1]))


def test_log_of_an_interval_reaching_zero_is_not_determined():
    x = np.array([1e-3, 1.0], np.float32)
    outputs = [REGISTRY["log"].compute(x)]
    scale = finish(outputs, REGISTRY["log"].error_scale([x], [np.array([1e-3, 1e-3])], outputs))[0]
    assert np.isnan(scale[0]) and np.isfinite(scale[1])


def test_non_finite_reference_values_are_exact():
    x = np.array([[np.inf, 0.0], [np.nan, 1.0], [-np.inf, 1.0]], np.float32)
    (y,), (scale,) = scales_of(REGISTRY["softmax"], [x], {})
    assert np.all(scale[:2] == 0) and np.isnan(y[0]).all() and y[2, 0] == 0 and np.all(np.isfinite(scale[2]))


SPECS = {family: spec for family, spec in {
    "mlp": {"family": "mlp", "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": -1.0,
                                             "high": 1.0},
            "action": {"kind": "box", "shape": [2], "dtype": "float32", "low": -1.0, "high": 1.0}},
    "lstm": {"family": "lstm", "observation": {"kind": "discrete", "n": 4},
             "action": {"kind": "multi_discrete", "nvec": [3, 2]}, "layer_norm": True},
    "dqn": {"family": "dqn", "observation": {"kind": "multi_binary", "n": 3}, "action": {"kind": "discrete", "n": 3},
            "layers": [4], "dueling": True, "layer_norm": True},
    "sac": {"family": "sac", "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": -1.0,
                                             "high": 1.0},
            "action": {"kind": "box", "shape": [2], "dtype": "float32", "low": -1.0, "high": 2.0}, "layers": [5]},
}.items() if family in FAMILIES and family_status().get(family) is None}
BERNOULLI = {"family": "mlp", "observation": {"kind": "multi_discrete", "nvec": [2, 3]},
             "action": {"kind": "multi_binary", "n": 3}}


@pytest.mark.parametrize("spec", list(SPECS.values()) + [BERNOULLI], ids=list(SPECS) + ["bernoulli"])
def test_predict_scales_are_shaped_like_the_results(spec):
    """Every predict-family result has a scale of its shape, batched and single, with and without actions."""
    policy = Policy(build_model(spec))
    scales = ErrorScales(policy.model)
    rng = np.random.default_rng(0)
    from conformance.models import sample_space

    batch = sample_space(policy.observation_space.to_json(), 4, rng)
    calls = [("value", {}), ("predict", {"deterministic": True}), ("action_probability", {})]
    distribution = policy.document["predict"].get("distribution")
    if distribution is not None:
        actions = policy.predict(batch, deterministic=True)[0]
        calls += [("action_probability", {"actions": actions, "logp": logp}) for logp in (False, True)]
    state = policy.initial_state_for(4)
    for method, extra in calls:
        if method == "value" and "value" not in policy.output_names:
            continue
        for observation in ([batch] if policy.recurrent else [batch, batch[0]]):
            single = observation is not batch
            found = predict_scales(policy, scales, method, observation, None if single else state, **extra)
            key = {"predict": "action", "value": "value", "action_probability": "probability"}[method]
            if method == "predict":
                result = policy.predict(observation, None if single else state, **extra)[0]
            elif method == "value":
                result = policy.value(observation, None if single else state)
            else:
                if single and "actions" in extra:
                    continue
                result = policy.action_probability(observation, None if single else state, **extra)
            assert result_agreement(result, result, found[key]) == 0.0, (method, extra, single)
            shapes = [np.shape(r) for r in result] if isinstance(result, list) else np.shape(result)
            scale_shapes = [np.shape(s) for s in found[key]] if isinstance(found[key], list) else np.shape(found[key])
            assert shapes == scale_shapes, (method, extra, single)


def test_confidence_is_the_specified_one():
    assert CONFIDENCE == 8.0  # SPEC section 6.2; changing it changes every golden pack's verdicts


def test_softmax_of_huge_logits_with_huge_scales_is_determined():
    """Logits of 1e29 carried with scales of 1e22 (a 1e30 observation through a layer) still give a one-hot
    softmax, whose scales are finite (not an overflow of exp), and a wide row is handled in blocks."""
    softmax = REGISTRY["softmax"]
    x = np.array([[1e29, -1e29, 0.0], [1.0, 2.0, 3.0]], np.float32)
    outputs = [softmax.compute(x)]
    scale = finish(outputs, softmax.error_scale([x], [np.array([[1e22] * 3, [1e-7] * 3])], outputs))[0]
    assert np.all(np.isfinite(scale)) and np.all(scale[0] < 1e-6)
    wide = np.random.default_rng(0).standard_normal((2, 300)).astype(np.float32)
    outputs = [softmax.compute(wide)]
    whole = softmax.error_scale([wide], [np.full(wide.shape, 1e-6)], outputs)[0]
    original, softmax.SHARE_BLOCK = softmax.SHARE_BLOCK, 7
    try:
        assert np.array_equal(whole, softmax.error_scale([wide], [np.full(wide.shape, 1e-6)], outputs)[0])
    finally:
        softmax.SHARE_BLOCK = original
