"""Element-wise ops: arithmetic with broadcasting, comparisons, and the activations SB2 users pass as `act_fun`.

Every float op computes in the dtype of its input (float32 for SB2 policies); constants are cast to that dtype
first, as TensorFlow does.
"""
from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from .base import FLOAT_DTYPES, REQUIRED, ExactOutputs, Op, ValueSpec, broadcast_shapes, fail, register, require_dtype
from .rounding import CONFIDENCE, carried, lipschitz_scale, magnitude, monotone_scale, own_scale, quadrature


# -- the activations' exact functions in float64, for their error scales -------------------------------------------
def _sigmoid64(x):
    return 1.0 / (1.0 + np.exp(-x))


def _relu64(x):
    return np.maximum(x, 0.0)


def _relu6_64(x):
    return np.clip(x, 0.0, 6.0)


def _elu64(x):
    return np.where(x < 0, np.expm1(x), x)


def _softplus64(x):
    return np.logaddexp(0.0, x)


def _softsign64(x):
    return x / (1.0 + np.abs(x))


#: math.erf (the C library's double-precision erf) element by element: NumPy has no erf
_erf64 = np.vectorize(math.erf, otypes=[np.float64])


class UnaryFloatOp(Op):
    """y = f(x), same dtype and shape, for float inputs.

    `exact` is f in float64 (increasing, for the ops that use the default `error_scale`), and `accuracy` how close to
    it a correct implementation's result must be: (ULP of the result, absolute). Those figures are SPEC section
    6's table: a library function accurate to a few ULP, and TF 1.15's own approximations (sigmoid's packet path
    is only absolutely accurate, spec/ops.md)."""

    exact: ClassVar[Optional[Callable[[np.ndarray], np.ndarray]]] = None
    accuracy: ClassVar[Tuple[float, float]] = (0.5, 0.0)

    @classmethod
    def infer(cls, inputs: List[ValueSpec], attrs: Dict[str, Any], n_outputs: int) -> List[ValueSpec]:
        require_dtype(inputs[0], FLOAT_DTYPES)
        return [inputs[0]]

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        ulps, absolute = cls.accuracy
        return [monotone_scale(cls.exact, inputs[0], scales[0], outputs[0].dtype, ulps, absolute)]


class NumpyFunctionOp(UnaryFloatOp):
    """y = f(x) where NumPy's f, applied in x's own dtype, is the reference computation, and the same f in float64
    is the exact function: `exact` states f once for both."""

    @classmethod
    def compute(cls, x):
        return cls.exact(x)


class BinaryOp(Op):
    """z = f(x, y) with NumPy broadcasting; both operands must have the same dtype."""

    arity = 2
    #: Arithmetic is not defined on bool (TF 1.15 has no bool kernel for Add, Sub or Mul); comparisons are.
    takes_bool = False

    @classmethod
    def infer(cls, inputs: List[ValueSpec], attrs: Dict[str, Any], n_outputs: int) -> List[ValueSpec]:
        x, y = inputs
        if x.dtype != y.dtype:
            fail("operands have different dtypes ({} and {})".format(x.dtype, y.dtype))
        if x.dtype == "bool" and not cls.takes_bool:
            fail("{} of bool operands is not defined".format(cls.name))
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

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        return [_sum_scale(inputs, scales, outputs[0])]


def _sum_scale(inputs, scales, output):
    (x, y), (sx, sy) = inputs, scales
    return quadrature(sx, sy, own_scale(output.dtype, magnitude(x, sx) + magnitude(y, sy)))


@register
class Sub(BinaryOp):
    name = "sub"

    @classmethod
    def compute(cls, x, y):
        return np.subtract(x, y)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        return [_sum_scale(inputs, scales, outputs[0])]


@register
class Mul(BinaryOp):
    name = "mul"

    @classmethod
    def compute(cls, x, y):
        return np.multiply(x, y)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        """x'y' - x̂ŷ = δx·ŷ + x̂·δy + δx·δy, plus the product's rounding."""
        (x, y), (sx, sy) = inputs, scales
        x_size, y_size = magnitude(x, sx), magnitude(y, sy)
        return [quadrature(sx * magnitude(y), magnitude(x) * sy, sx * sy,
                           own_scale(outputs[0].dtype, x_size * y_size))]


@register
class Div(BinaryOp):
    name = "div"
    undetermined_reason = "the divisor's interval reaches 0, so the quotient may be anything"

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        require_dtype(inputs[0], FLOAT_DTYPES)
        return super().infer(inputs, attrs, n_outputs)

    @classmethod
    def compute(cls, x, y):
        return np.divide(x, y)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        """x'/y' - x̂/ŷ is about δx/y - x̂·δy/y², bounded with d = |ŷ| - λσ_y, the least |y'|; not determined when
        d <= 0 (the divisor may be 0 or change sign)."""
        (x, y), (sx, sy) = inputs, scales
        y_abs = np.abs(np.asarray(y, np.float64))
        with np.errstate(all="ignore"):
            least = y_abs - CONFIDENCE * sy
            scale = quadrature(np.where(sx != 0, sx / least, 0.0),
                               np.where(sy != 0, magnitude(x) * sy / (least * y_abs), 0.0),
                               own_scale(outputs[0].dtype, np.where(least > 0, magnitude(x, sx) / least, 0.0)))
        return [np.where((least > 0) | (sy == 0), scale, np.nan)]


