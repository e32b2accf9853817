"""Network ops: the dense layer, one-hot encoding, softmax and argmax."""
from __future__ import annotations

import numpy as np

from .base import FLOAT_DTYPES, INT_DTYPES, REQUIRED, Op, ValueSpec, fail, register, require_dtype


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


@register
class Softmax(Op):
    """exp(x - max(x)) / sum(exp(x - max(x))) over the last axis, as TF: exp(x - max) * (1 / sum)."""

    name = "softmax"

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        require_dtype(inputs[0], FLOAT_DTYPES)
        return [inputs[0]]

    @classmethod
    def compute(cls, x):
        shifted = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return shifted * (x.dtype.type(1) / np.sum(shifted, axis=-1, keepdims=True))


@register
class Argmax(Op):
    """Index of the largest element over the last axis as int64; the first one on ties.

    As TF 1.15 (Eigen's ArgMaxTupleReducer): the scan starts from (index 0, lowest finite value) and moves only to
    a strictly greater element, so NaN is never chosen and a row with nothing above the lowest finite value
    (all NaN, -inf or -max) gives 0."""

    name = "argmax"

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        if len(inputs[0].shape) < 1:
            fail("argmax needs an input of rank at least 1")
        return [ValueSpec("int64", inputs[0].shape[:-1])]

    @classmethod
    def compute(cls, x):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            lowest = np.finfo(x.dtype).min
            x = np.where(x > lowest, x, lowest)  # NaN, -inf and -max all become -max, below any candidate
        return np.argmax(x, axis=-1).astype(np.int64)
