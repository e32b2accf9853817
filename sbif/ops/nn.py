"""Network ops: the dense layer, one-hot encoding, softmax and argmax."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .base import (FLOAT_DTYPES, INT_DTYPES, REQUIRED, ExactOutputs, Op, ValueSpec, fail, register, require_dtype,
                   undetermined_where)
from .elementwise import Exp
from .rounding import CONFIDENCE, TWO_PROGRAMS, ULP, UNDERFLOW, product_scale, quadrature, u

#: Largest dimension, stride, size or count a file may hold (SPEC sections 2 and 3.5): int64's maximum, the C
#: runtime's and NumPy's index type.
MAX_DIM = 2 ** 63 - 1


def is_dimension(value: object, least: int = 0) -> bool:
    """Whether an attribute's number can become a dimension, stride, size or count: an exact integer (JSON's `true`
    is a bool, which Python counts as an int) from `least` to MAX_DIM."""
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= MAX_DIM


def exact_count(shape: Iterable[int]) -> int:
    """The number of elements of a static shape, in exact integers (np.prod wraps around int64 silently)."""
    count = 1
    for dim in shape:
        count *= dim
    return count


def require_rows(x: ValueSpec, op: str) -> None:
    """An op that works along the last axis (argmax, softmax, reduce_mean, layer_norm) needs one, and it must not
    be the batch: along a [B] value's last axis the op would mix the rows, which stay independent (SPEC section
    3.5). A batch-free value (a tensor's) may have any last axis."""
    if len(x.shape) < 1:
        fail("{} works along the last axis and needs an input of rank at least 1, got {}".format(op, x))
    if x.shape[-1] is None:
        fail("{} works along the last axis, which of {} is the batch: rows must stay independent".format(op, x))


@register
class Linear(Op):
    """y = x @ w + b for x [B, K], w [K, N], b [N] (SB2's `linear`, tf.layers.dense, fully_connected)."""

    name = "linear"
    arity = 3

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, w, b = inputs
        require_dtype(x, FLOAT_DTYPES, "x")
        if not x.dtype == w.dtype == b.dtype:
            fail("x, w and b have different dtypes ({}, {}, {})".format(x.dtype, w.dtype, b.dtype))
        if len(x.shape) != 2 or len(w.shape) != 2 or len(b.shape) != 1:
            fail("linear needs x of rank 2, w of rank 2 and b of rank 1, got {}, {}, {}".format(x, w, b))
        if x.shape[1] != w.shape[0] or w.shape[1] != b.shape[0]:
            fail("linear shapes do not chain: x {}, w {}, b {}".format(x, w, b))
        return [ValueSpec(x.dtype, (x.shape[0], w.shape[1]))]

    @classmethod
    def compute(cls, x, w, b):
        return np.matmul(x, w) + b

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        (x, w, b), (sx, sw, sb) = inputs, scales
        return [product_scale(np.matmul, x, sx, w, sw, w.shape[0] + 1, outputs[0].dtype, b, sb)]


@register
class OneHot(Op):
    """y[..., j] = 1.0 if x[...] == j else 0.0 for j < depth; indices outside [0, depth) give all zeros."""

    name = "one_hot"
    attributes = {"depth": (int, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        require_dtype(inputs[0], INT_DTYPES)
        if attrs["depth"] < 1:
            fail("one_hot depth must be positive, got {}".format(attrs["depth"]))
        return [ValueSpec("float32", inputs[0].shape + (attrs["depth"],))]

    @classmethod
    def compute(cls, x, depth):
        return (np.asarray(x)[..., None] == np.arange(depth)).astype(np.float32)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, depth):
        return [np.broadcast_to(np.where(np.isnan(scales[0]), np.nan, 0.0)[..., None], outputs[0].shape)]


@register
class Softmax(Op):
    """exp(x - max(x)) / sum(exp(x - max(x))) over the last axis, as TF: exp(x - max) * (1 / sum)."""

    name = "softmax"

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        require_dtype(inputs[0], FLOAT_DTYPES)
        require_rows(inputs[0], cls.name)
        return [inputs[0]]

    @classmethod
    def compute(cls, x):
        if x.shape[-1] == 0:  # no row has an element: nothing to normalise (NumPy's max refuses an empty axis)
            return np.array(x, copy=True)
        shifted = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return shifted * (x.dtype.type(1) / np.sum(shifted, axis=-1, keepdims=True))

    #: how many pairwise differences `error_scale` holds at once
    SHARE_BLOCK = 1 << 20

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        """Softmax is increasing in its own logit and decreasing in the others: over the intervals x̂ ± λσ,
        y_j lies between 1 / (1 + Σ_k≠j e^((x_k + λσ_k) - (x_j - λσ_j))) and the same with the signs swapped
        (written with differences, so no exponential overflows however large the logits or their scales); that
        spread, per λ, is what it carries. Each program's own errors, relative to y_j: the rounded shift x_j - m
        (u·|x_j - m|, which exp turns into a relative error), exp (its 4 ULP), the sum of N positive terms
        (sqrt(N)·u, and the terms' own errors weighted by their shares), the reciprocal and the product."""
        x, scale, y = np.asarray(inputs[0], np.float64), scales[0], outputs[0]
        unit, count = u(y.dtype), x.shape[-1]
        width = CONFIDENCE * scale
        with np.errstate(all="ignore"):
            def share(own: np.ndarray, other: np.ndarray) -> np.ndarray:
                """1 / (1 + Σ_k≠j e^(other_k - own_j)), element j, a block of j at a time (at most
                SHARE_BLOCK differences in memory: N² per row would grow with wide action spaces)."""
                result = np.empty_like(own)
                rows = max(int(np.prod(own.shape[:-1])), 1)
                block = max(1, cls.SHARE_BLOCK // max(rows * count, 1))
                for start in range(0, count, block):
                    stop = min(start + block, count)
                    exponents = other[..., None, :] - own[..., start:stop, None]
                    exponents[..., np.arange(stop - start), np.arange(start, stop)] = -np.inf  # k = j
                    result[..., start:stop] = 1.0 / (1.0 + np.sum(np.exp(exponents), axis=-1))
                return result

            centre = share(x, x)
            y_low, y_high = share(x - width, x + width), share(x + width, x - width)
            spread = np.where(width != 0, np.maximum(y_high - centre, centre - y_low), 0.0) / CONFIDENCE
            finite = np.where(np.isfinite(x), x, -np.inf)
            top = np.max(finite, axis=-1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            term = quadrature(unit * np.where(np.isfinite(x), np.abs(x - top), 0.0), Exp.accuracy[0] * ULP * unit)
            # the sum's relative error from its terms' own: each term's, weighted by its share of the sum
            weighted = np.sqrt(np.sum(np.square(centre * term), axis=-1, keepdims=True))
            relative = quadrature(term, np.sqrt(count + 2.0) * unit, weighted)
            scale_y = quadrature(spread, TWO_PROGRAMS * (relative * y_high + UNDERFLOW))
            nan_row = np.any(np.isnan(x) | (x == np.inf), axis=-1, keepdims=True)  # NaN in every program
        return [np.where(nan_row, undetermined_where([scale], x.shape[:-1], -1)[..., None], scale_y)]


@register
class Argmax(ExactOutputs):
    """Index of the largest element over the last axis as int64; the first one on ties.

    As TF 1.15 (Eigen's ArgMaxTupleReducer): the scan starts from (index 0, lowest finite value) and moves only to
    a strictly greater element, so NaN is never chosen and a row with nothing above the lowest finite value
    (all NaN, -inf or -max) gives 0."""

    name = "argmax"
    reads_axis = -1

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        require_dtype(inputs[0], FLOAT_DTYPES + INT_DTYPES)  # not bool: TF 1.15 has no ArgMax kernel for it
        require_rows(inputs[0], cls.name)
        if inputs[0].shape[-1] == 0:  # no index to give (TF refuses the reduction, the C runtime the file)
            fail("argmax needs a last axis of at least one element, got {}".format(inputs[0]))
        return [ValueSpec("int64", inputs[0].shape[:-1])]

    @classmethod
    def compute(cls, x):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            lowest = np.finfo(x.dtype).min
            x = np.where(x > lowest, x, lowest)  # NaN, -inf and -max all become -max, below any candidate
        return np.argmax(x, axis=-1).astype(np.int64)
