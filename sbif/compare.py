"""How SBIF decides that two runtimes agree (spec/SPEC.md, "Comparing outputs").

Bit equality with TensorFlow is impossible (Eigen's tanh and exp differ from libm by a few ULP, and matmul
summation order differs), so floats are compared with |a - e| <= atol + rtol * |e|, NaN matching NaN and
infinities matching exactly; discrete actions must be equal unless the expected choice and ours are a
near-tie of the logits they were taken from.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

ATOL = 1e-5
RTOL = 1e-5


def float_error(expected: np.ndarray, actual: np.ndarray, rtol: float = RTOL) -> float:
    """The worst |a - e| / (1 + (rtol / ATOL) * |e|): a value <= ATOL means every element is within tolerance.

    Mismatched NaN or infinity positions, or a shape mismatch, give inf.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        return float("inf")
    nan_e, nan_a = np.isnan(expected), np.isnan(actual)
    inf_e, inf_a = np.isinf(expected), np.isinf(actual)
    if np.any(nan_e != nan_a) or np.any(inf_e != inf_a) or np.any(expected[inf_e] != actual[inf_a]):
        return float("inf")
    finite = ~(nan_e | inf_e)
    if not np.any(finite):
        return 0.0
    difference = np.abs(actual[finite] - expected[finite])
    return float(np.max(difference / (1.0 + (rtol / ATOL) * np.abs(expected[finite]))))


def discrete_mismatches(expected: np.ndarray, actual: np.ndarray, scores: Optional[Sequence[np.ndarray]] = None,
                        atol: float = ATOL) -> int:
    """Rows whose discrete actions differ, not counting near-ties.

    `expected`/`actual` are [B] or [B, k]; `scores[j]` holds the [B, n_j] logits (or Q-values) component j was
    chosen from. A difference is a near-tie when the two choices' scores are within atol * (1 + |score|).
    """
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return max(expected.size, actual.size, 1)
    rows = len(expected) if expected.ndim else 1
    e, a = expected.reshape(rows, -1), actual.reshape(rows, -1)
    count = 0
    for row in np.nonzero(np.any(e != a, axis=1))[0]:
        for j in np.nonzero(e[row] != a[row])[0]:
            if scores is None:
                count += 1
                break
            s = np.asarray(scores[j][row], dtype=np.float64)
            chosen, ours = s[int(e[row, j])], s[int(a[row, j])]
            if abs(chosen - ours) > atol * (1 + abs(chosen)):
                count += 1
                break
    return count


def sample_observations(space: dict, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` observations of a document space: uniform within finite Box bounds (normal, scale 10, where a
    bound is infinite or beyond 1e30), uniform indices for Discrete/MultiDiscrete, fair bits for MultiBinary."""
    kind = space["kind"]
    if kind == "discrete":
        return rng.integers(0, space["n"], size=count)
    if kind == "multi_discrete":
        return np.stack([rng.integers(0, n, size=count) for n in space["nvec"]], axis=1)
    if kind == "multi_binary":
        return rng.integers(0, 2, size=(count, space["n"]))
    from .format.document import decode_bound

    shape = tuple(space["shape"])
    low = decode_bound(space["low"], shape, "float64")
    high = decode_bound(space["high"], shape, "float64")
    # Bounds of +-3.4e38 (gym's float32 "unbounded") are treated as infinite: uniform draws there overflow
    # float32 sums, differently in every runtime.
    finite = (np.abs(low) < 1e30) & (np.abs(high) < 1e30)
    uniform = low + rng.random((count,) + shape) * np.where(finite, high - low, 0.0)
    values = np.where(finite, uniform, 10.0 * rng.standard_normal((count,) + shape))
    if np.dtype(space["dtype"]).kind in "iub":
        values = np.floor(values + np.where(finite, rng.random((count,) + shape), 0.0))
        values = np.clip(values, low, high)
    return values.astype(space["dtype"])
