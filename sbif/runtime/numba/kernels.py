"""The numba backend's kernels and the interpreter that runs a lowered graph (`program`) with them.

Each kernel is the semantics of the NumPy op of the same name in `sbif/ops` (spec/ops.md) on C-contiguous arrays
it writes into, checked against TensorFlow's op vectors (tests/test_numba_runtime.py). Float arithmetic stays in
the data's dtype (constants are float32 values, never Python floats, which would widen float32 to float64) and no
fast-math flag is used, so every operation is rounded as spec/ops.md says, NaN and inf kept; the one liberty
spec/ops.md grants, fused multiply-adds in the sums of products (in an order it leaves free), is taken by the dense
products, on panels (`_tile`) and as dot products (`_dots`). Where TF 1.15 computes a
function with its own approximation (tanh; exp on 8-wide packets), the kernel uses that approximation, which
vectorises where a call to libm would not.

The interpreter and its kernels are compiled once per machine, not per model, and cached on disk by numba. To keep
that one compilation short, they are few functions of plain loops: one kernel per op family with the op chosen by
a code outside its loops, float64 only where exported graphs use it (pre-processing and action post-processing).
Imported only by the numba backend (never by `import sbif`).
"""
from __future__ import annotations

import inspect

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ...ops.elementwise import Selu
from .encoding import (ADD, ADD_BIAS, ARENA_HEADER, ARGMAX, BINARY, CAST, CLIP, CONV2D, COPY, COPY_COLUMNS, ELU,
                            EXP, FLOAT32, FLOAT64, HEADER, INT32, LAYER_NORM, LESS, LINEAR, LOG, MATMUL, MUL, NEG,
                            ONE_HOT, OPERAND, PANEL, REDUCE_MEAN, RELU, RELU6, ROUND, SELU, SIGMOID, SOFTMAX,
                            SOFTPLUS, SOFTSIGN, SUB, SWISH, TAKE_COLUMNS, TANH, UINT8, UNARY)

JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

#: the SHA-256 of encoding.py: numba's disk cache only notices changes to this file (a test checks it)
PROGRAM_FORMAT_DIGEST = "023680bf3436f7d8aa75b2bd8a1e02c38437051f1df87a51cea0c9e111749bfe"

# float32 constants (module globals are frozen into the compiled code with their type)
ZERO, ONE, SIX, NINE, EIGHTEEN = (np.float32(v) for v in (0.0, 1.0, 6.0, 9.0, 18.0))
#: Eigen's generic_fast_tanh_float (TF 1.15's float32 tanh on both of its paths), spec/ops.md "tanh"
A1, A3, A5, A7, A9, A11, A13 = (np.float32(a) for a in (
    4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08, -8.60467152213735e-11,
    2.00018790482477e-13, -2.76076847742355e-16))
B0, B2, B4, B6 = (np.float32(b) for b in (
    4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06))
