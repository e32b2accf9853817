"""How SBIF decides that two runtimes agree (spec/SPEC.md section 6, "Comparing outputs").

Bit equality with TensorFlow is impossible (Eigen's tanh and exp differ from libm by a few ULP, and sums run in
other orders), and a fixed tolerance is blind to conditioning: a wide layer or an `exp` of a large log-std
rounds far more than a small head. So the expected side carries, per element, an error scale σ: how far a
correct float32 program may be from the reference's value on the same inputs (`sbif.runtime.error_scales`).
The rule:

- float outputs: |actual − expected| <= CONFIDENCE·σ element-wise; NaN matches NaN and infinities match
  exactly; elements whose σ is NaN are *not determined* by float evaluation (ill-conditioned, or SB2's own
  undefined behaviour) and are left out, counted;
- discrete choices (indices, Bernoulli modes) are equal, except on a near-tie: the two choices' scores differ
  by at most CONFIDENCE·sqrt(σ_a² + σ_b²), so a correct program may rank them either way.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from .ops.rounding import CONFIDENCE


class Agreement(NamedTuple):
    """The outcome of comparing float arrays under their scales: `ratio` is max |a − e| / (CONFIDENCE·σ) over
    the determined elements (<= 1 passes; inf for a NaN/inf mismatch), `where` the flat index of that element
    (-1 when there is none), `excluded` how many elements were left out as not determined."""

    ratio: float
    where: int
    excluded: int

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0


def float_agreement(expected: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> Agreement:
    """Compare `actual` with `expected` (same shape) under the expected side's per-element error `scale`."""
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), np.shape(expected)).reshape(-1)
    if e.shape != a.shape:
        return Agreement(float("inf"), -1, 0)
    undetermined = np.isnan(s)
    with np.errstate(all="ignore"):
        nan_e, nan_a = np.isnan(e), np.isnan(a)
        special = (nan_e != nan_a) | ((np.isinf(e) | np.isinf(a)) & ~(nan_e | nan_a) & (e != a))
        difference = np.where(np.isfinite(e) & np.isfinite(a), np.abs(a - e), 0.0)
        ratio = np.where(difference == 0, 0.0, difference / (CONFIDENCE * s))
    ratio = np.where(special, np.inf, ratio)
    ratio = np.where(undetermined, 0.0, ratio)
    if ratio.size == 0:
        return Agreement(0.0, -1, 0)
    where = int(np.argmax(ratio))
    return Agreement(float(ratio[where]), where, int(np.sum(undetermined)))


def near_tie(score_a: float, scale_a: float, score_b: float, scale_b: float) -> bool:
    """Whether a correct program may rank two scores either way: they differ by at most
    CONFIDENCE·sqrt(σ_a² + σ_b²), or one of them is not determined (NaN scale). Infinite scores tie only with an
    equal score."""
    if np.isnan(scale_a) or np.isnan(scale_b):
        return True
    if not (np.isfinite(score_a) and np.isfinite(score_b)):
        return bool(score_a == score_b)
    return bool(abs(score_a - score_b) <= CONFIDENCE * np.hypot(scale_a, scale_b))


def discrete_disagreements(expected: np.ndarray, actual: np.ndarray, scores: Sequence[np.ndarray],
                           scales: Sequence[np.ndarray]) -> int:
    """Rows whose discrete actions differ, not counting near-ties.

    `expected`/`actual` are [B] or [B, k]; `scores[j]` holds the [B, n_j] logits (or Q-values, or the two
    Bernoulli probabilities 1 − p, p) component j was chosen from, and `scales[j]` their error scales."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return max(expected.size, actual.size, 1)
    rows = len(expected) if expected.ndim else 1
    e, a = expected.reshape(rows, -1), actual.reshape(rows, -1)
    count = 0
    for row in np.nonzero(np.any(e != a, axis=1))[0]:
        for j in np.nonzero(e[row] != a[row])[0]:
            s, b = np.asarray(scores[j][row], np.float64), np.asarray(scales[j][row], np.float64)
            chosen, ours = int(e[row, j]), int(a[row, j])
            if not (0 <= chosen < len(s) and 0 <= ours < len(s)) or not near_tie(s[chosen], b[chosen], s[ours],
                                                                                  b[ours]):
                count += 1
                break
    return count


def sample_observations(space: dict, count: int, rng: np.random.Generator) -> Any:
    """`count` observations of a document space: uniform within finite Box bounds (normal, scale 10, where a
    bound is infinite or beyond 1e30), uniform indices for Discrete/MultiDiscrete, fair bits for MultiBinary; for a
    dict space, a dict of each key's."""
    kind = space["kind"]
    if kind == "dict":
        return {entry["key"]: sample_observations(entry["space"], count, rng) for entry in space["spaces"]}
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

