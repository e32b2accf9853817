"""Ops that move, join or convert data without arithmetic: cast, flatten, reshape, transpose, concat, split, stack,
squeeze, expand_dims, constant."""
from __future__ import annotations

import math
import sys
from typing import Union

import numpy as np

from ..errors import preview
from .base import (INT_DTYPES, REQUIRED, ExactOutputs, MovesData, Op, ValueSpec, fail, normalize_axis, register,
                   undetermined_where)
from .nn import exact_count, is_dimension
from .rounding import magnitude, own_scale, quadrature

DTYPES = ("float32", "float64", "int32", "int64", "uint8", "int8", "int16", "uint16", "bool")


@register
class Cast(Op):
    """Convert to `to`: float to int truncates toward zero; bool becomes 0/1; float64 to float32 rounds to nearest."""

    name = "cast"
    attributes = {"to": (str, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        if attrs["to"] not in DTYPES:
            fail("cast to unknown dtype {}".format(preview(attrs["to"])))
        return [ValueSpec(attrs["to"], inputs[0].shape)]

    @classmethod
    def compute(cls, x, to):
        x = np.asarray(x)
        if x.dtype.kind == "f" and np.dtype(to).kind in "iu":
            return _truncated(x, to).astype(to)  # then an int -> int cast: wraps modulo 2^n
        return x.astype(to)

    @classmethod
    def error_scale(cls, inputs, scales, outputs, to):
        """A conversion to a float dtype that cannot hold every value of the source rounds once; one to an
        integer dtype is a discrete decision (exact, or not determined where its input is not)."""
        (x,), (scale,) = inputs, scales
        if np.dtype(to).kind != "f":
            return [undetermined_where(scales, np.shape(outputs[0]))]
        if np.can_cast(np.asarray(x).dtype, to, casting="safe"):
            return [scale]
        return [quadrature(scale, own_scale(np.dtype(to), magnitude(x, scale)))]


def _truncated(x: np.ndarray, to: str) -> np.ndarray:
    """Float values truncated toward zero as int64 for an int64 target and as int32 for every other integer one
    (spec/ops.md cast, as TF's x86 kernels convert), NaN, ±inf and values outside that type's range becoming its
    lowest value. Explicit, since NumPy's own conversion of those is the platform's (x86 gives this; other CPUs
    saturate or give 0)."""
    wide = np.int64 if to == "int64" else np.int32
    lowest = float(np.iinfo(wide).min)  # -2^63 or -2^31, exact as doubles
    truncated = np.trunc(x.astype(np.float64))
    with np.errstate(invalid="ignore"):  # NumPy 1.x warns when it compares NaN
        inside = (truncated >= lowest) & (truncated < -lowest)  # false for NaN
    return np.where(inside, truncated, lowest).astype(wide)


@register
class Flatten(MovesData):
    """[B, d1, ..., dk] -> [B, d1*...*dk] in row-major (C) order; a rank-1 input becomes [B, 1]."""

    name = "flatten"

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x = inputs[0]
        if len(x.shape) < 1:
            fail("flatten needs a batch dimension")
        return [ValueSpec(x.dtype, (x.shape[0], exact_count(x.shape[1:])))]

    @classmethod
    def compute(cls, x):
        return x.reshape(x.shape[0], exact_count(x.shape[1:]))  # not -1: NumPy cannot infer it for an empty batch


@register
class Reshape(MovesData):
    """Reshape a fixed-shape tensor (no batch dimension) to `shape`, in row-major order."""

    name = "reshape"
    attributes = {"shape": (list, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, shape = inputs[0], attrs["shape"]
        if any(d is None for d in x.shape):
            fail("reshape applies to tensors without a batch dimension (use flatten for batches)")
        if not all(is_dimension(d) for d in shape) or exact_count(shape) != exact_count(x.shape):
            fail("cannot reshape {} to {}".format(x, shape))
        return [ValueSpec(x.dtype, shape)]

    @classmethod
    def compute(cls, x, shape):
        return np.reshape(x, shape)


@register
class Transpose(MovesData):
    """Permute the axes of x: y.shape[i] = x.shape[perm[i]] (np.transpose, torch's permute). How a file re-lays a
    framework's tensors (torch's [out, in] Linear weights, OIHW kernels, NCHW images) without altering them: the
    tensors stay bit for bit what the framework saved, the layout change is a node."""

    name = "transpose"
    attributes = {"perm": (list, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, perm = inputs[0], attrs["perm"]
        rank = len(x.shape)
        if not all(isinstance(axis, int) and not isinstance(axis, bool) for axis in perm):
            fail("transpose perm {} must hold axis indices (integers)".format(preview(perm)))
        if any(axis < 0 for axis in perm):
            fail("transpose perm {} has a negative axis: perm counts axes from 0, never from the end".format(
                preview(perm)))
        if len(perm) != rank or sorted(perm) != list(range(rank)):
            fail("transpose perm {} is not a permutation of the {} axes of {} (each of 0..{} once)".format(
                preview(perm), rank, x, rank - 1))
        if rank and x.shape[0] is None and perm[0] != 0:
            fail("transpose cannot move the batch dimension: perm {} of {} must start with 0".format(
                preview(perm), x))
        return [ValueSpec(x.dtype, tuple(x.shape[axis] for axis in perm))]

    @classmethod
    def compute(cls, x, perm):
        return np.transpose(x, perm).copy(order="C")  # row-major, as every value is (spec/ops.md)


@register
class Concat(MovesData):
    """Join inputs of one dtype along `axis`; all other dimensions must agree."""

    name = "concat"
    arity = None
    attributes = {"axis": (int, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        first = inputs[0]
        axis = normalize_axis(attrs["axis"], len(first.shape))
        total = 0
        for spec in inputs:
            if spec.dtype != first.dtype or len(spec.shape) != len(first.shape):
                fail("concat inputs differ in dtype or rank: {} and {}".format(first, spec))
            if spec.shape[:axis] + spec.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
                fail("concat inputs differ outside axis {}: {} and {}".format(axis, first, spec))
            if spec.shape[axis] is None:
                fail("concat cannot join along the batch dimension")
            total += spec.shape[axis]
        return [ValueSpec(first.dtype, first.shape[:axis] + (total,) + first.shape[axis + 1:])]

    @classmethod
    def compute(cls, *xs, axis):
        return np.concatenate(xs, axis=axis)


@register
class Split(MovesData):
    """Cut x along `axis` into consecutive pieces of the given `sizes` (one output per piece)."""

    name = "split"
    attributes = {"sizes": (list, REQUIRED), "axis": (int, REQUIRED)}
    n_outputs = None

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x, sizes = inputs[0], attrs["sizes"]
        axis = normalize_axis(attrs["axis"], len(x.shape))
        if len(sizes) != n_outputs or not all(is_dimension(s, least=1) for s in sizes):
            fail("split sizes {} must be positive and one per output ({})".format(sizes, n_outputs))
        if x.shape[axis] is None:
            fail("split cannot cut along the batch dimension")
        if x.shape[axis] != sum(sizes):
            fail("split sizes {} do not add up to dimension {} of {}".format(sizes, axis, x))
        return [ValueSpec(x.dtype, x.shape[:axis] + (size,) + x.shape[axis + 1:]) for size in sizes]

    @classmethod
    def compute(cls, x, sizes, axis):
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@register
class Stack(MovesData):
    """Stack inputs of identical dtype and shape along a new `axis`."""

    name = "stack"
    arity = None
    attributes = {"axis": (int, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        first = inputs[0]
        if any(spec != first for spec in inputs):
            fail("stack inputs must share dtype and shape: {}".format(", ".join(map(repr, inputs))))
        axis = normalize_axis(attrs["axis"], len(first.shape) + 1)
        return [ValueSpec(first.dtype, first.shape[:axis] + (len(inputs),) + first.shape[axis:])]

    @classmethod
    def compute(cls, *xs, axis):
        return np.stack(xs, axis=axis)


@register
class Squeeze(MovesData):
    """Remove dimension `axis`, which must have size 1."""

    name = "squeeze"
    attributes = {"axis": (int, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x = inputs[0]
        axis = normalize_axis(attrs["axis"], len(x.shape))
        if x.shape[axis] is None:
            fail("squeeze cannot remove the batch dimension")
        if x.shape[axis] != 1:
            fail("squeeze axis {} of {} does not have size 1".format(axis, x))
        return [ValueSpec(x.dtype, x.shape[:axis] + x.shape[axis + 1:])]

    @classmethod
    def compute(cls, x, axis):
        return np.squeeze(x, axis=axis)


@register
class ExpandDims(MovesData):
    """Insert a dimension of size 1 at `axis` (counted in the output's rank)."""

    name = "expand_dims"
    attributes = {"axis": (int, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        x = inputs[0]
        axis = normalize_axis(attrs["axis"], len(x.shape) + 1)
        return [ValueSpec(x.dtype, x.shape[:axis] + (1,) + x.shape[axis:])]

    @classmethod
    def compute(cls, x, axis):
        return np.expand_dims(x, axis)


@register
class Constant(ExactOutputs):
    """A scalar of the given dtype (no inputs)."""

    name = "constant"
    arity = 0
    attributes = {"value": ((float, int, bool), REQUIRED), "dtype": (str, REQUIRED)}

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        value, dtype = attrs["value"], attrs["dtype"]
        if dtype not in DTYPES:
            fail("constant of unknown dtype {}".format(preview(dtype)))
        if not isinstance(value, bool):
            _check_constant_number(value, dtype)
        return [ValueSpec(dtype, ())]

    @classmethod
    def compute(cls, value, dtype):
        return np.asarray(value, dtype=dtype)


def _check_constant_number(value: Union[int, float], dtype: str) -> None:
    """The number/dtype pairs that `constant` allows (spec/ops.md): a number finite as a double, never for bool,
    integral and within range for an integer dtype. NumPy would otherwise wrap, truncate or raise at run time
    (300 as uint8, 2.5 as int32, 10**400 as int64), and TF refuses them. A bool suits every dtype (0 or 1)."""
    if dtype == "bool":
        fail("constant of dtype bool takes true or false, not a number")
    if isinstance(value, int) and abs(value) > sys.float_info.max:  # its digits would make a very long message
        fail("constant value is not finite as a double (an integer of {} bits)".format(value.bit_length()))
    if not math.isfinite(value):
        fail("constant value is not finite as a double ({!r})".format(value))
    if dtype in INT_DTYPES:
        if isinstance(value, float) and not value.is_integer():
            fail("constant value {!r} is not an integer, as dtype {} needs".format(value, dtype))
        limits = np.iinfo(dtype)
        if not int(limits.min) <= value <= int(limits.max):
            fail("constant value {!r} is out of range for {}".format(value, dtype))