@register
class Less(BinaryOp, ExactOutputs):
    name = "less"
    takes_bool = True

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
        if x.dtype == "bool":
            fail("clip of bool values is not defined")
        shape = broadcast_shapes([x.shape, low.shape, high.shape])
        if shape != x.shape:
            fail("clip bounds of shape {} and {} would change the shape {} of x".format(low.shape, high.shape, x.shape))
        return [x]

    @classmethod
    def compute(cls, x, low, high):
        return np.minimum(np.maximum(x, low), high)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        """Clipping is exact and increasing in x: x's scale, as far as the clipped interval x̂ ± λσ reaches (a
        bound computed by the graph adds its own scale)."""
        (x, low, high), (sx, s_low, s_high) = inputs, scales
        x = np.asarray(x, np.float64)
        centre = np.clip(x, low, high)

        def spread(width):
            return np.maximum(np.clip(x + width, low, high) - centre, centre - np.clip(x - width, low, high))

        return [quadrature(carried(spread, sx), np.maximum(s_low, s_high))]


@register
class Where(Op):
    """z = condition ? x : y element-wise, with NumPy broadcasting of all three: torch's `torch.where`, with which
    MaskablePPO puts -1e8 in place of the masked logits. A product-and-sum mask cannot express it exactly (a NaN
    logit times 0 stays NaN); a select copies the chosen element bit for bit, whatever the other one holds."""

    name = "where"
    arity = 3

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        condition, x, y = inputs
        if condition.dtype != "bool":
            fail("where's condition is {}, not bool".format(condition.dtype))
        if x.dtype != y.dtype:
            fail("where's operands have different dtypes ({} and {})".format(x.dtype, y.dtype))
        return [ValueSpec(x.dtype, broadcast_shapes([condition.shape, x.shape, y.shape]))]

    @classmethod
    def compute(cls, condition, x, y):
        return np.asarray(np.where(condition, x, y), dtype=x.dtype)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        """A select moves data: the selected element's scale; not determined (NaN) where the condition is, since
        either operand may then be the answer (a bool is computed exactly or not determined)."""
        (condition, x, y), (s_condition, sx, sy) = inputs, scales
        shape = np.shape(outputs[0])
        selected = np.broadcast_to(np.where(condition, sx, sy), shape)
        return [np.where(np.broadcast_to(np.isnan(s_condition), shape), np.nan, selected)]


@register
class Neg(UnaryFloatOp):
    name = "neg"

    @classmethod
    def compute(cls, x):
        return np.negative(x)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        return [scales[0]]


@register
class Exp(NumpyFunctionOp):
    name = "exp"
    exact = staticmethod(np.exp)
    accuracy = (4.0, 0.0)  # TF within 1 ULP, a conforming library within 3


@register
class Log(NumpyFunctionOp):
    name = "log"
    undetermined_reason = "the argument's interval reaches 0, so the log may be finite, -inf or NaN"
    exact = staticmethod(np.log)
    accuracy = (5.0, 0.0)  # TF within 1 ULP, a conforming library within 4


@register
class RoundHalfEven(NumpyFunctionOp):
    """Round to the nearest integer, ties to even (TF's `tf.round`): 0.5 -> 0, 1.5 -> 2."""

    name = "round_half_even"
    exact = staticmethod(np.round)
    accuracy = (0.0, 0.0)


@register
class Tanh(NumpyFunctionOp):
    name = "tanh"
    exact = staticmethod(np.tanh)
    accuracy = (8.0, 2.0 ** -118)  # TF's rational approximation: 7 ULP; ±0 below 2.4e-36


@register
class Erf(UnaryFloatOp):
    """The error function, 2/sqrt(pi) times the integral of exp(-t^2) from 0 to x: torch's `torch.erf`, which
    SB3's exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))), is composed with.

    NumPy has no erf, so the reference evaluates the C library's double-precision erf (`math.erf`, within 1 ULP
    of float64) and rounds once to the input's dtype: for float32 that is the correctly rounded result except
    where the exact value lies within 2^-29 relative of a float32 rounding boundary, half a float32 ULP at most."""

    name = "erf"
    exact = staticmethod(_erf64)
    accuracy = (4.0, 0.0)  # torch's float32 erf within 1 ULP, a conforming library erff within 3

    @classmethod
    def compute(cls, x):
        return cls.exact(np.asarray(x, np.float64)).astype(x.dtype)


