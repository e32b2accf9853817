"""Element-wise ops: arithmetic with broadcasting, comparisons, and the activations SB2 users pass as `act_fun`.

Every float op computes in the dtype of its input (float32 for SB2 policies); constants are cast to that dtype
first, as TensorFlow does.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .base import FLOAT_DTYPES, REQUIRED, Op, ValueSpec, broadcast_shapes, fail, register, require_dtype


class UnaryFloatOp(Op):
    """y = f(x), same dtype and shape, for float inputs."""

    @classmethod
    def infer(cls, inputs: List[ValueSpec], attrs: Dict[str, Any], n_outputs: int) -> List[ValueSpec]:
        require_dtype(inputs[0], FLOAT_DTYPES)
        return [inputs[0]]


class BinaryOp(Op):
    """z = f(x, y) with NumPy broadcasting; both operands must have the same dtype."""

    arity = 2

    @classmethod
    def infer(cls, inputs: List[ValueSpec], attrs: Dict[str, Any], n_outputs: int) -> List[ValueSpec]:
        x, y = inputs
        if x.dtype != y.dtype:
            fail("operands have different dtypes ({} and {})".format(x.dtype, y.dtype))
        return [ValueSpec(cls.result_dtype(x.dtype), broadcast_shapes([x.shape, y.shape]))]

    @classmethod
    def result_dtype(cls, dtype: str) -> str:
        return dtype


@register
class Add(BinaryOp):
    name = "add"

    @classmethod
    def compute(cls, x, y):
        return np.add(x, y)


@register
class Sub(BinaryOp):
    name = "sub"

    @classmethod
    def compute(cls, x, y):
        return np.subtract(x, y)


@register
class Mul(BinaryOp):
    name = "mul"

    @classmethod
    def compute(cls, x, y):
        return np.multiply(x, y)


@register
class Div(BinaryOp):
    name = "div"

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        require_dtype(inputs[0], FLOAT_DTYPES)
        return super().infer(inputs, attrs, n_outputs)

    @classmethod
    def compute(cls, x, y):
        return np.divide(x, y)


@register
class Less(BinaryOp):
    name = "less"

    @classmethod
    def result_dtype(cls, dtype: str) -> str:
        return "bool"

    @classmethod
    def compute(cls, x, y):
        return np.less(x, y)


@register
class Clip(Op):
    """y = min(max(x, low), high) element-wise, as numpy.clip; NaN in x stays NaN."""

    name = "clip"
    arity = 3

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, low, high = inputs
        if not x.dtype == low.dtype == high.dtype:
            fail("clip operands have different dtypes ({}, {}, {})".format(x.dtype, low.dtype, high.dtype))
        shape = broadcast_shapes([x.shape, low.shape, high.shape])
        if shape != x.shape:
            fail("clip bounds of shape {} and {} would change the shape {} of x".format(low.shape, high.shape, x.shape))
        return [x]

    @classmethod
    def compute(cls, x, low, high):
        return np.minimum(np.maximum(x, low), high)


@register
class Neg(UnaryFloatOp):
    name = "neg"

    @classmethod
    def compute(cls, x):
        return np.negative(x)


@register
class Exp(UnaryFloatOp):
    name = "exp"

    @classmethod
    def compute(cls, x):
        return np.exp(x)


@register
class Log(UnaryFloatOp):
    name = "log"

    @classmethod
    def compute(cls, x):
        return np.log(x)


@register
class RoundHalfEven(UnaryFloatOp):
    """Round to the nearest integer, ties to even (TF's `tf.round`): 0.5 -> 0, 1.5 -> 2."""

    name = "round_half_even"

    @classmethod
    def compute(cls, x):
        return np.round(x)


@register
class Tanh(UnaryFloatOp):
    name = "tanh"

    @classmethod
    def compute(cls, x):
        return np.tanh(x)


@register
class Sigmoid(UnaryFloatOp):
    """1 / (1 + exp(-x)); for float32 exactly 0 below -18 and 1 above 18, as TF 1.15's float32 kernel."""

    name = "sigmoid"

    @classmethod
    def compute(cls, x):
        one = x.dtype.type(1)
        y = one / (one + np.exp(-x))
        if x.dtype == np.float32:
            y = np.where(x < -18, x.dtype.type(0), np.where(x > 18, one, y))
        return y


@register
class Relu(UnaryFloatOp):
    name = "relu"

    @classmethod
    def compute(cls, x):
        return np.maximum(x, x.dtype.type(0))  # NaN stays NaN, as TF's max(x, 0)


@register
class Relu6(UnaryFloatOp):
    name = "relu6"

    @classmethod
    def compute(cls, x):
        return np.minimum(np.maximum(x, x.dtype.type(0)), x.dtype.type(6))  # NaN stays NaN, as in TF


@register
class Elu(UnaryFloatOp):
    name = "elu"

    @classmethod
    def compute(cls, x):
        return np.where(x < 0, np.exp(x) - x.dtype.type(1), x)  # TF computes exp(x) - 1, not expm1


@register
class Selu(UnaryFloatOp):
    name = "selu"
    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946
    SCALE_ALPHA = 1.7580993408473768599402175208123  # TF's constant for SCALE * ALPHA

    @classmethod
    def compute(cls, x):
        scale_alpha, scale = x.dtype.type(cls.SCALE_ALPHA), x.dtype.type(cls.SCALE)
        return np.where(x < 0, scale_alpha * (np.exp(x) - x.dtype.type(1)), scale * x)


@register
class Softplus(UnaryFloatOp):
    """log(1 + exp(x)), with TF's thresholds: x itself above -t, exp(x) below t, t = log(eps) + 2.

    TF 1.15 evaluates the middle branch literally as log(exp(x) + 1) (no log1p), and so do we."""

    name = "softplus"

    @classmethod
    def compute(cls, x):
        threshold = np.log(np.finfo(x.dtype).eps) + x.dtype.type(2)
        exp_x = np.exp(x)
        return np.where(x > -threshold, x, np.where(x < threshold, exp_x, np.log(exp_x + x.dtype.type(1))))


@register
class Softsign(UnaryFloatOp):
    name = "softsign"

    @classmethod
    def compute(cls, x):
        return x / (x.dtype.type(1) + np.abs(x))


@register
class Swish(UnaryFloatOp):
    """x * sigmoid(x), as `tf.nn.swish` in TF 1.15."""

    name = "swish"

    @classmethod
    def compute(cls, x):
        return x * Sigmoid.compute(x)


@register
class LeakyRelu(UnaryFloatOp):
    name = "leaky_relu"
    attributes = {"alpha": ((float, int), REQUIRED)}

    @classmethod
    def compute(cls, x, alpha):
        return np.where(x > 0, x, x * x.dtype.type(alpha))
