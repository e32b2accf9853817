"""Error scales: how far a correct float program's value may be from the reference's (SPEC section 6).

For every float value v of a graph the reference computes v̂ (its own float32 or float64 result) and an error
scale σ(v) >= 0 per element: a bound of the standard deviation of v' − v̂, where v' is what *any* correct program
computes — one that evaluates each op within the op's stated accuracy and sums in any order, with or without
fused multiply-adds. Two correct programs then agree within CONFIDENCE·σ, which is SPEC section 6's rule. The
scales are evaluated in float64 alongside the reference's values, so they depend on the data: a wide layer, a
large |W|·|x|, an `exp` of a large log-std or a cancellation widen them exactly where float32 rounding is large.

The model is probabilistic forward error analysis (Higham and Mary, "A new approach to probabilistic rounding
error analysis", SIAM J. Sci. Comput. 41(5), 2019): each rounding, and each library function's error, is a
perturbation bounded by its stated size, with mean zero and independent of the others. Under it a sum of n terms
in any order errs by at most λ·sqrt(n)·u·Σ|t_i| except with probability 2·exp(−λ²/2), where the worst case
grows like n; and errors carried from the inputs through a layer add in quadrature, where the worst case adds
|W|·|δx| and compounds by Σ|w| per layer (1e3–1e5 too wide for a nature CNN, hiding any bug). Each op's
`error_scale(inputs, scales, outputs, **attrs)` (in the op's own class) returns the outputs' scales from the
reference's inputs and outputs and the inputs' scales; this module holds what they share:

- `u(dtype)`: the unit roundoff (2^-24 for float32): |fl(x) − x| <= u·|x| for a rounding to nearest;
- `own_scale`: the scale of an op's own rounding in two programs (the reference's and the other's);
- `magnitude(x, σ)`: |x̂| + σ, the size a program's rounding is relative to;
- `UNDERFLOW`: 2^-126, the absolute error of a subnormal result flushed to zero (TF runs with FTZ/DAZ);
- `CONFIDENCE` (λ): how many scales apart two correct programs may be. Every perturbation counts at its full
  bound, so by Hoeffding's inequality a difference exceeds λ·σ with probability at most 2·exp(−λ²/2) =
  2.5e-14 for λ = 8 (a uniform rounding error's deviation is u·|v|/sqrt(3): for rounding errors λ is
  effectively 14, and the chance below 1e-40).

Two conventions keep the rules small:
- a scale is NaN where the value is *not determined* by float evaluation — a correct program may get any value
  there, or NaN (the log or a divisor whose interval x̂ ± λσ reaches 0, SB2's own undefined behaviour such as a
  layer-norm variance that overflows). NaN scales propagate through every later op that reads the element, and
  the comparison leaves those elements out, with the reason in its report;
- where the reference's value is infinite or NaN the scale is 0 (SPEC section 6: non-finite values match
  exactly), unless it is already NaN (not determined).
"""
from __future__ import annotations

from typing import Callable, List, Sequence

import numpy as np

#: λ: two correct programs agree within CONFIDENCE error scales (SPEC section 6)
CONFIDENCE = 8.0
#: the absolute error of one rounding whose result is subnormal and flushed to zero
UNDERFLOW = 2.0 ** -126
#: the size of one unit in the last place relative to a value's magnitude: ulp(y) <= 2·u·|y| for normal y
ULP = 2.0
#: two programs' own roundings are independent: their difference has sqrt(2) times one's scale
TWO_PROGRAMS = np.sqrt(2.0)