@register
class Sigmoid(UnaryFloatOp):
    """1 / (1 + exp(-x)); for float32 exactly 0 below -FLOAT32_CUTOFF and 1 above it, as TF 1.15's float32
    kernel."""

    name = "sigmoid"
    exact = staticmethod(_sigmoid64)
    accuracy = (4.0, 2.0 ** -21)  # TF's packet path: 2.05e-7 absolute
    FLOAT32_CUTOFF = 18.0

    @classmethod
    def compute(cls, x):
        one = x.dtype.type(1)
        y = one / (one + np.exp(-x))
        if x.dtype == np.float32:
            cutoff = cls.FLOAT32_CUTOFF
            y = np.where(x < -cutoff, x.dtype.type(0), np.where(x > cutoff, one, y))
        return y


@register
class Relu(UnaryFloatOp):
    name = "relu"
    exact = staticmethod(_relu64)
    accuracy = (0.0, 0.0)

    @classmethod
    def compute(cls, x):
        return np.maximum(x, x.dtype.type(0))  # NaN stays NaN, as TF's max(x, 0)


@register
class Relu6(UnaryFloatOp):
    name = "relu6"
    exact = staticmethod(_relu6_64)
    accuracy = (0.0, 0.0)

    @classmethod
    def compute(cls, x):
        return np.minimum(np.maximum(x, x.dtype.type(0)), x.dtype.type(6))  # NaN stays NaN, as in TF


@register
class Elu(UnaryFloatOp):
    name = "elu"
    exact = staticmethod(_elu64)
    accuracy = (4.0, 2.0 ** -21)  # exp(x) - 1 evaluated literally

    @classmethod
    def compute(cls, x):
        return np.where(x < 0, np.exp(x) - x.dtype.type(1), x)  # TF computes exp(x) - 1, not expm1


@register
class Selu(UnaryFloatOp):
    name = "selu"
    accuracy = (4.0, 2.0 ** -20)  # SCALE_ALPHA · (exp(x) - 1) evaluated literally
    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946
    SCALE_ALPHA = 1.7580993408473768599402175208123  # TF's constant for SCALE * ALPHA

    @classmethod
    def compute(cls, x):
        scale_alpha, scale = x.dtype.type(cls.SCALE_ALPHA), x.dtype.type(cls.SCALE)
        return np.where(x < 0, scale_alpha * (np.exp(x) - x.dtype.type(1)), scale * x)

    @staticmethod
    def exact(x):
        return np.where(x < 0, Selu.SCALE_ALPHA * np.expm1(x), Selu.SCALE * x)


@register
class Softplus(UnaryFloatOp):
    """log(1 + exp(x)), with TF's thresholds: x itself above -t, exp(x) below t, t = log(eps) + 2.

    TF 1.15 evaluates the middle branch literally as log(exp(x) + 1) (no log1p), and so do we."""

    name = "softplus"
    exact = staticmethod(_softplus64)
    accuracy = (4.0, 2.0 ** -21)  # log(exp(x) + 1) evaluated literally

    @staticmethod
    def threshold(dtype: Any) -> np.floating:
        """t = log(machine epsilon) + 2, each step rounded to `dtype` (TF 1.15's kernel; float32:
        -13.942385, 0xc15f1402): softplus is exp(x) below t and x above -t."""
        dtype = np.dtype(dtype)
        return np.log(np.finfo(dtype).eps) + dtype.type(2)

    @classmethod
    def compute(cls, x):
        threshold = cls.threshold(x.dtype)
        exp_x = np.exp(x)
        return np.where(x > -threshold, x, np.where(x < threshold, exp_x, np.log(exp_x + x.dtype.type(1))))


@register
class Softsign(UnaryFloatOp):
    name = "softsign"
    exact = staticmethod(_softsign64)
    accuracy = (4.0, 0.0)

    @classmethod
    def compute(cls, x):
        return x / (x.dtype.type(1) + np.abs(x))


@register
class Swish(UnaryFloatOp):
    """x * sigmoid(x), as `tf.nn.swish` in TF 1.15."""

    name = "swish"

    #: max |d/dx x·sigmoid(x)| (at x ≈ ±2.4)
    LIPSCHITZ = 1.0998
    accuracy = (4.0, 2.0 ** -21)  # sigmoid's absolute error, times |x|

    @classmethod
    def compute(cls, x):
        return x * Sigmoid.compute(x)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        ulps, absolute = cls.accuracy
        return [lipschitz_scale(cls.LIPSCHITZ, inputs[0], scales[0], outputs[0], outputs[0].dtype, ulps,
                                absolute * magnitude(inputs[0], scales[0]))]


@register
class LeakyRelu(UnaryFloatOp):
    name = "leaky_relu"
    attributes = {"alpha": ((float, int), REQUIRED)}

    @classmethod
    def compute(cls, x, alpha):
        return np.where(x > 0, x, x * x.dtype.type(alpha))

    @classmethod
    def error_scale(cls, inputs, scales, outputs, alpha):
        return [lipschitz_scale(max(1.0, abs(alpha)), inputs[0], scales[0], outputs[0], outputs[0].dtype, 0.5)]