SELU_SCALE, SELU_SCALE_ALPHA = np.float32(Selu.SCALE), np.float32(Selu.SCALE_ALPHA)
#: Eigen's AVX pexp<Packet8f> (TF 1.15's float32 exp on 8-wide packets, built without FMA), spec/ops.md "exp"
EXP_HI, EXP_LO = np.float32(88.3762626647950), np.float32(-88.3762626647949)
LOG2E, HALF, BIAS = np.float32(1.44269504088896341), np.float32(0.5), np.float32(127.0)
LN2_HI, LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
P0, P1, P2, P3, P4, P5 = (np.float32(p) for p in (
    1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
#: softplus switches branch at log(eps) + 2, computed in float32 as TF does
SOFTPLUS_THRESHOLD = np.log(np.finfo(np.float32).eps) + np.float32(2)
LOWEST = np.finfo(np.float32).min


# -- element-wise ---------------------------------------------------------------------------------------------------
@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(**JIT)
def exp_f32(v):
    """TF's float32 exp on packets (Cephes range reduction and polynomial), within 1 ULP of e^x and
    vectorisable, unlike a call to expf. NaN gives NaN, -inf 0, +inf +inf; from 88.3763 on it is +inf, in
    spec/ops.md's unspecified band below 88.7228."""
    x = v if v < EXP_HI else EXP_HI  # clamped (NaN too, so that the integer conversion below is defined;
    x = x if x > EXP_LO else EXP_LO  # the last line gives NaN back)
    m = np.floor(x * LOG2E + HALF)
    r = x - m * LN2_HI
    r = r - m * LN2_LO
    r2 = r * r
    y = P0 * r + P1
    y = y * r + P2
    y = y * r + P3
    y = y * r + P4
    y = y * r + P5
    y = y * r2 + r
    y = y + ONE
    scale = _float_from_bits(np.int32(np.int32(m + BIAS) << 23))  # 2^m (+inf when m = 128)
    result = y * scale
    return v if v != v or v > result else result


@njit(**JIT)
def tanh_f32(v):
    """TF's float32 tanh: clamp to [-9, 9], then Eigen's rational approximation (vectorisable, bit for bit TF's)."""
    x = NINE if v > NINE else (-NINE if v < -NINE else v)  # comparisons with NaN are false: NaN stays NaN
    x2 = x * x
    p = x2 * A13 + A11
    p = x2 * p + A9
    p = x2 * p + A7
    p = x2 * p + A5
    p = x2 * p + A3
    p = x2 * p + A1
    p = x * p
    q = x2 * B6 + B4
    q = x2 * q + B2
    q = x2 * q + B0
    return p / q


@njit(**JIT)
def sigmoid_f32(v):
    """TF 1.15's float32 sigmoid: exactly 0 below -18, 1 above 18, else 1 / (1 + exp(-x))."""
    if v < -EIGHTEEN:
        return ZERO
    if v > EIGHTEEN:
        return ONE
    return ONE / (ONE + exp_f32(-v))


@njit(**JIT)
def unary(sub, x, y, alpha):
    """y = UNARY_OPS[sub](x) on flat float32 arrays (`alpha`: leaky_relu's slope, already float32)."""
    size = x.size
    if sub == NEG:
        for i in range(size):
            y[i] = -x[i]
    elif sub == EXP:
        for i in range(size):
            y[i] = exp_f32(x[i])
    elif sub == LOG:
        for i in range(size):
            y[i] = np.log(x[i])
    elif sub == ROUND:  # ties to even
        for i in range(size):
            y[i] = np.rint(x[i])
    elif sub == TANH:
        for i in range(size):
            y[i] = tanh_f32(x[i])
    elif sub == SIGMOID:
        for i in range(size):
            y[i] = sigmoid_f32(x[i])
    elif sub == RELU:  # (x < 0) ? 0 : x, so NaN stays NaN
        for i in range(size):
            y[i] = ZERO if x[i] < ZERO else x[i]
    elif sub == RELU6:
        for i in range(size):
            t = ZERO if x[i] < ZERO else x[i]
            y[i] = SIX if t > SIX else t
    elif sub == ELU:  # TF computes exp(x) - 1, not expm1
        for i in range(size):
            y[i] = exp_f32(x[i]) - ONE if x[i] < ZERO else x[i]
    elif sub == SELU:
        for i in range(size):
            y[i] = SELU_SCALE_ALPHA * (exp_f32(x[i]) - ONE) if x[i] < ZERO else SELU_SCALE * x[i]
    elif sub == SOFTPLUS:  # TF's thresholds, and log(exp(x) + 1) literally in between
        for i in range(size):
            v = x[i]
            e = exp_f32(v)
            y[i] = v if v > -SOFTPLUS_THRESHOLD else (e if v < SOFTPLUS_THRESHOLD else np.log(e + ONE))
    elif sub == SOFTSIGN:
        for i in range(size):
            y[i] = x[i] / (ONE + np.abs(x[i]))
    elif sub == SWISH:
        for i in range(size):
            y[i] = x[i] * sigmoid_f32(x[i])
    else:  # LEAKY_RELU: a selection, not max(x, alpha x)
        for i in range(size):
            y[i] = x[i] if x[i] > ZERO else x[i] * alpha


@njit(**JIT)
def binary(sub, x, y, out):
    """out = x BINARY_OPS[sub] y (not less) on 2-D views [R, C]; x and y are each full, a row [1, C], a column
    [R, 1] or [1, 1]. Operands spanning the columns (the common case: full or a bias-like row), or x spanning
    them and y one value (scaling by a constant), take a vectorised loop; other columns and scalars are read with
    stride 0."""
    rows, columns = out.shape
    xr, xc = int(x.shape[0] != 1), int(x.shape[1] != 1 or columns == 1)
    yr, yc = int(y.shape[0] != 1), int(y.shape[1] != 1 or columns == 1)
    for r in range(rows):
        a = x[r * xr]
        b = y[r * yr]
        o = out[r]
        if xc and yc:
            if sub == ADD:
                for c in range(columns):
                    o[c] = a[c] + b[c]
            elif sub == SUB:
                for c in range(columns):
                    o[c] = a[c] - b[c]
            elif sub == MUL:
                for c in range(columns):
                    o[c] = a[c] * b[c]
            else:
                for c in range(columns):
                    o[c] = a[c] / b[c]
        elif xc:  # y one value per row (a column or a scalar): the same vectorised loop with it held
            v = b[0]
            if sub == ADD:
                for c in range(columns):
                    o[c] = a[c] + v
            elif sub == SUB:
                for c in range(columns):
                    o[c] = a[c] - v
            elif sub == MUL:
                for c in range(columns):
                    o[c] = a[c] * v
            else:
                for c in range(columns):
                    o[c] = a[c] / v
        elif sub == ADD:
            for c in range(columns):
                o[c] = a[c * xc] + b[c * yc]
        elif sub == SUB:
            for c in range(columns):
                o[c] = a[c * xc] - b[c * yc]
        elif sub == MUL:
            for c in range(columns):
                o[c] = a[c * xc] * b[c * yc]
        else:
            for c in range(columns):
                o[c] = a[c * xc] / b[c * yc]


@njit(**JIT)
def less(x, y, out):
    """out = x < y (bool), broadcasting as `binary`."""
    rows, columns = out.shape
    xr, xc = int(x.shape[0] != 1), int(x.shape[1] != 1)
    yr, yc = int(y.shape[0] != 1), int(y.shape[1] != 1)
    for r in range(rows):
        a = x[r * xr]
        b = y[r * yr]
        o = out[r]
        for c in range(columns):
            o[c] = a[c * xc] < b[c * yc]


@njit(**JIT)
def clip(x, low, high, out):
    """out = min(max(x, low), high), NaN from any operand propagating (NumPy's maximum and minimum); low and high
    broadcast as in `binary`."""
    rows, columns = out.shape
    lr, lc = int(low.shape[0] != 1), int(low.shape[1] != 1)
    hr, hc = int(high.shape[0] != 1), int(high.shape[1] != 1)
    for r in range(rows):
        lo = low[r * lr]
        hi = high[r * hr]
        for c in range(columns):
            v = x[r, c]
            bound = lo[c * lc]
            v = v if v > bound or v != v else bound
            bound = hi[c * hc]
            out[r, c] = v if v < bound or v != v else bound


@njit(**JIT)
def cast(x, y):
    """y = x in y's dtype, as C's static_cast and NumPy's astype: float to int truncates, bool gives 0/1."""
    for i in range(x.size):
        y[i] = x[i]


@njit(**JIT)
def copy(x, y):
    for i in range(x.size):
        y[i] = x[i]


@njit(**JIT)
def copy_columns(source, target, offset):
    """target[:, offset:offset + source columns] = source: concat and stack, on [outer, inner] byte views."""
    rows, width = source.shape
    for r in range(rows):
        for c in range(width):
            target[r, offset + c] = source[r, c]


@njit(**JIT)
def take_columns(source, offset, target):
    """target = source[:, offset:offset + target columns]: split."""
    rows, width = target.shape
    for r in range(rows):
        for c in range(width):
            target[r, c] = source[r, offset + c]


# -- network ops ---------------------------------------------------------------------------------------------------
#: float32 lanes of the vectors the tiles keep their sums in (AVX; LLVM splits them where vectors are narrower)
VECTOR = 8


def _dots(rows: int, outputs: int):
    """An intrinsic computing y = x @ w for a group of `rows` rows and `outputs` outputs, w given transposed
    (wt [N, K]: each output's weights a contiguous row), for narrow products (fewer outputs than a panel): each
    output of each row is a dot product summed in VECTOR lanes (`llvm.fmuladd`, as in `_tile`) over the whole
    multiples of VECTOR, the lanes then added pairwise (halves, quarters, the last two), then the remaining terms
    in order of k. Every output follows that one order whatever group it is in, so a row's result does not depend
    on the batch it came in. Arguments (addresses and element counts): x, x's row stride, the group's first row
    of wt, the depth K, y (at the group's first column), y's row stride."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    vector = ir.VectorType(f32, VECTOR)
    fmuladd_type = ir.FunctionType(vector, [vector, vector, vector])
    scalar_type = ir.FunctionType(f32, [f32, f32, f32])

    def codegen(context, builder, signature, args):
        x_at, x_stride, w_at, depth, y_at, y_stride = args
        x, w, y = (builder.inttoptr(a, f32.as_pointer()) for a in (x_at, w_at, y_at))
        x_rows = [builder.gep(x, [builder.mul(x_stride, ir.Constant(i64, r))]) for r in range(rows)]
        w_rows = [builder.gep(w, [builder.mul(depth, ir.Constant(i64, n))]) for n in range(outputs)]
        sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * VECTOR)) for _ in range(outputs)]
                for _ in range(rows)]
        fmuladd = cgutils.get_or_insert_function(builder.module, fmuladd_type, "llvm.fmuladd.v{}f32".format(VECTOR))
        fmuladd_scalar = cgutils.get_or_insert_function(builder.module, scalar_type, "llvm.fmuladd.f32")
        whole = builder.udiv(depth, ir.Constant(i64, VECTOR))

        def lanes_at(row, k):
            return builder.load(builder.bitcast(builder.gep(row, [k]), vector.as_pointer()), align=4)

        with cgutils.for_range(builder, whole) as loop:
            k = builder.mul(loop.index, ir.Constant(i64, VECTOR))
            terms = [lanes_at(w_row, k) for w_row in w_rows]
            for r in range(rows):
                xr = lanes_at(x_rows[r], k)
                for n, term in enumerate(terms):
                    builder.store(builder.call(fmuladd, [xr, term, builder.load(sums[r][n])]), sums[r][n])
        totals = [[None] * outputs for _ in range(rows)]
        for r in range(rows):
            for n in range(outputs):
                lanes = builder.load(sums[r][n])
                width = VECTOR
                while width > 1:  # pairwise: lane i + lane i + width/2
                    half = width // 2
                    low = builder.shuffle_vector(lanes, lanes, ir.Constant(ir.VectorType(i32, half), list(range(half))))
                    high = builder.shuffle_vector(lanes, lanes, ir.Constant(ir.VectorType(i32, half),
                                                                            list(range(half, width))))
                    lanes, width = builder.fadd(low, high), half
                totals[r][n] = cgutils.alloca_once_value(builder, builder.extract_element(lanes, ir.Constant(i32, 0)))
        done = builder.mul(whole, ir.Constant(i64, VECTOR))
        with cgutils.for_range(builder, builder.sub(depth, done)) as tail:  # every sum's next term, in one loop
            k = builder.add(done, tail.index)
            terms = [builder.load(builder.gep(w_row, [k])) for w_row in w_rows]
            for r in range(rows):
                xr = builder.load(builder.gep(x_rows[r], [k]))
                for n, term in enumerate(terms):
                    builder.store(builder.call(fmuladd_scalar, [xr, term, builder.load(totals[r][n])]), totals[r][n])
        for r in range(rows):
            y_row = builder.gep(y, [builder.mul(y_stride, ir.Constant(i64, r))])
            for n in range(outputs):
                builder.store(builder.load(totals[r][n]), builder.gep(y_row, [ir.Constant(i64, n)]))
        return context.get_dummy_value()

    @intrinsic
    def dots(typingctx, x, x_stride, w, depth, y, y_stride):
        return types.none(*([types.intp] * 6)), codegen

    return dots


_dots_4x2, _dots_4x1, _dots_1x4, _dots_1x1 = _dots(4, 2), _dots(4, 1), _dots(1, 4), _dots(1, 1)


@njit(**JIT)
def dense_dots(x, wt, y):
    """y = x @ w for x [R, K] and w given transposed (wt [N, K]), for few outputs N: groups of 4 rows by 2
    outputs (8 vector sums), the last rows and a single row 4 outputs at a time (`_dots`)."""
    rows, depth = x.shape
    width = wt.shape[0]
    x_at, w_at, y_at = x.ctypes.data, wt.ctypes.data, y.ctypes.data
    for r in range(0, rows - rows % 4, 4):
        x_row, y_row = x_at + 4 * r * depth, y_at + 4 * r * width
        n = 0
        while n + 2 <= width:
            _dots_4x2(x_row, depth, w_at + 4 * n * depth, depth, y_row + 4 * n, width)
            n += 2
        if n < width:
            _dots_4x1(x_row, depth, w_at + 4 * n * depth, depth, y_row + 4 * n, width)
    for r in range(rows - rows % 4, rows):
        x_row, y_row = x_at + 4 * r * depth, y_at + 4 * r * width
        n = 0
        while n + 4 <= width:
            _dots_1x4(x_row, depth, w_at + 4 * n * depth, depth, y_row + 4 * n, width)
            n += 4
        while n < width:
            _dots_1x1(x_row, depth, w_at + 4 * n * depth, depth, y_row + 4 * n, width)
            n += 1


@njit(**JIT)
def matmul_axpy(x, w, y):
    """y = x @ w for x [R, K] and w [K, N] with few inputs K: each output row is built by adding x[r, k] times
    row k of w, in order of k (vectorised along the row), four rows of w per pass over y: the same additions
    in the same order, with a quarter of the loads and stores of y."""
    rows, depth = x.shape
    width = w.shape[1]
    for r in range(rows):
        xr = x[r]
        yr = y[r]
        a = xr[0]
        w0 = w[0]
        for n in range(width):
            yr[n] = a * w0[n]
        k = 1
        while k + 4 <= depth:
            a0, a1, a2, a3 = xr[k], xr[k + 1], xr[k + 2], xr[k + 3]
            w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
            for n in range(width):
                yr[n] = (((yr[n] + a0 * w0[n]) + a1 * w1[n]) + a2 * w2[n]) + a3 * w3[n]
            k += 4
        while k < depth:
            a = xr[k]
            wk = w[k]
            for n in range(width):
                yr[n] = yr[n] + a * wk[n]
            k += 1


# -- dense products on weights stored in panels ------------------------------------------------------------------
#: the rows of x a block of 4-row tiles reads: while they stay in the L2 cache, each panel is read once per block
ROW_BLOCK_BYTES = 1 << 16


def _tile(rows: int, panels: int, partial: bool):
    """An intrinsic computing y = x @ w + b for a tile of `rows` rows and `panels` panels: its sums stay in vector
    registers through the whole depth, each term added in order of k, then the bias (a separate rounded addition).
    A term is added with `llvm.fmuladd`: a fused multiply-add where the CPU has a fast one, else a rounded product
    and a rounded sum (spec/ops.md allows both in these sums, as BLAS kernels do). Arguments (addresses and element
    counts): x, x's row stride, the tile's first panel, the depth K, b (at the tile's first column), y (likewise),
    y's row stride, and for a `partial` tile (the last panel) how many of its columns exist: only those are read
    from b and written."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    vector = ir.VectorType(f32, VECTOR)
    halves = PANEL // VECTOR
    fmuladd_type = ir.FunctionType(vector, [vector, vector, vector])

    def codegen(context, builder, signature, args):
        x_at, x_stride, w_at, depth, b_at, y_at, y_stride, width = args
        x, w, b, y = (builder.inttoptr(a, f32.as_pointer()) for a in (x_at, w_at, b_at, y_at))
        sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * VECTOR))
                 for _ in range(panels * halves)] for _ in range(rows)]
        x_rows = [builder.gep(x, [builder.mul(x_stride, ir.Constant(i64, r))]) for r in range(rows)]
        panel_size = builder.mul(depth, ir.Constant(i64, PANEL))
        starts = [builder.gep(w, [builder.mul(panel_size, ir.Constant(i64, p))]) for p in range(panels)]
        broadcast = ir.Constant(ir.VectorType(i32, VECTOR), [0] * VECTOR)
        fmuladd = cgutils.get_or_insert_function(builder.module, fmuladd_type, "llvm.fmuladd.v{}f32".format(VECTOR))
        with cgutils.for_range(builder, depth) as loop:
            at = builder.mul(loop.index, ir.Constant(i64, PANEL))
            terms = [builder.load(builder.bitcast(builder.gep(start, [builder.add(at, ir.Constant(i64, h * VECTOR))]),
                                                  vector.as_pointer()), align=4)
                     for start in starts for h in range(halves)]
            for r in range(rows):
                scalar = builder.load(builder.gep(x_rows[r], [loop.index]))
                xr = builder.shuffle_vector(builder.insert_element(ir.Constant(vector, ir.Undefined), scalar,
                                                                   ir.Constant(i32, 0)),
                                            ir.Constant(vector, ir.Undefined), broadcast)
                for j, term in enumerate(terms):
                    builder.store(builder.call(fmuladd, [xr, term, builder.load(sums[r][j])]), sums[r][j])
        for r in range(rows):
            y_row = builder.gep(y, [builder.mul(y_stride, ir.Constant(i64, r))])
            for j in range(panels * halves):
                total = builder.load(sums[r][j])
                if not partial:
                    column = ir.Constant(i64, j * VECTOR)
                    bias = builder.load(builder.bitcast(builder.gep(b, [column]), vector.as_pointer()), align=4)
                    builder.store(builder.fadd(total, bias),
                                  builder.bitcast(builder.gep(y_row, [column]), vector.as_pointer()), align=4)
                    continue
                for lane in range(VECTOR):
                    column = ir.Constant(i64, j * VECTOR + lane)
                    with builder.if_then(builder.icmp_signed("<", column, width)):
                        value = builder.fadd(builder.extract_element(total, ir.Constant(i32, lane)),
                                             builder.load(builder.gep(b, [column])))
                        builder.store(value, builder.gep(y_row, [column]))
        return context.get_dummy_value()

    @intrinsic
    def tile(typingctx, x, x_stride, w, depth, b, y, y_stride, width):
        return types.none(*([types.intp] * 8)), codegen

    return tile