def u(dtype: np.dtype) -> float:
    """The unit roundoff of a float dtype (0 for integer and bool values, which carry no rounding)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return 0.0
    return float(np.finfo(dtype).eps) / 2.0


def magnitude(value: np.ndarray, scale: np.ndarray = 0.0) -> np.ndarray:
    """|x̂| + σ (float64): the size of what a program holds. Infinite and NaN values count as 0: they are exact
    (SPEC section 6), so their size never enters a rounding error."""
    value = np.asarray(value, dtype=np.float64)
    return np.where(np.isfinite(value), np.abs(value), 0.0) + scale


def quadrature(*scales: np.ndarray) -> np.ndarray:
    """The scale of a sum of independent perturbations: sqrt(Σ σ_i²)."""
    return np.sqrt(sum(np.square(scale) for scale in scales))


def own_scale(dtype: np.dtype, size: np.ndarray, ulps: float = 0.5, absolute: float = 0.0,
              roundings: int = 1) -> np.ndarray:
    """The scale of an op's own errors in two correct programs: `roundings` perturbations each, every one within
    `ulps` ULP of a result of magnitude at most `size` (0.5 ULP: a correctly rounded operation), plus `absolute`,
    plus a flushed subnormal."""
    if np.dtype(dtype).kind != "f":
        return np.zeros(np.shape(size))
    return TWO_PROGRAMS * np.sqrt(roundings) * (ulps * ULP * u(dtype) * size + absolute + UNDERFLOW)


def sum_scale(dtype: np.dtype, terms: int, size: np.ndarray) -> np.ndarray:
    """The own scale of a sum of `terms` terms (products included) in any order, relative to Σ|t_i| = `size`:
    terms roundings, each at most u·Σ|t_i|."""
    return own_scale(dtype, size, roundings=terms)


def carried(derivative_spread: Callable[[np.ndarray], np.ndarray], scale: np.ndarray) -> np.ndarray:
    """The scale an element-wise function carries from its input: how far f moves over x̂ ± λσ, per λ. This is
    the derivative where f is smooth on that interval, and stays sound where it is not (a clip edge, a
    saturating tanh, a rounding step)."""
    with np.errstate(all="ignore"):
        return np.where(scale != 0, derivative_spread(CONFIDENCE * scale) / CONFIDENCE, 0.0)


def monotone_scale(function: Callable[[np.ndarray], np.ndarray], x: np.ndarray, scale: np.ndarray,
                   dtype: np.dtype, ulps: float, absolute: float = 0.0) -> np.ndarray:
    """The scale of y = f(x) for an increasing f evaluated within `ulps` ULP (+ `absolute`) of the exact value:
    what f carries over x̂ ± λσ, and the two programs' own errors at that interval's largest |f|."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        centre = function(x)

        def spread(width: np.ndarray) -> np.ndarray:
            return np.maximum(function(x + width) - centre, centre - function(x - width))

        size = np.maximum(magnitude(function(x - CONFIDENCE * scale)), magnitude(function(x + CONFIDENCE * scale)))
        return quadrature(carried(spread, scale), own_scale(dtype, size, ulps, absolute))


def lipschitz_scale(lipschitz: float, x: np.ndarray, scale: np.ndarray, y: np.ndarray, dtype: np.dtype,
                    ulps: float, absolute: float = 0.0) -> np.ndarray:
    """The scale of y = f(x) for an f with |f'| <= `lipschitz` everywhere (non-monotone activations)."""
    return quadrature(lipschitz * scale, own_scale(dtype, magnitude(y, lipschitz * scale), ulps, absolute))


def product_scale(product: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, x_scale: np.ndarray,
                  w: np.ndarray, w_scale: np.ndarray, terms: int, dtype: np.dtype, bias: np.ndarray = None,
                  bias_scale: np.ndarray = None) -> np.ndarray:
    """The scale of y = product(x, w) (+ bias), a sum of `terms` products per output element (`terms` counts
    the bias: TF adds it as one more rounded addition), in any order:
    σ_y² = product(σ_x², ŵ²) + product(x̂², σ_w²) + σ_b²  (carried from the inputs, in quadrature)
         + 2·terms·u²·(product(|x̂| + σ_x, |ŵ| + σ_w) + |b̂| + σ_b)²  (two programs' own roundings)."""
    w64 = np.asarray(w, np.float64)
    carried_variance = product(np.square(x_scale), np.square(w64)) if np.any(x_scale) else 0.0
    if np.any(w_scale):
        carried_variance = carried_variance + product(np.square(magnitude(x)), np.square(w_scale))
    size = product(magnitude(x, x_scale), magnitude(w, w_scale))
    if bias is not None:
        carried_variance = carried_variance + np.square(bias_scale)
        size = size + magnitude(bias, bias_scale)
    return quadrature(np.sqrt(carried_variance), sum_scale(dtype, terms, size))


def finish(outputs: Sequence[np.ndarray], scales: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Apply this module's conventions to an op's output scales: an infinite scale on a finite value means not
    determined (NaN); a non-finite value is exact (0) unless it is not determined; integers carry no rounding."""
    finished = []
    for value, scale in zip(outputs, scales):
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), np.shape(value))
        value = np.asarray(value)
        if value.dtype.kind == "f":
            finite = np.isfinite(value)
            scale = np.where(finite & np.isinf(scale), np.nan, scale)
            scale = np.where(finite | np.isnan(scale), scale, 0.0)
        else:
            scale = np.where(np.isnan(scale), scale, 0.0)
        finished.append(scale)
    return finished
