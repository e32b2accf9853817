"""Ops for convolutional, normalised and recurrent layers: conv2d (with `conv_axis`, the one statement of TF's
VALID and SAME geometry), layer_norm, matmul, reduce_mean."""
from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from ..errors import preview
from .base import FLOAT_DTYPES, REQUIRED, Op, ValueSpec, fail, register, require_dtype
from .nn import MAX_DIM, is_dimension, require_rows
from .rounding import CONFIDENCE, TWO_PROGRAMS, magnitude, own_scale, product_scale, quadrature, u


@register
class MatMul(Op):
    """y = x @ w for x [B, K] and w [K, N] (no bias; the LSTM adds its two products, then the bias)."""

    name = "matmul"
    arity = 2

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, w = inputs
        require_dtype(x, FLOAT_DTYPES, "x")
        if x.dtype != w.dtype or len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[0]:
            fail("matmul needs x [B, K] and w [K, N] of one dtype, got {} and {}".format(x, w))
        return [ValueSpec(x.dtype, (x.shape[0], w.shape[1]))]

    @classmethod
    def compute(cls, x, w):
        return np.matmul(x, w)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        (x, w), (sx, sw) = inputs, scales
        return [product_scale(np.matmul, x, sx, w, sw, w.shape[0], outputs[0].dtype)]