_tile_4x1, _tile_4x1_partial = _tile(4, 1, False), _tile(4, 1, True)
_tile_1x4, _tile_1x1, _tile_1x1_partial = _tile(1, 4, False), _tile(1, 1, False), _tile(1, 1, True)


@njit(**JIT)
def dense_panels(x, w, b, y):
    """y = x @ w + b for x [R, K], w in panels (PANEL) and b [1, N]: tiles of 4 rows by one panel, over blocks of
    rows (ROW_BLOCK_BYTES) so that each panel stays in the L1 cache while a block's tiles read it; the last rows
    and a single row as tiles of 1 row by 4 panels (8 vector sums, as a 4-row tile). Every tile adds the terms of
    a sum in the same order, so a row's result does not depend on the tiling (nor on the batch it came in)."""
    rows, depth = x.shape
    width = y.shape[1]
    full = width // PANEL
    x_at, w_at, b_at, y_at = x.ctypes.data, w.ctypes.data, b.ctypes.data, y.ctypes.data
    panel_bytes = depth * PANEL * 4
    block = max(4, ROW_BLOCK_BYTES // max(4 * depth, 1) // 4 * 4)
    first = 0
    last = rows - rows % 4
    while first < last:
        end = min(last, first + block)
        for p in range(-(-width // PANEL)):
            for r in range(first, end, 4):
                if p < full:
                    _tile_4x1(x_at + 4 * r * depth, depth, w_at + p * panel_bytes, depth, b_at + 4 * p * PANEL,
                              y_at + 4 * (r * width + p * PANEL), width, PANEL)
                else:
                    _tile_4x1_partial(x_at + 4 * r * depth, depth, w_at + p * panel_bytes, depth,
                                      b_at + 4 * p * PANEL, y_at + 4 * (r * width + p * PANEL), width,
                                      width - p * PANEL)
        first = end
    for r in range(last, rows):
        x_row, y_row = x_at + 4 * r * depth, y_at + 4 * r * width
        p = 0
        while p + 4 <= full:
            _tile_1x4(x_row, depth, w_at + p * panel_bytes, depth, b_at + 4 * p * PANEL, y_row + 4 * p * PANEL,
                      width, 4 * PANEL)
            p += 4
        while p < full:
            _tile_1x1(x_row, depth, w_at + p * panel_bytes, depth, b_at + 4 * p * PANEL, y_row + 4 * p * PANEL,
                      width, PANEL)
            p += 1
        if full * PANEL < width:
            _tile_1x1_partial(x_row, depth, w_at + p * panel_bytes, depth, b_at + 4 * p * PANEL,
                              y_row + 4 * p * PANEL, width, width - p * PANEL)


@njit(**JIT)
def add_bias(y, b):
    """y[r, :] += b: the bias of linear and conv2d, added after the product is rounded (as TF)."""
    rows, width = y.shape
    for r in range(rows):
        yr = y[r]
        for n in range(width):
            yr[n] = yr[n] + b[n]


@njit(**JIT)
def conv2d(x, w, b, y, stride_h, stride_w, pad_top, pad_left):
    """NHWC x [B, H, W, C] with HWIO w and bias b into y [B, Ho, Wo, O]. Padding pixels are zeros that still
    multiply their weights (0 * inf is NaN, as in the zero-padded reference)."""
    batch, height, width, channels = x.shape
    kernel_h, kernel_w, _, filters = w.shape
    _, out_h, out_w, _ = y.shape
    for r in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                acc = y[r, i, j]
                for o in range(filters):
                    acc[o] = ZERO
                for p in range(kernel_h):
                    row = i * stride_h + p - pad_top
                    for q in range(kernel_w):
                        col = j * stride_w + q - pad_left
                        inside = 0 <= row < height and 0 <= col < width
                        for c in range(channels):
                            value = x[r, row, col, c] if inside else ZERO
                            wr = w[p, q, c]
                            for o in range(filters):
                                acc[o] = acc[o] + value * wr[o]
                for o in range(filters):
                    acc[o] = acc[o] + b[o]


@intrinsic
def _copy_floats(typingctx, target, source, count):
    """Copy `count` float32 from address `source` to address `target` (not overlapping), 8 at a time: inline,
    for the short runs of im2col, where a call to memcpy or a loop over array views costs more than the copy."""
    f32, i64 = ir.FloatType(), ir.IntType(64)
    vector = ir.VectorType(f32, VECTOR)

    def codegen(context, builder, signature, args):
        to, at, n = (builder.inttoptr(args[0], f32.as_pointer()), builder.inttoptr(args[1], f32.as_pointer()),
                     args[2])
        whole = builder.udiv(n, ir.Constant(i64, VECTOR))
        with cgutils.for_range(builder, whole) as loop:
            offset = builder.mul(loop.index, ir.Constant(i64, VECTOR))
            value = builder.load(builder.bitcast(builder.gep(at, [offset]), vector.as_pointer()), align=4)
            builder.store(value, builder.bitcast(builder.gep(to, [offset]), vector.as_pointer()), align=4)
        done = builder.mul(whole, ir.Constant(i64, VECTOR))
        with cgutils.for_range(builder, builder.sub(n, done)) as loop:
            offset = builder.add(done, loop.index)
            builder.store(builder.load(builder.gep(at, [offset])), builder.gep(to, [offset]))
        return context.get_dummy_value()

    return types.none(types.intp, types.intp, types.intp), codegen


CACHE_LINE_BYTES = 64
#: how many output rows ahead im2col prefetches its input rows
PREFETCH_ROWS_AHEAD = 2


@intrinsic
def _prefetch(typingctx, address):
    """Ask the CPU to bring the cache line at `address` into its caches (llvm.prefetch: a hint that never faults),
    for im2col, whose short runs from several image rows at once the hardware prefetchers do not foresee."""
    byte_pointer, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)

    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch." + byte_pointer.intrinsic_name)
        read, keep_in_all_levels, data = ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)
        builder.call(function, [builder.inttoptr(args[0], byte_pointer), read, keep_in_all_levels, data])
        return context.get_dummy_value()

    return types.none(types.intp), codegen


@njit(**JIT)
def im2col(x, columns, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left):
    """The patches of a convolution as columns [B, Ho, Wo, kh * kw * C] in (kh, kw, C) order (the HWIO kernel
    reshaped to [kh * kw * C, O]), zeros where a patch reaches into the padding: one BLAS product convolves.
    A patch row inside the image is kw * C contiguous elements of x (NHWC), copied in one run."""
    batch, height, width, channels = x.shape
    _, out_h, out_w, depth = columns.shape
    span = kernel_w * channels
    row_bytes = width * channels * x.itemsize
    x_at, columns_at = x.ctypes.data, columns.ctypes.data
    for r in range(batch):
        image = x[r].reshape(-1)
        for i in range(out_h):
            # prefetch the image rows that the output row PREFETCH_ROWS_AHEAD rows on (in this image or the next)
            # reads and the one before it does not: x comes from beyond the L2 cache, and these short runs from
            # several rows at once leave the hardware prefetchers behind (the nature CNN's first im2col: 1.5x)
            ahead, ahead_i = divmod(r * out_h + i + PREFETCH_ROWS_AHEAD, out_h)
            first_row = ahead_i * stride_h - pad_top
            if ahead_i > 0:
                first_row = max(first_row, first_row - stride_h + kernel_h)
            first_row, last_row = max(first_row, 0), min(ahead_i * stride_h - pad_top + kernel_h, height)
            if ahead < batch and first_row < last_row:
                start = x_at + (ahead * height + first_row) * row_bytes
                for line in range(0, (last_row - first_row) * row_bytes, CACHE_LINE_BYTES):
                    _prefetch(start + line)
            for j in range(out_w):
                target = columns[r, i, j]
                at = ((r * out_h + i) * out_w + j) * depth
                col = j * stride_w - pad_left
                for p in range(kernel_h):
                    row = i * stride_h + p - pad_top
                    k = p * span
                    if 0 <= row < height and 0 <= col and col + kernel_w <= width:
                        _copy_floats(columns_at + 4 * (at + k), x_at + 4 * (((r * height + row) * width + col)
                                                                            * channels), span)
                        continue
                    for q in range(kernel_w):
                        inside = 0 <= row < height and 0 <= col + q < width
                        start = (row * width + col + q) * channels
                        for c in range(channels):
                            target[k + q * channels + c] = image[start + c] if inside else ZERO


@njit(**JIT)
def row_sum(row):
    """The sum of a float32 row, accumulated in float64 and rounded once: the order of a sum is free
    (spec/ops.md), and this is the float32 result every order approximates."""
    total = 0.0
    for j in range(row.size):
        total += row[j]
    return np.float32(total)


@njit(**JIT)
def layer_norm(x, gamma, beta, epsilon, y):
    """Per row of [R, N]: (x - mean) / sqrt(var + epsilon) * gamma + beta, population variance; every step
    rounded to float32, the two sums rounded once."""
    rows, width = x.shape
    count = np.float32(width)
    for r in range(rows):
        xr = x[r]
        mean = row_sum(xr) / count
        squares = 0.0
        for j in range(width):
            d = xr[j] - mean
            squares += d * d
        scale = np.sqrt(np.float32(squares) / count + epsilon)
        yr = y[r]
        for j in range(width):
            yr[j] = (xr[j] - mean) / scale * gamma[j] + beta[j]


@njit(**JIT)
def reduce_mean(x, y):
    """y[r] = sum(x[r, :]) / N, the sum rounded once."""
    rows, width = x.shape
    count = np.float32(width)
    for r in range(rows):
        y[r] = row_sum(x[r]) / count


@njit(**JIT)
def softmax(x, y):
    """Per row: exp(x - max) * (1 / sum), as TF (the sum rounded once); a NaN makes the max, and so the row, NaN."""
    rows, width = x.shape
    for r in range(rows):
        xr = x[r]
        yr = y[r]
        top = xr[0]
        for j in range(1, width):
            if xr[j] > top or xr[j] != xr[j]:
                top = xr[j]
                if top != top:
                    break
        for j in range(width):
            yr[j] = exp_f32(xr[j] - top)
        scale = ONE / row_sum(yr)
        for j in range(width):
            yr[j] = yr[j] * scale


@njit(**JIT)
def argmax(x, y):
    """y[r] = the first index of the largest element of x[r, :] above -FLT_MAX, else 0 (TF: NaN is never chosen;
    rows of NaN, -inf and -FLT_MAX give 0)."""
    rows, width = x.shape
    for r in range(rows):
        best = 0
        best_value = LOWEST
        xr = x[r]
        for j in range(width):
            if xr[j] > best_value:
                best = j
                best_value = xr[j]
        y[r] = best


@njit(**JIT)
def one_hot(x, y):
    """y[i, j] = 1.0 where x[i] == j, for y [M, depth]; indices outside [0, depth) give a row of zeros."""
    count, depth = y.shape
    for i in range(count):
        index = x[i]
        for j in range(depth):
            y[i, j] = ONE if index == j else ZERO


@njit(**JIT)
def inverse_cdf_sample(p, u, y):
    """NumPy's RandomState.choice(n, p=row) at uniform u, in float64 (spec/ops-sampling.md): the number of
    cumulative sums (left to right) divided by the total that are <= u, clamped to n - 1."""
    rows, width = p.shape
    for r in range(rows):
        total = 0.0
        for j in range(width):
            total += np.float64(p[r, j])
        draw = np.float64(u[r])
        running = 0.0
        count = 0
        for j in range(width):
            running += np.float64(p[r, j])
            if running / total <= draw:
                count += 1
        y[r] = min(count, width - 1)


# -- the interpreter ---------------------------------------------------------------------------------------------
@intrinsic
def _pointer(typingctx, address, dtype):
    """The int `address` as a pointer to `dtype` (a NumPy scalar class)."""
    pointer = types.CPointer(dtype.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(types.intp, dtype), codegen


@njit(**JIT)
def start_of(program, at, frame):
    """The byte offset of an operand (`program.View.encode`) in its buffer, for a call's frame
    (n, first, rows, out_first, out_rows): n rows from row `first` of a chunk of `rows` rows, which starts at
    row `out_first` of the request's `out_rows` rows."""
    n, first, rows, out_first, out_rows = frame
    return (program[at + 1] + program[at + 2] * rows + program[at + 3] * first + program[at + 4] * out_rows
            + program[at + 5] * (out_first + first))


@njit(**JIT)
def operand(program, at, frame, bases, dtype):
    """The 2-D view of an operand descriptor as `dtype`: an array over the buffer's memory without a reference
    count (the buffers are the interpreter's arguments, alive throughout)."""
    rows = program[at + 6] + program[at + 7] * frame[0]
    return carray(_pointer(bases[program[at]] + start_of(program, at, frame), dtype), (rows, program[at + 8]))


@njit(**JIT)
def cast_to_float32(source, x, y):
    """Cast the bytes x, holding dtype code `source`, into the flat float32 array y."""
    if source == FLOAT32:
        cast(x.view(np.float32), y)
    elif source == FLOAT64:
        cast(x.view(np.float64), y)
    elif source == INT32:
        cast(x.view(np.int32), y)
    elif source == UINT8:
        cast(x, y)
    else:
        cast(x.view(np.bool_), y)


# One function per kernel family: each decodes its own operands, so that the interpreter's dispatch stays small
# and the families are optimised separately (one huge function would take LLVM far longer).
@njit(**JIT)
def run_unary(program, at, frame, bases):
    a, b = at + HEADER, at + HEADER + OPERAND
    alpha = np.float32(program[b + OPERAND:b + OPERAND + 1].view(np.float64)[0])
    unary(program[at + 2], operand(program, a, frame, bases, np.float32).reshape(-1),
          operand(program, b, frame, bases, np.float32).reshape(-1), alpha)


@njit(**JIT)
def run_binary(program, at, frame, bases, dtype):
    a, b, c = at + HEADER, at + HEADER + OPERAND, at + HEADER + 2 * OPERAND
    x = operand(program, a, frame, bases, dtype)
    y = operand(program, b, frame, bases, dtype)
    if program[at + 2] == LESS:
        less(x, y, operand(program, c, frame, bases, np.bool_))
    else:
        binary(program[at + 2], x, y, operand(program, c, frame, bases, dtype))


@njit(**JIT)
def run_clip(program, at, frame, bases, dtype):
    a = at + HEADER
    clip(operand(program, a, frame, bases, dtype),
         operand(program, a + OPERAND, frame, bases, dtype),
         operand(program, a + 2 * OPERAND, frame, bases, dtype),
         operand(program, a + 3 * OPERAND, frame, bases, dtype))


@njit(**JIT)
def run_cast(program, at, frame, bases):
    a, b = at + HEADER, at + HEADER + OPERAND
    x = operand(program, a, frame, bases, np.uint8).reshape(-1)
    if program[at + 3] == FLOAT32:
        cast_to_float32(program[at + 2], x, operand(program, b, frame, bases, np.float32).reshape(-1))
    else:  # float32 to float64
        cast(x.view(np.float32), operand(program, b, frame, bases, np.float64).reshape(-1))


@njit(**JIT)
def words(program, at, frame, bases, dtype, size):
    """A byte operand as a 2-D view of `size`-byte words (its columns in bytes divided by `size`)."""
    rows = program[at + 6] + program[at + 7] * frame[0]
    return carray(_pointer(bases[program[at]] + start_of(program, at, frame), dtype),
                  (rows, program[at + 8] // size))


@njit(**JIT)
def copy_words(opcode, x, y, offset):
    if opcode == COPY:
        copy(x.reshape(-1), y.reshape(-1))
    elif opcode == COPY_COLUMNS:
        copy_columns(x, y, offset)
    else:
        take_columns(x, offset, y)


@njit(**JIT)
def run_copy(program, at, frame, bases):
    """COPY, COPY_COLUMNS and TAKE_COLUMNS: moves of bytes, done in the widest words that divide every width and
    offset involved."""
    a, b = at + HEADER, at + HEADER + OPERAND
    opcode = program[at + 1]
    offset = program[b + OPERAND] if opcode != COPY else 0
    if (program[a + 8] | program[b + 8] | offset) % 8 == 0:
        copy_words(opcode, words(program, a, frame, bases, np.uint64, 8),
                   words(program, b, frame, bases, np.uint64, 8), offset // 8)
    elif (program[a + 8] | program[b + 8] | offset) % 4 == 0:
        copy_words(opcode, words(program, a, frame, bases, np.uint32, 4),
                   words(program, b, frame, bases, np.uint32, 4), offset // 4)
    else:
        copy_words(opcode, words(program, a, frame, bases, np.uint8, 1),
                   words(program, b, frame, bases, np.uint8, 1), offset)


@njit(**JIT)
def run_dense(program, at, frame, bases):
    """LINEAR, MATMUL and ADD_BIAS (float32). `sub` says how the weights are stored: 2, in panels (`dense_panels`;
    a MATMUL then comes as a LINEAR with zero bias); 1, transposed (`dense_dots`); 0, as they are (axpy)."""
    a = at + HEADER
    x = operand(program, a, frame, bases, np.float32)
    w = operand(program, a + OPERAND, frame, bases, np.float32)
    opcode = program[at + 1]
    if opcode == ADD_BIAS:
        add_bias(x, w[0])
        return
    y = operand(program, a + (3 if opcode == LINEAR else 2) * OPERAND, frame, bases, np.float32)
    layout = program[at + 2]
    if layout == 2:
        dense_panels(x, w, operand(program, a + 2 * OPERAND, frame, bases, np.float32), y)
        return
    if layout == 1:
        dense_dots(x, w, y)
    else:
        matmul_axpy(x, w, y)
    if opcode == LINEAR:
        add_bias(y, operand(program, a + 2 * OPERAND, frame, bases, np.float32)[0])


@njit(**JIT)
def run_conv2d(program, at, frame, bases):
    a = at + HEADER
    g = a + 4 * OPERAND  # geometry: H, W, C, kh, kw, Ho, Wo, strides, paddings
    w = operand(program, a + OPERAND, frame, bases, np.float32)
    y = operand(program, a + 3 * OPERAND, frame, bases, np.float32)
    n = frame[0]
    conv2d(operand(program, a, frame, bases, np.float32).reshape(
               (n, program[g], program[g + 1], program[g + 2])),
           w.reshape((program[g + 3], program[g + 4], program[g + 2], w.shape[1])),
           operand(program, a + 2 * OPERAND, frame, bases, np.float32)[0],
           y.reshape((n, program[g + 5], program[g + 6], y.shape[1])),
           program[g + 7], program[g + 8], program[g + 9], program[g + 10])


@njit(**JIT)
def run_rows(program, at, frame, bases):
    """The ops over the last axis: LAYER_NORM, REDUCE_MEAN, SOFTMAX, ARGMAX, ONE_HOT, INVERSE_CDF_SAMPLE."""
    a, b, c = at + HEADER, at + HEADER + OPERAND, at + HEADER + 2 * OPERAND
    opcode = program[at + 1]
    if opcode == ONE_HOT:
        target = operand(program, b, frame, bases, np.float32)
        if program[at + 3] == INT32:
            one_hot(operand(program, a, frame, bases, np.int32).reshape(-1), target)
        else:
            one_hot(operand(program, a, frame, bases, np.int64).reshape(-1), target)
        return
    x = operand(program, a, frame, bases, np.float32)
    if opcode == LAYER_NORM:
        epsilon = np.float32(program[c + 2 * OPERAND:c + 2 * OPERAND + 1].view(np.float64)[0])
        layer_norm(x, operand(program, b, frame, bases, np.float32)[0],
                   operand(program, c, frame, bases, np.float32)[0], epsilon,
                   operand(program, c + OPERAND, frame, bases, np.float32))
    elif opcode == REDUCE_MEAN:
        reduce_mean(x, operand(program, b, frame, bases, np.float32).reshape(-1))
    elif opcode == SOFTMAX:
        softmax(x, operand(program, b, frame, bases, np.float32))
    elif opcode == ARGMAX:
        argmax(x, operand(program, b, frame, bases, np.int64).reshape(-1))
    else:
        inverse_cdf_sample(x, operand(program, b, frame, bases, np.float32).reshape(-1),
                           operand(program, c, frame, bases, np.int64).reshape(-1))


@njit(**JIT)
def execute(program, n, first, rows, out_first, out_rows, weights, scratch, outputs, input0, input1, input2,
            input3):
    """Run a program (`program.Lowered.program`) on n rows from row `first` of a chunk of `rows` rows (the
    scratch and the inputs hold the chunk), which starts at row `out_first` of the request's `out_rows` rows (the
    outputs hold the request)."""
    run(program, (n, first, rows, out_first, out_rows),
        (weights.ctypes.data, scratch.ctypes.data, outputs.ctypes.data, input0.ctypes.data, input1.ctypes.data,
         input2.ctypes.data, input3.ctypes.data))


@njit(**JIT)
def execute_one(program, weights, arena):
    """Run a program on one row whose inputs, outputs and scratch all live in `arena`: the single-observation
    path, whose cost is mostly the call itself, so it takes three arrays instead of `execute`'s nine. The arena
    starts with ARENA_HEADER int64 byte offsets: the scratch, the outputs, then the MAX_INPUTS inputs."""
    base = arena.ctypes.data
    at = arena[:ARENA_HEADER * 8].view(np.uint64)  # uint64, as addresses are: one type of `bases` for `run`
    run(program, (1, 0, 1, 0, 1), (weights.ctypes.data, base + at[0], base + at[1], base + at[2], base + at[3],
                                   base + at[4], base + at[5]))


@njit(**JIT)
def run(program, frame, bases):
    """The interpreter: one kernel call per instruction, on operands in the `bases` buffers."""
    at = np.int64(0)  # not the literal 0, which would compile every callee twice
    while at < program.size:
        opcode, dtype = program[at + 1], program[at + 3]
        if opcode == UNARY:
            run_unary(program, at, frame, bases)
        elif opcode == BINARY:
            if dtype == FLOAT32:
                run_binary(program, at, frame, bases, np.float32)
            else:
                run_binary(program, at, frame, bases, np.float64)
        elif opcode == CLIP:
            if dtype == FLOAT32:
                run_clip(program, at, frame, bases, np.float32)
            else:
                run_clip(program, at, frame, bases, np.float64)
        elif opcode == CAST:
            run_cast(program, at, frame, bases)
        elif opcode == COPY or opcode == COPY_COLUMNS or opcode == TAKE_COLUMNS:
            run_copy(program, at, frame, bases)
        elif opcode == LINEAR or opcode == MATMUL or opcode == ADD_BIAS:
            run_dense(program, at, frame, bases)
        elif opcode == CONV2D:
            run_conv2d(program, at, frame, bases)
        else:
            run_rows(program, at, frame, bases)
        at += program[at]


# -- the entry points of the extension module (`aot`) ------------------------------------------------------
# numba's ahead-of-time compiler exports plain Python functions, holding the GIL throughout; these release it
# around the work, as `nogil` does for the jitted ones (the backend runs parts of a request in several threads).
# An exception in the work is caught while the GIL is released and raised once it is held again.
@intrinsic
def _release_gil(typingctx):
    """PyEval_SaveThread(): the thread state, as an int, for `_acquire_gil`."""
    def codegen(context, builder, signature, args):
        save = cgutils.get_or_insert_function(builder.module, ir.FunctionType(cgutils.voidptr_t, []),
                                              "PyEval_SaveThread")
        return builder.ptrtoint(builder.call(save, []), context.get_value_type(types.intp))

    return types.intp(), codegen


@intrinsic
def _acquire_gil(typingctx, state):
    """PyEval_RestoreThread(state)."""
    def codegen(context, builder, signature, args):
        restore = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t]),
                                                 "PyEval_RestoreThread")
        builder.call(restore, [builder.inttoptr(args[0], cgutils.voidptr_t)])
        return context.get_dummy_value()

    return types.void(types.intp), codegen


_WITHOUT_GIL = """
def {name}({arguments}):
    state = _release_gil()
    failed = False
    try:
        work({arguments})
    except Exception:
        failed = True
    _acquire_gil(state)
    if failed:
        raise RuntimeError("sbif's compiled kernel {name} failed (a bug: please report it)")
"""


def without_gil(work):
    """The jitted function `work` as a plain function that runs it without the GIL, for numba's ahead-of-time
    compiler (`aot`), which takes neither `nogil` nor `*args`: hence the source, written for `work`'s
    parameters."""
    namespace = {"work": work, "_release_gil": _release_gil, "_acquire_gil": _acquire_gil}
    arguments = ", ".join(inspect.signature(work.py_func).parameters)
    exec(_WITHOUT_GIL.format(name=work.__name__, arguments=arguments), namespace)
    return namespace[work.__name__]