@register
class Conv2d(Op):
    """NHWC convolution with HWIO kernels plus a per-channel bias, as `tf.nn.conv2d(...) + b`.

    `padding` is 'VALID' (out = floor((in - k) / s) + 1) or 'SAME' (out = ceil(in / s), zero padding with
    pad_before = floor(pad_total / 2)).
    """

    name = "conv2d"
    arity = 3
    attributes = {"strides": (list, REQUIRED), "padding": (str, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, w, b = inputs
        require_dtype(x, FLOAT_DTYPES, "x")
        if not x.dtype == w.dtype == b.dtype:
            fail("conv2d operands have different dtypes")
        if len(x.shape) != 4 or len(w.shape) != 4 or b.shape != (w.shape[3],) or x.shape[3] != w.shape[2]:
            fail("conv2d needs x [B,H,W,C], w [kh,kw,C,O], b [O]; got {}, {}, {}".format(x, w, b))
        if w.shape[0] is None:
            fail("conv2d's kernel is one for the whole batch: w {} has a batch dimension".format(w))
        strides, padding = attrs["strides"], attrs["padding"]
        if len(strides) != 2 or not all(is_dimension(s, least=1) for s in strides):
            fail("conv2d strides must be two integers from 1 to {}, got {}".format(MAX_DIM, strides))
        if padding not in ("VALID", "SAME"):
            fail("conv2d padding must be VALID or SAME, got {}".format(preview(padding)))
        out = [_output_size(size, kernel, stride, padding)
               for size, kernel, stride in zip(x.shape[1:3], w.shape[:2], strides)]
        if min(out) < 1:
            fail("conv2d input {} is smaller than the kernel {}".format(x, w))
        return [ValueSpec(x.dtype, (x.shape[0], out[0], out[1], w.shape[3]))]

    @classmethod
    def compute(cls, x, w, b, strides, padding):
        kh, kw, channels, filters = w.shape
        rows, columns = (conv_axis(size, kernel, stride, padding)
                         for size, kernel, stride in zip(x.shape[1:3], (kh, kw), strides))
        if padding == "SAME":
            x = np.pad(x, [(0, 0), rows.padding, columns.padding, (0, 0)])
        x = np.ascontiguousarray(x)
        s = x.strides
        patches = np.lib.stride_tricks.as_strided(
            x, (x.shape[0], rows.size, columns.size, kh, kw, channels),
            (s[0], s[1] * rows.step, s[2] * columns.step, s[1], s[2], s[3]), writeable=False)
        depth = kh * kw * channels
        y = np.matmul(patches.reshape(x.shape[0] * rows.size * columns.size, depth), w.reshape(depth, filters))
        return y.reshape(x.shape[0], rows.size, columns.size, filters) + b

    @classmethod
    def error_scale(cls, inputs, scales, outputs, strides, padding):
        (x, w, b), (sx, sw, sb) = inputs, scales
        no_bias = np.zeros(w.shape[3])

        def product(images, kernels):
            return cls.compute(images, kernels, no_bias, strides, padding)

        terms = w.shape[0] * w.shape[1] * w.shape[2] + 1
        return [product_scale(product, x, sx, w, sw, terms, outputs[0].dtype, b, sb)]


class ConvAxis(NamedTuple):
    """One spatial axis of a convolution: the output `size`, the zero `padding` (before, after) and the `step`
    between windows in input rows (the stride, or 1 when there is one window: where it starts is all that counts)."""

    size: int
    padding: Tuple[int, int]
    step: int


def conv_axis(size: int, kernel: int, stride: int, padding: str) -> ConvAxis:
    """An axis of input `size` convolved with `kernel` (spec/ops.md conv2d), in Python integers: a stride may be
    2^63 - 1, and a runtime that multiplies it in int64 (NumPy's strides, a kernel's window offsets) would
    overflow. With more than one window, (out - 1)·stride < size, so the step is then bounded by the
    value's own size (SPEC section 3.5)."""
    out = _output_size(size, kernel, stride, padding)
    total = max((out - 1) * stride + kernel - size, 0) if padding == "SAME" else 0
    return ConvAxis(out, (total // 2, total - total // 2), stride if out > 1 else 1)


def _output_size(size, kernel, stride, padding):
    if size is None:
        return None
    return -(-size // stride) if padding == "SAME" else (size - kernel) // stride + 1


@register
class LayerNorm(Op):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta, moments (population variance) over the last axis."""

    name = "layer_norm"
    undetermined_reason = ("the row's variance overflows float32, where SB2 itself answers NaN or beta by the row's "
                           "position in the batch, or is 0 within its rounding")
    arity = 3
    attributes = {"epsilon": (float, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, gamma, beta = inputs
        require_dtype(x, FLOAT_DTYPES, "x")
        require_rows(x, cls.name)
        if not x.dtype == gamma.dtype == beta.dtype or gamma.shape != x.shape[-1:] or beta.shape != x.shape[-1:]:
            fail("layer_norm needs gamma and beta of shape [{}] and x's dtype".format(x.shape[-1]))
        return [x]

    @classmethod
    def compute(cls, x, gamma, beta, epsilon):
        mean = np.mean(x, axis=-1, keepdims=True)
        variance = np.mean(np.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(variance + x.dtype.type(epsilon)) * gamma + beta

    #: how many roundings TF's two formulas take between the normalised value and y: SB2's `_ln` divides by
    #: sqrt (3 with the product and sum), contrib's layer_norm computes x·inv + (beta - mean·inv) with
    #: inv = gamma·rsqrt(v + eps), whose terms are as large as |x|·inv and |mean|·inv
    FINAL_ROUNDINGS = 4

    @classmethod
    def error_scale(cls, inputs, scales, outputs, epsilon):
        """To first order, z = (x - m)/s with s = sqrt(v + epsilon) moves by
        δz_j = (δx_j - mean(δx))/s - z_j·mean(z·δx)/s, then y = z·gamma + beta. Each program's own errors: the
        mean (N + 1 roundings of mean|x|), the deviations d = x - m, the variance (N + 2 roundings of mean(d²)),
        and the final steps, whose terms (in contrib's x·inv + (beta - m·inv)) are as large as
        (|x| + |m|)/s·|gamma|. Not determined where v + epsilon may reach 0 within λ scales (a row constant up to
        its rounding error, with a tiny epsilon) and where the variance overflows float32: there SB2 itself is
        not a function of the row (TF 1.15's packet rsqrt gives NaN for an infinite variance, its scalar path
        beta, depending on the row's position in the batch; SPEC section 6)."""
        (x, g, beta), (sx, sg, sb) = inputs, scales
        dtype = outputs[0].dtype
        unit, count = u(dtype), x.shape[-1]
        x = np.asarray(x, np.float64)
        with np.errstate(all="ignore"):
            finite_row = np.all(np.isfinite(x), axis=-1, keepdims=True)
            mean = np.mean(x, axis=-1, keepdims=True)
            deviation = x - mean
            variance = np.mean(np.square(deviation), axis=-1, keepdims=True)
            own_mean = np.sqrt(count + 1.0) * unit * np.mean(magnitude(x), axis=-1, keepdims=True)
            own_variance = np.sqrt(count + 2.0) * unit * variance
            variance_scale = quadrature(2.0 / count * np.sqrt(np.sum(np.square(deviation * sx), axis=-1,
                                                                     keepdims=True)), TWO_PROGRAMS * own_variance)
            least = variance + epsilon - CONFIDENCE * variance_scale
            root = np.sqrt(least)
            normalised = deviation / np.sqrt(variance + epsilon)
            carried_z = quadrature(sx, np.sqrt(np.sum(np.square(sx), axis=-1, keepdims=True)) / count,
                                   np.abs(normalised) * np.sqrt(np.sum(np.square(normalised * sx), axis=-1,
                                                                       keepdims=True)) / count) / root
            own_z = quadrature(own_mean, unit * np.abs(deviation),
                               np.abs(deviation) * own_variance / (2.0 * least)) / root
            g64 = np.asarray(g, np.float64)
            final = own_scale(dtype, (magnitude(x) + np.abs(mean)) / root * magnitude(g, sg) + magnitude(beta, sb),
                              roundings=cls.FINAL_ROUNDINGS)
            scale = quadrature(np.abs(g64) * quadrature(carried_z, TWO_PROGRAMS * own_z), np.abs(normalised) * sg,
                               sb, final)
            # the sum of squares overflows in some summation order (Σ d² within rounding of the largest float)
            overflow = ~(variance * count <= 0.999 * float(np.finfo(dtype).max)) & finite_row
            undetermined = (least <= 0) & finite_row | overflow | np.any(np.isnan(sx), axis=-1, keepdims=True)
            scale = np.where(finite_row, scale, 0.0)  # a row with inf or NaN is NaN in every program
        return [np.where(undetermined, np.nan, scale)]


@register
class ReduceMean(Op):
    """Mean over the last axis, keeping it with size 1 (the dueling head's advantage mean)."""

    name = "reduce_mean"

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        require_dtype(inputs[0], FLOAT_DTYPES)
        require_rows(inputs[0], cls.name)
        return [ValueSpec(inputs[0].dtype, inputs[0].shape[:-1] + (1,))]

    @classmethod
    def compute(cls, x):
        return np.mean(x, axis=-1, keepdims=True)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, **attrs):
        (x,), (scale,) = inputs, scales
        count, dtype = x.shape[-1], outputs[0].dtype
        return [quadrature(np.sqrt(np.sum(np.square(scale), axis=-1, keepdims=True)) / count,
                           own_scale(dtype, np.mean(magnitude(x, scale), axis=-1, keepdims=True),
                                     roundings=count + 1))]
