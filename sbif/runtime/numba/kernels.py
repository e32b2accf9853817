"""The numba backend's kernels and the interpreter that runs a lowered graph (`program`) with them.

Each kernel is the semantics of the NumPy op of the same name in `sbif/ops` (spec/ops.md) on C-contiguous arrays
it writes into, checked against TensorFlow's op vectors (tests/test_numba_runtime.py). Float arithmetic stays in
the data's dtype (constants are float32 values, never Python floats, which would widen float32 to float64) and no
fast-math flag is used, so every operation is rounded as spec/ops.md says, NaN and inf kept; the one liberty
spec/ops.md grants, fused multiply-adds in the sums of products (in an order it leaves free), is taken by the dense
products, on panels and as dot products (`intrinsics`: LLVM IR written out, each with its order of summation).
Where TF 1.15 computes a function with its own approximation (tanh; exp on 8-wide packets), the kernel uses that
approximation, which vectorises where a call to libm would not.

The interpreter and its kernels are compiled once per machine, not per model (`aot`; numba's JIT and its disk cache,
`jit_cache`, where the extension module cannot be built). To keep
that one compilation short, they are few functions of plain loops: one kernel per op family with the op chosen by
a code outside its loops, float64 only where exported graphs use it (pre-processing and action post-processing).
Imported only by the numba backend (never by `import sbif`).
"""
from __future__ import annotations

import math

import numpy as np
from numba import carray, njit

from ...ops.elementwise import Selu, Sigmoid, Softplus
from . import jit_cache
from .host import PARAMETERS
from .encoding import (CHUNK_COUNTER, FLAG_STRIDE, LANE_DONE, LANE_FAILED, LANE_REQUEST, LANE_STATE, MAILBOX_CHUNK,
                       MAILBOX_CHUNKS, MAILBOX_INPUT0, MAILBOX_INPUT0_ROW_BYTES, MAILBOX_KIND, MAILBOX_OUTPUTS,
                       MAILBOX_PROGRAM, MAILBOX_PROGRAM_SIZE, MAILBOX_ROWS, MAILBOX_SCRATCH, MAILBOX_SCRATCH_PER_LANE,
                       MAILBOX_SPINS, MAILBOX_WEIGHTS, REQUEST_INTERPRETER, SERVE_IDLE, SERVE_TASKS)
from .encoding import (ADD, ADD_BIAS, ARENA_HEADER, ARENA_OFFSET_BYTES, ARGMAX, BINARY, CAST, CLIP, CONV2D,
                       CONV_CHANNELS, CONV_HEIGHT, CONV_KERNEL_H, CONV_KERNEL_W, CONV_OUT_H, CONV_OUT_W,
                       CONV_PAD_LEFT, CONV_PAD_TOP, CONV_STRIDE_H, CONV_STRIDE_W, CONV_WIDTH, COPY, COPY_COLUMNS,
                       COPY_COLUMNS_OFFSET, ELU, ERF, EXP, FIRST_OPERAND, FLOAT32, FLOAT64, FOURTH_OPERAND,
                       INSTRUCTION_DTYPE, INSTRUCTION_LENGTH, INSTRUCTION_OPCODE, INSTRUCTION_SUB, INT32, LAYER_NORM,
                       LAYER_NORM_EPSILON, LESS, LINEAR, LOG, MATMUL, MUL, NEG, ONE_HOT, OPERAND_BASE, OPERAND_COLUMNS,
                       OPERAND_PER_FIRST, OPERAND_PER_OUT_ROW, OPERAND_PER_OUT_ROWS, OPERAND_PER_ROWS, OPERAND_ROWS,
                       OPERAND_ROWS_PER_N, OPERAND_SPACE, PANEL, PANELS, REDUCE_MEAN, RELU, RELU6, ROUND,
                       SECOND_OPERAND, SELU, SIGMOID, SOFTMAX, SOFTPLUS, SOFTSIGN, SUB, SWISH, TAKE_COLUMNS,
                       TAKE_COLUMNS_OFFSET, TANH, THIRD_OPERAND, TRANSPOSE, TRANSPOSE_SIZE0, TRANSPOSE_SIZE1,
                       TRANSPOSE_SIZE2, TRANSPOSE_SIZE3, TRANSPOSE_STEP0, TRANSPOSE_STEP1, TRANSPOSE_STEP2,
                       TRANSPOSE_STEP3, TRANSPOSED, UINT8, UNARY, UNARY_ALPHA, WHERE)
from .intrinsics import (CACHE_LINE_BYTES, FLOAT32_BYTES, ROW_DOT_OUTPUTS, ROW_TILE_HALF_PANELS, ROW_TILE_PANELS,
                         ROW_TILE_QUARTER_PANELS, TILE_ROWS, GROUP_DOT_OUTPUTS, conv_tile_row, conv_tile_row_partial,
                         conv_tile_rows, conv_tile_rows_partial, copy_floats, dots_row,
                         dots_row_one_output, dots_rows, dots_rows_one_output, fetch_add, float_from_bits,
                         load_acquire, pointer, prefetch, spin_pause, store_release, tile_row, tile_row_half,
                         tile_row_one_panel, tile_row_one_panel_partial, tile_row_quarter, tile_rows,
                         tile_rows_partial)

#: numba's disk cache keyed on everything the machine code depends on (`jit_cache`), not on this file alone
JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
jit_cache.install()

# float32 constants (module globals are frozen into the compiled code with their type)
ZERO, ONE, SIX, NINE = (np.float32(v) for v in (0.0, 1.0, 6.0, 9.0))
#: Eigen's generic_fast_tanh_float (TF 1.15's float32 tanh on both of its paths), spec/ops.md "tanh"
A1, A3, A5, A7, A9, A11, A13 = (np.float32(a) for a in (
    4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08, -8.60467152213735e-11,
    2.00018790482477e-13, -2.76076847742355e-16))
B0, B2, B4, B6 = (np.float32(b) for b in (
    4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06))
#: tanh = x * numerator(x^2) / denominator(x^2), coefficients from the highest power (`horner`)
TANH_NUMERATOR, TANH_DENOMINATOR = (A13, A11, A9, A7, A5, A3, A1), (B6, B4, B2, B0)
SELU_SCALE, SELU_SCALE_ALPHA = np.float32(Selu.SCALE), np.float32(Selu.SCALE_ALPHA)
#: Eigen's AVX pexp<Packet8f> (TF 1.15's float32 exp on 8-wide packets, built without FMA), spec/ops.md "exp"
EXP_HI, EXP_LO = np.float32(88.3762626647950), np.float32(-88.3762626647949)
LOG2E, HALF, BIAS = np.float32(1.44269504088896341), np.float32(0.5), np.float32(127.0)
LN2_HI, LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
#: exp's polynomial in the reduced argument, coefficients from the highest power (`horner`)
EXP_POLYNOMIAL = tuple(np.float32(p) for p in (
    1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
#: the bits of a float32's fraction: an exponent m placed above them is the float 2^(m - BIAS)
FRACTION_BITS = np.finfo(np.float32).nmant
#: softplus switches branch at log(eps) + 2, computed in float32 as TF does
SOFTPLUS_THRESHOLD = Softplus.threshold(np.float32)
#: TF's float32 sigmoid is exactly 0 below -cutoff and 1 above it
SIGMOID_CUTOFF = np.float32(Sigmoid.FLOAT32_CUTOFF)
LOWEST = np.finfo(np.float32).min


# -- element-wise ---------------------------------------------------------------------------------------------------
@njit(**JIT)
def horner(x, coefficients):
    """coefficients[0] x^(n-1) + ... + coefficients[n-1] by Horner's rule, each step a rounded product then a
    rounded sum (no fused multiply-add), as Eigen evaluates TF's float32 polynomials without FMA."""
    total = coefficients[0]
    for coefficient in coefficients[1:]:
        total = total * x + coefficient
    return total


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
    y = horner(r, EXP_POLYNOMIAL) * r2 + r
    y = y + ONE
    scale = float_from_bits(np.int32(np.int32(m + BIAS) << FRACTION_BITS))  # 2^m (+inf when m = 128)
    result = y * scale
    return v if v != v or v > result else result


@njit(**JIT)
def tanh_f32(v):
    """TF's float32 tanh: clamp to [-9, 9], then Eigen's rational approximation (vectorisable, bit for bit TF's)."""
    x = NINE if v > NINE else (-NINE if v < -NINE else v)  # comparisons with NaN are false: NaN stays NaN
    x2 = x * x
    return x * horner(x2, TANH_NUMERATOR) / horner(x2, TANH_DENOMINATOR)


@njit(**JIT)
def sigmoid_f32(v):
    """TF 1.15's float32 sigmoid: exactly 0 below -18, 1 above 18, else 1 / (1 + exp(-x))."""
    if v < -SIGMOID_CUTOFF:
        return ZERO
    if v > SIGMOID_CUTOFF:
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
    elif sub == ERF:  # the reference's method: libm's double erf, rounded once to float32
        for i in range(size):
            y[i] = math.erf(np.float64(x[i]))
    else:  # LEAKY_RELU: a selection, not max(x, alpha x)
        for i in range(size):
            y[i] = x[i] if x[i] > ZERO else x[i] * alpha


@njit(**JIT)
def binary_op(sub, a, b):
    """a BINARY_OPS[sub] b (not less): inlined into loops that LLVM unswitches on `sub`."""
    if sub == ADD:
        return a + b
    if sub == SUB:
        return a - b
    if sub == MUL:
        return a * b
    return a / b


@njit(**JIT)
def binary_flat(sub, x, y, out):
    """out = x BINARY_OPS[sub] y on flat arrays, x and y each of out's size or one value: a vectorised loop per op
    and case (faster than `binary_op`'s unswitched loops on wide operands)."""
    size = out.size
    if x.size == size and y.size == size:
        if sub == ADD:
            for i in range(size):
                out[i] = x[i] + y[i]
        elif sub == SUB:
            for i in range(size):
                out[i] = x[i] - y[i]
        elif sub == MUL:
            for i in range(size):
                out[i] = x[i] * y[i]
        else:
            for i in range(size):
                out[i] = x[i] / y[i]
    elif x.size == size:
        value = y[0]
        if sub == ADD:
            for i in range(size):
                out[i] = x[i] + value
        elif sub == SUB:
            for i in range(size):
                out[i] = x[i] - value
        elif sub == MUL:
            for i in range(size):
                out[i] = x[i] * value
        else:
            for i in range(size):
                out[i] = x[i] / value
    else:
        value = x[0]
        if sub == ADD:
            for i in range(size):
                out[i] = value + y[i]
        elif sub == SUB:
            for i in range(size):
                out[i] = value - y[i]
        elif sub == MUL:
            for i in range(size):
                out[i] = value * y[i]
        else:
            for i in range(size):
                out[i] = value / y[i]


@njit(**JIT)
def binary(sub, x, y, out):
    """out = x BINARY_OPS[sub] y (not less) on 2-D views [R, C]; x and y are each full, a row [1, C], a column
    [R, 1] or [1, 1]. On the flat arrays: operands of out's size or of one value in one loop (`binary_flat`); a
    full operand with a row or a column row by row, the full one read at out's own index; any other pair (a row
    with a column) element by element. No view per row: making one costs more than a narrow row's arithmetic (the
    action heads' few columns), and reading an operand at another offset than out's keeps LLVM from vectorising."""
    rows, columns = out.shape
    size = out.size
    xs, ys, o = x.reshape(-1), y.reshape(-1), out.reshape(-1)
    if (x.size == size or x.size == 1) and (y.size == size or y.size == 1):
        binary_flat(sub, xs, ys, o)
    elif x.size == size and y.shape[0] == 1:  # a row
        for r in range(rows):
            at = r * columns
            for c in range(columns):
                o[at + c] = binary_op(sub, xs[at + c], ys[c])
    elif y.size == size and x.shape[0] == 1:
        for r in range(rows):
            at = r * columns
            for c in range(columns):
                o[at + c] = binary_op(sub, xs[c], ys[at + c])
    elif x.size == size:  # y a column
        for r in range(rows):
            at, value = r * columns, ys[r]
            for c in range(columns):
                o[at + c] = binary_op(sub, xs[at + c], value)
    elif y.size == size:
        for r in range(rows):
            at, value = r * columns, xs[r]
            for c in range(columns):
                o[at + c] = binary_op(sub, value, ys[at + c])
    else:  # a row with a column: strides of 0 or 1 between rows and columns
        x_row, x_column = int(x.shape[0] != 1), int(x.shape[1] != 1)
        y_row, y_column = int(y.shape[0] != 1), int(y.shape[1] != 1)
        for r in range(rows):
            for c in range(columns):
                o[r * columns + c] = binary_op(sub, xs[r * x_row + c * x_column], ys[r * y_row + c * y_column])


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
def where(condition, x, y, out):
    """out = condition ? x : y, element words copied as they are (NaN payloads, -0 kept); condition, x and y each
    full, a row [1, C], a column [R, 1] or [1, 1], as in `binary`."""
    rows, columns = out.shape
    kr, kc = int(condition.shape[0] != 1), int(condition.shape[1] != 1)
    xr, xc = int(x.shape[0] != 1), int(x.shape[1] != 1)
    yr, yc = int(y.shape[0] != 1), int(y.shape[1] != 1)
    for r in range(rows):
        k = condition[r * kr]
        a = x[r * xr]
        b = y[r * yr]
        o = out[r]
        for c in range(columns):
            o[c] = a[c * xc] if k[c * kc] else b[c * yc]


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


@njit(**JIT)
def transpose(x, y, sizes, steps):
    """Each row of y, seen as blocks [s0, s1, s2, s3] in row-major order, from the row of x: element (a, b, c, d)
    is x's element a * t0 + b * t1 + c * t2 + d * t3 (`program.transpose_blocks`)."""
    s0, s1, s2, s3 = sizes
    t0, t1, t2, t3 = steps
    for r in range(y.shape[0]):
        k = 0
        for a in range(s0):
            for b in range(s1):
                for c in range(s2):
                    start = a * t0 + b * t1 + c * t2
                    for d in range(s3):
                        y[r, k] = x[r, start + d * t3]
                        k += 1


# -- network ops ---------------------------------------------------------------------------------------------------
@njit(**JIT)
def dense_dots(x, wt, y):
    """y = x @ w for x [R, K] and w given transposed (wt [N, K]), for few outputs N: groups of TILE_ROWS rows by
    GROUP_DOT_OUTPUTS outputs, the last rows and a single row ROW_DOT_OUTPUTS outputs at a time
    (`intrinsics.dots_rows` and the others: every output summed in the same order)."""
    rows, depth = x.shape
    width = wt.shape[0]
    x_at, w_at, y_at = x.ctypes.data, wt.ctypes.data, y.ctypes.data
    for r in range(0, rows - rows % TILE_ROWS, TILE_ROWS):
        x_row, y_row = x_at + FLOAT32_BYTES * r * depth, y_at + FLOAT32_BYTES * r * width
        n = 0
        while n + GROUP_DOT_OUTPUTS <= width:
            dots_rows(x_row, depth, w_at + FLOAT32_BYTES * n * depth, depth, y_row + FLOAT32_BYTES * n, width)
            n += GROUP_DOT_OUTPUTS
        if n < width:  # (GROUP_DOT_OUTPUTS is 2: one output at most is left)
            dots_rows_one_output(x_row, depth, w_at + FLOAT32_BYTES * n * depth, depth, y_row + FLOAT32_BYTES * n,
                                 width)
    for r in range(rows - rows % TILE_ROWS, rows):
        x_row, y_row = x_at + FLOAT32_BYTES * r * depth, y_at + FLOAT32_BYTES * r * width
        n = 0
        while n + ROW_DOT_OUTPUTS <= width:
            dots_row(x_row, depth, w_at + FLOAT32_BYTES * n * depth, depth, y_row + FLOAT32_BYTES * n, width)
            n += ROW_DOT_OUTPUTS
        while n < width:
            dots_row_one_output(x_row, depth, w_at + FLOAT32_BYTES * n * depth, depth, y_row + FLOAT32_BYTES * n,
                                width)
            n += 1


#: rows of w `matmul_axpy` adds per pass over an output row (the loop body below is written out for this many)
AXPY_ROWS_PER_PASS = 4


@njit(**JIT)
def matmul_axpy(x, w, y):
    """y = x @ w for x [R, K] and w [K, N] with few inputs K: each output row is built by adding x[r, k] times
    row k of w, in order of k (vectorised along the row), AXPY_ROWS_PER_PASS rows of w per pass over y: the same
    additions in the same order, with fewer loads and stores of y."""
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
        while k + AXPY_ROWS_PER_PASS <= depth:
            a0, a1, a2, a3 = xr[k], xr[k + 1], xr[k + 2], xr[k + 3]
            w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
            for n in range(width):
                yr[n] = (((yr[n] + a0 * w0[n]) + a1 * w1[n]) + a2 * w2[n]) + a3 * w3[n]
            k += AXPY_ROWS_PER_PASS
        while k < depth:
            a = xr[k]
            wk = w[k]
            for n in range(width):
                yr[n] = yr[n] + a * wk[n]
            k += 1


# -- dense products on weights stored in panels ------------------------------------------------------------------
#: the rows of x a block of tiles reads (`host`: an eighth of the L2 cache): while they stay in the L2 cache, each
#: panel is read from memory once per block and from the L1 cache by the block's other tiles
ROW_BLOCK_BYTES = PARAMETERS.row_block_bytes


@njit(**JIT)
def dense_panels(x, w, b, y):
    """y = x @ w + b for x [R, K], w in panels (PANEL) and b [1, N]: tiles of TILE_ROWS rows by one panel, over
    blocks of rows (ROW_BLOCK_BYTES) so that each panel is read from memory once per block and from the caches by
    the block's other tiles (from L1 where a panel, PANEL x K floats, fits it; from L2 otherwise); the
    last rows and a single row as tiles of one row by ROW_TILE_PANELS panels (as many vector sums), then by half and
    a quarter as many, then one panel at a time. Every tile adds
    the terms of a sum in the same order (`intrinsics.tile_rows` and the others), so a row's result does not
    depend on the tiling (nor on the batch it came in)."""
    rows, depth = x.shape
    width = y.shape[1]
    full = width // PANEL
    x_at, w_at, b_at, y_at = x.ctypes.data, w.ctypes.data, b.ctypes.data, y.ctypes.data
    panel_bytes = depth * PANEL * FLOAT32_BYTES
    block = max(TILE_ROWS, ROW_BLOCK_BYTES // max(FLOAT32_BYTES * depth, 1) // TILE_ROWS * TILE_ROWS)
    first = 0
    last = rows - rows % TILE_ROWS
    while first < last:
        end = min(last, first + block)
        for p in range(-(-width // PANEL)):
            for r in range(first, end, TILE_ROWS):
                if p < full:
                    tile_rows(x_at + FLOAT32_BYTES * r * depth, depth, w_at + p * panel_bytes, depth,
                              b_at + FLOAT32_BYTES * p * PANEL, y_at + FLOAT32_BYTES * (r * width + p * PANEL), width,
                              PANEL)
                else:
                    tile_rows_partial(x_at + FLOAT32_BYTES * r * depth, depth, w_at + p * panel_bytes, depth,
                                      b_at + FLOAT32_BYTES * p * PANEL, y_at + FLOAT32_BYTES * (r * width + p * PANEL),
                                      width, width - p * PANEL)
        first = end
    for r in range(last, rows):
        x_row, y_row = x_at + FLOAT32_BYTES * r * depth, y_at + FLOAT32_BYTES * r * width
        p = 0
        while p + ROW_TILE_PANELS <= full:
            tile_row(x_row, depth, w_at + p * panel_bytes, depth, b_at + FLOAT32_BYTES * p * PANEL,
                     y_row + FLOAT32_BYTES * p * PANEL, width, ROW_TILE_PANELS * PANEL)
            p += ROW_TILE_PANELS
        if p + ROW_TILE_HALF_PANELS <= full:
            tile_row_half(x_row, depth, w_at + p * panel_bytes, depth, b_at + FLOAT32_BYTES * p * PANEL,
                          y_row + FLOAT32_BYTES * p * PANEL, width, ROW_TILE_HALF_PANELS * PANEL)
            p += ROW_TILE_HALF_PANELS
        if p + ROW_TILE_QUARTER_PANELS <= full:
            tile_row_quarter(x_row, depth, w_at + p * panel_bytes, depth, b_at + FLOAT32_BYTES * p * PANEL,
                             y_row + FLOAT32_BYTES * p * PANEL, width, ROW_TILE_QUARTER_PANELS * PANEL)
            p += ROW_TILE_QUARTER_PANELS
        while p < full:
            tile_row_one_panel(x_row, depth, w_at + p * panel_bytes, depth, b_at + FLOAT32_BYTES * p * PANEL,
                               y_row + FLOAT32_BYTES * p * PANEL, width, PANEL)
            p += 1
        if full * PANEL < width:
            tile_row_one_panel_partial(x_row, depth, w_at + p * panel_bytes, depth, b_at + FLOAT32_BYTES * p * PANEL,
                                       y_row + FLOAT32_BYTES * p * PANEL, width, width - p * PANEL)


@njit(**JIT)
def add_bias(y, b):
    """y[r, :] += b: the bias of linear and conv2d, added after the product is rounded (as TF); by offsets in the
    flat array, as `binary`."""
    rows, width = y.shape
    flat = y.reshape(-1)
    for r in range(rows):
        at = r * width
        for n in range(width):
            flat[at + n] = flat[at + n] + b[n]


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


@njit(**JIT)
def conv2d_panels(x, w, b, y, kernel_h, kernel_w, stride_h, stride_w):
    """NHWC x [B, H, W, C] convolved without padding (every patch inside the image) with the HWIO kernel as a
    matrix [kh * kw * C, O] in panels (PANEL), plus the bias b [1, O], into y [B, Ho, Wo, O]: per image and panel,
    tiles of TILE_ROWS consecutive pixels (`intrinsics.conv_tile_rows`) reading their patches where they are in x,
    then one pixel at a time for the rest. The sums are those of `dense_panels` on the patch columns, in the same
    order of k whatever the tile, so a pixel's result depends neither on its tile nor on the batch; nothing is
    written but y (the image, read by every panel, stays in the L2 cache, and a panel in L1 where it fits)."""
    batch, height, width, channels = x.shape
    _, out_h, out_w, filters = y.shape
    pixels = out_h * out_w
    span = kernel_w * channels
    panel_bytes = kernel_h * span * PANEL * FLOAT32_BYTES
    full = filters // PANEL
    pixel_step, out_row_step, segment_step = stride_w * channels, stride_h * width * channels, width * channels
    x_at, w_at, b_at, y_at = x.ctypes.data, w.ctypes.data, b.ctypes.data, y.ctypes.data
    last = pixels - pixels % TILE_ROWS
    for r in range(batch):
        image = x_at + FLOAT32_BYTES * r * height * width * channels
        outputs = y_at + FLOAT32_BYTES * r * pixels * filters
        for p in range(-(-filters // PANEL)):
            panel, bias, column = w_at + p * panel_bytes, b_at + FLOAT32_BYTES * p * PANEL, p * PANEL
            for m in range(0, last, TILE_ROWS):
                target = outputs + FLOAT32_BYTES * (m * filters + column)
                if p < full:
                    conv_tile_rows(image, m, out_w, pixel_step, out_row_step, segment_step, kernel_h, span, panel,
                                   bias, target, filters, PANEL)
                else:
                    conv_tile_rows_partial(image, m, out_w, pixel_step, out_row_step, segment_step, kernel_h, span,
                                           panel, bias, target, filters, filters - column)
            for m in range(last, pixels):
                target = outputs + FLOAT32_BYTES * (m * filters + column)
                if p < full:
                    conv_tile_row(image, m, out_w, pixel_step, out_row_step, segment_step, kernel_h, span, panel,
                                  bias, target, filters, PANEL)
                else:
                    conv_tile_row_partial(image, m, out_w, pixel_step, out_row_step, segment_step, kernel_h, span,
                                          panel, bias, target, filters, filters - column)


#: how many output rows ahead im2col prefetches its input rows
PREFETCH_ROWS_AHEAD = 2


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
            # several rows at once leave the hardware prefetchers behind
            ahead, ahead_i = divmod(r * out_h + i + PREFETCH_ROWS_AHEAD, out_h)
            first_row = ahead_i * stride_h - pad_top
            if ahead_i > 0:
                first_row = max(first_row, first_row - stride_h + kernel_h)
            first_row, last_row = max(first_row, 0), min(ahead_i * stride_h - pad_top + kernel_h, height)
            if ahead < batch and first_row < last_row:
                start = x_at + (ahead * height + first_row) * row_bytes
                for line in range(0, (last_row - first_row) * row_bytes, CACHE_LINE_BYTES):
                    prefetch(start + line)
            for j in range(out_w):
                target = columns[r, i, j]
                at = ((r * out_h + i) * out_w + j) * depth
                col = j * stride_w - pad_left
                for p in range(kernel_h):
                    row = i * stride_h + p - pad_top
                    k = p * span
                    if 0 <= row < height and 0 <= col and col + kernel_w <= width:
                        copy_floats(columns_at + FLOAT32_BYTES * (at + k),
                                    x_at + FLOAT32_BYTES * ((r * height + row) * width + col) * channels, span)
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
    rows of NaN, -inf and -FLT_MAX give 0). By offsets in the flat array, as `binary`."""
    rows, width = x.shape
    flat = x.reshape(-1)
    for r in range(rows):
        best = 0
        best_value = LOWEST
        at = r * width
        for j in range(width):
            if flat[at + j] > best_value:
                best = j
                best_value = flat[at + j]
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
# An instruction at `at` is decoded by the names of `encoding`: its header fields at at + INSTRUCTION_*, its
# operands from at + FIRST_OPERAND on (fields at OPERAND_* from their start), its extras at at + UNARY_ALPHA etc.
@njit(**JIT)
def start_of(program, at, frame):
    """The byte offset of the operand at `at` (`program.View.encode`) in its buffer, for a call's frame
    (n, first, rows, out_first, out_rows): n rows from row `first` of a chunk of `rows` rows, which starts at
    row `out_first` of the request's `out_rows` rows."""
    n, first, rows, out_first, out_rows = frame
    return (program[at + OPERAND_BASE] + program[at + OPERAND_PER_ROWS] * rows
            + program[at + OPERAND_PER_FIRST] * first + program[at + OPERAND_PER_OUT_ROWS] * out_rows
            + program[at + OPERAND_PER_OUT_ROW] * (out_first + first))


@njit(**JIT)
def view_of(program, at, frame, bases, dtype, columns):
    """The operand at `at` as a 2-D array of `dtype` with `columns` columns over the buffer's memory, without a
    reference count (the buffers are the interpreter's arguments, alive throughout)."""
    rows = program[at + OPERAND_ROWS] + program[at + OPERAND_ROWS_PER_N] * frame[0]
    return carray(pointer(bases[program[at + OPERAND_SPACE]] + start_of(program, at, frame), dtype), (rows, columns))


@njit(**JIT)
def operand(program, at, frame, bases, dtype):
    """The 2-D view of the operand at `at` as `dtype`."""
    return view_of(program, at, frame, bases, dtype, program[at + OPERAND_COLUMNS])


@njit(**JIT)
def words(program, at, frame, bases, dtype, size):
    """A byte operand as a 2-D view of `size`-byte words (its columns in bytes divided by `size`)."""
    return view_of(program, at, frame, bases, dtype, program[at + OPERAND_COLUMNS] // size)


@njit(**JIT)
def extra_float(program, at):
    """The float an extra at `at` holds (its float64 bits: `encoding.float_bits`), as float32."""
    return np.float32(program[at:at + 1].view(np.float64)[0])


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
    unary(program[at + INSTRUCTION_SUB], operand(program, at + FIRST_OPERAND, frame, bases, np.float32).reshape(-1),
          operand(program, at + SECOND_OPERAND, frame, bases, np.float32).reshape(-1),
          extra_float(program, at + UNARY_ALPHA))


@njit(**JIT)
def run_binary(program, at, frame, bases, dtype):
    x = operand(program, at + FIRST_OPERAND, frame, bases, dtype)
    y = operand(program, at + SECOND_OPERAND, frame, bases, dtype)
    sub = program[at + INSTRUCTION_SUB]
    if sub == LESS:
        less(x, y, operand(program, at + THIRD_OPERAND, frame, bases, np.bool_))
    else:
        binary(sub, x, y, operand(program, at + THIRD_OPERAND, frame, bases, dtype))


@njit(**JIT)
def run_clip(program, at, frame, bases, dtype):
    clip(operand(program, at + FIRST_OPERAND, frame, bases, dtype),
         operand(program, at + SECOND_OPERAND, frame, bases, dtype),
         operand(program, at + THIRD_OPERAND, frame, bases, dtype),
         operand(program, at + FOURTH_OPERAND, frame, bases, dtype))


@njit(**JIT)
def run_cast(program, at, frame, bases):
    """CAST: the source's dtype code is the instruction's `sub`, the target's its dtype."""
    x = operand(program, at + FIRST_OPERAND, frame, bases, np.uint8).reshape(-1)
    if program[at + INSTRUCTION_DTYPE] == FLOAT32:
        cast_to_float32(program[at + INSTRUCTION_SUB], x,
                        operand(program, at + SECOND_OPERAND, frame, bases, np.float32).reshape(-1))
    else:  # float32 to float64
        cast(x.view(np.float32), operand(program, at + SECOND_OPERAND, frame, bases, np.float64).reshape(-1))


@njit(**JIT)
def copy_words(opcode, x, y, offset):
    if opcode == COPY:
        copy(x.reshape(-1), y.reshape(-1))
    elif opcode == COPY_COLUMNS:
        copy_columns(x, y, offset)
    else:
        take_columns(x, offset, y)


#: the words the copies move, widest first: bytes of a uint64, of a uint32
WORD64_BYTES, WORD32_BYTES = np.dtype(np.uint64).itemsize, np.dtype(np.uint32).itemsize


@njit(**JIT)
def run_copy(program, at, frame, bases):
    """COPY, COPY_COLUMNS and TAKE_COLUMNS: moves of bytes, done in the widest words that divide every width and
    offset involved."""
    a, b = at + FIRST_OPERAND, at + SECOND_OPERAND
    opcode = program[at + INSTRUCTION_OPCODE]
    if opcode == COPY_COLUMNS:
        offset = program[at + COPY_COLUMNS_OFFSET]
    elif opcode == TAKE_COLUMNS:
        offset = program[at + TAKE_COLUMNS_OFFSET]
    else:
        offset = 0
    widths = program[a + OPERAND_COLUMNS] | program[b + OPERAND_COLUMNS] | offset
    if widths % WORD64_BYTES == 0:
        copy_words(opcode, words(program, a, frame, bases, np.uint64, WORD64_BYTES),
                   words(program, b, frame, bases, np.uint64, WORD64_BYTES), offset // WORD64_BYTES)
    elif widths % WORD32_BYTES == 0:
        copy_words(opcode, words(program, a, frame, bases, np.uint32, WORD32_BYTES),
                   words(program, b, frame, bases, np.uint32, WORD32_BYTES), offset // WORD32_BYTES)
    else:
        copy_words(opcode, words(program, a, frame, bases, np.uint8, 1),
                   words(program, b, frame, bases, np.uint8, 1), offset)


#: the words a transpose moves: one element each, by its bytes (the instruction's `sub`)
WORD16_BYTES = np.dtype(np.uint16).itemsize


@njit(**JIT)
def run_where(program, at, frame, bases):
    """WHERE (condition, x, y, z), x, y and z moved in words of the element's size (the instruction's `sub`)."""
    condition = operand(program, at + FIRST_OPERAND, frame, bases, np.bool_)
    a, b, c = at + SECOND_OPERAND, at + THIRD_OPERAND, at + FOURTH_OPERAND
    size = program[at + INSTRUCTION_SUB]
    if size == WORD64_BYTES:
        where(condition, operand(program, a, frame, bases, np.uint64), operand(program, b, frame, bases, np.uint64),
              operand(program, c, frame, bases, np.uint64))
    elif size == WORD32_BYTES:
        where(condition, operand(program, a, frame, bases, np.uint32), operand(program, b, frame, bases, np.uint32),
              operand(program, c, frame, bases, np.uint32))
    elif size == WORD16_BYTES:
        where(condition, operand(program, a, frame, bases, np.uint16), operand(program, b, frame, bases, np.uint16),
              operand(program, c, frame, bases, np.uint16))
    else:
        where(condition, operand(program, a, frame, bases, np.uint8), operand(program, b, frame, bases, np.uint8),
              operand(program, c, frame, bases, np.uint8))


@njit(**JIT)
def run_transpose(program, at, frame, bases):
    """TRANSPOSE (x, y as bytes), its blocks in the extras (`encoding.TRANSPOSE_GEOMETRY`), moved in words of the
    element's size."""
    a, b = at + FIRST_OPERAND, at + SECOND_OPERAND
    size = program[at + INSTRUCTION_SUB]
    sizes = (program[at + TRANSPOSE_SIZE0], program[at + TRANSPOSE_SIZE1], program[at + TRANSPOSE_SIZE2],
             program[at + TRANSPOSE_SIZE3])
    steps = (program[at + TRANSPOSE_STEP0], program[at + TRANSPOSE_STEP1], program[at + TRANSPOSE_STEP2],
             program[at + TRANSPOSE_STEP3])
    if size == WORD64_BYTES:
        transpose(words(program, a, frame, bases, np.uint64, size), words(program, b, frame, bases, np.uint64, size),
                  sizes, steps)
    elif size == WORD32_BYTES:
        transpose(words(program, a, frame, bases, np.uint32, size), words(program, b, frame, bases, np.uint32, size),
                  sizes, steps)
    elif size == WORD16_BYTES:
        transpose(words(program, a, frame, bases, np.uint16, size), words(program, b, frame, bases, np.uint16, size),
                  sizes, steps)
    else:
        transpose(words(program, a, frame, bases, np.uint8, 1), words(program, b, frame, bases, np.uint8, 1),
                  sizes, steps)


@njit(**JIT)
def run_dense(program, at, frame, bases):
    """LINEAR (x, w, b, y), MATMUL (x, w, y) and ADD_BIAS (y, b), float32. `sub` says how the weights are stored:
    PANELS (`dense_panels`; a MATMUL then comes as a LINEAR with zero bias), TRANSPOSED (`dense_dots`), or PLAIN,
    as they are (`matmul_axpy`)."""
    x = operand(program, at + FIRST_OPERAND, frame, bases, np.float32)
    w = operand(program, at + SECOND_OPERAND, frame, bases, np.float32)
    opcode = program[at + INSTRUCTION_OPCODE]
    if opcode == ADD_BIAS:
        add_bias(x, w[0])
        return
    y = operand(program, at + (FOURTH_OPERAND if opcode == LINEAR else THIRD_OPERAND), frame, bases, np.float32)
    layout = program[at + INSTRUCTION_SUB]
    if layout == PANELS:
        dense_panels(x, w, operand(program, at + THIRD_OPERAND, frame, bases, np.float32), y)
        return
    if layout == TRANSPOSED:
        dense_dots(x, w, y)
    else:
        matmul_axpy(x, w, y)
    if opcode == LINEAR:
        add_bias(y, operand(program, at + THIRD_OPERAND, frame, bases, np.float32)[0])


@njit(**JIT)
def run_conv2d(program, at, frame, bases):
    """CONV2D (x, w, b, y), its geometry in the extras (`encoding.CONV_GEOMETRY`); `sub` says how the kernel is
    stored: PANELS (`conv2d_panels`, a convolution without padding) or as it is, HWIO (`conv2d`)."""
    w = operand(program, at + SECOND_OPERAND, frame, bases, np.float32)
    b = operand(program, at + THIRD_OPERAND, frame, bases, np.float32)
    y = operand(program, at + FOURTH_OPERAND, frame, bases, np.float32)
    n = frame[0]
    channels = program[at + CONV_CHANNELS]
    x = operand(program, at + FIRST_OPERAND, frame, bases, np.float32).reshape(
        (n, program[at + CONV_HEIGHT], program[at + CONV_WIDTH], channels))
    y = y.reshape((n, program[at + CONV_OUT_H], program[at + CONV_OUT_W], y.shape[1]))
    if program[at + INSTRUCTION_SUB] == PANELS:
        conv2d_panels(x, w, b, y, program[at + CONV_KERNEL_H], program[at + CONV_KERNEL_W],
                      program[at + CONV_STRIDE_H], program[at + CONV_STRIDE_W])
        return
    conv2d(x, w.reshape((program[at + CONV_KERNEL_H], program[at + CONV_KERNEL_W], channels, w.shape[1])), b[0], y,
           program[at + CONV_STRIDE_H], program[at + CONV_STRIDE_W], program[at + CONV_PAD_TOP],
           program[at + CONV_PAD_LEFT])


@njit(**JIT)
def run_rows(program, at, frame, bases):
    """The ops over the last axis: LAYER_NORM (x, gamma, beta, y), REDUCE_MEAN, SOFTMAX, ARGMAX, ONE_HOT (x, y),
    INVERSE_CDF_SAMPLE (p, u, y)."""
    a, b, c = at + FIRST_OPERAND, at + SECOND_OPERAND, at + THIRD_OPERAND
    opcode = program[at + INSTRUCTION_OPCODE]
    if opcode == ONE_HOT:
        target = operand(program, b, frame, bases, np.float32)
        if program[at + INSTRUCTION_DTYPE] == INT32:
            one_hot(operand(program, a, frame, bases, np.int32).reshape(-1), target)
        else:
            one_hot(operand(program, a, frame, bases, np.int64).reshape(-1), target)
        return
    x = operand(program, a, frame, bases, np.float32)
    if opcode == LAYER_NORM:
        layer_norm(x, operand(program, b, frame, bases, np.float32)[0],
                   operand(program, c, frame, bases, np.float32)[0], extra_float(program, at + LAYER_NORM_EPSILON),
                   operand(program, at + FOURTH_OPERAND, frame, bases, np.float32))
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
    starts with ARENA_HEADER uint64 byte offsets: the scratch, the outputs, then the MAX_INPUTS inputs."""
    base = arena.ctypes.data
    at = arena[:ARENA_HEADER * ARENA_OFFSET_BYTES].view(np.uint64)  # as addresses are: one type of `bases` for `run`
    run(program, (1, 0, 1, 0, 1), (weights.ctypes.data, base + at[0], base + at[1], base + at[2], base + at[3],
                                   base + at[4], base + at[5]))


@njit(**JIT)
def run_lane(mailbox, flags, lane):
    """Lane `lane` of the interpreter request in `mailbox` (encoding's MAILBOX_FIELDS): the whole program on the
    chunks it takes from the counter flags[CHUNK_COUNTER], one after another, in its own part of the scratch, until
    none is left. The chunks' bounds depend on the rows and the chunk size alone, so which lane runs a chunk changes
    no bit of it."""
    program = carray(pointer(mailbox[MAILBOX_PROGRAM], np.int64), mailbox[MAILBOX_PROGRAM_SIZE])
    rows, chunk, chunks = mailbox[MAILBOX_ROWS], mailbox[MAILBOX_CHUNK], mailbox[MAILBOX_CHUNKS]
    weights, outputs = np.uint64(mailbox[MAILBOX_WEIGHTS]), np.uint64(mailbox[MAILBOX_OUTPUTS])
    scratch = np.uint64(mailbox[MAILBOX_SCRATCH] + lane * mailbox[MAILBOX_SCRATCH_PER_LANE])
    inputs, row_bytes = mailbox[MAILBOX_INPUT0:MAILBOX_INPUT0 + 4], mailbox[MAILBOX_INPUT0_ROW_BYTES:]
    counter = flags.ctypes.data + CHUNK_COUNTER * flags.itemsize
    index = fetch_add(counter, 1)
    while index < chunks:
        start = index * chunk
        count = min(chunk, rows - start)
        run(program, (count, np.int64(0), count, start, rows),
            (weights, scratch, outputs, np.uint64(inputs[0] + start * row_bytes[0]),
             np.uint64(inputs[1] + start * row_bytes[1]), np.uint64(inputs[2] + start * row_bytes[2]),
             np.uint64(inputs[3] + start * row_bytes[3])))
        index = fetch_add(counter, 1)


@njit(**JIT)
def serve(mailbox, flags, lane, pauses):
    """Lane `lane`'s thread between requests, without the GIL: wait for a request (its number in the lane's
    LANE_REQUEST flag above its LANE_DONE), spinning up to `pauses` times, or after a request as many times as its
    mailbox says; run an interpreter request (`run_lane`) and publish its number in LANE_DONE; return with
    LANE_STATE saying why: no request came (SERVE_IDLE) or one for Python (SERVE_TASKS). A chunk that raises sets
    LANE_FAILED and the lane still reports the request done."""
    line = lane * FLAG_STRIDE
    request_at = flags.ctypes.data + (line + LANE_REQUEST) * flags.itemsize
    done_at = flags.ctypes.data + (line + LANE_DONE) * flags.itemsize
    finished = load_acquire(done_at)
    while True:
        spins = 0
        number = load_acquire(request_at)
        while number == finished:
            if spins >= pauses:
                flags[line + LANE_STATE] = SERVE_IDLE
                return
            spin_pause()
            spins += 1
            number = load_acquire(request_at)
        if mailbox[MAILBOX_KIND] != REQUEST_INTERPRETER:
            flags[line + LANE_STATE] = SERVE_TASKS
            return
        try:
            run_lane(mailbox, flags, lane)
        except Exception:
            flags[line + LANE_FAILED] = 1
        pauses = mailbox[MAILBOX_SPINS]  # (read before the request is done: the next one rewrites the mailbox)
        store_release(done_at, number)
        finished = number


@njit(**JIT)
def publish(flags, index, value):
    """Set flags[index] to `value` with release ordering: a thread that reads the value (`load_acquire`) also sees
    every write made before it, such as a request's mailbox."""
    store_release(flags.ctypes.data + index * flags.itemsize, value)


@njit(**JIT)
def wait_change(flags, index, old, pauses):
    """Return once flags[index] differs from `old`, or after `pauses` spins (`spin_pause`) without a change: how a
    thread waits for another on a time scale too short for the operating system's wake-up (tens of microseconds),
    without the GIL (`backend`'s lanes). The caller reads the flag again to tell which it was."""
    address = flags.ctypes.data + index * flags.itemsize
    for _ in range(pauses):
        if load_acquire(address) != old:
            return
        spin_pause()


@njit(**JIT)
def run(program, frame, bases):
    """The interpreter: one kernel call per instruction, on operands in the `bases` buffers."""
    at = np.int64(0)  # not the literal 0, which would compile every callee twice
    while at < program.size:
        opcode, dtype = program[at + INSTRUCTION_OPCODE], program[at + INSTRUCTION_DTYPE]
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
        elif opcode == TRANSPOSE:
            run_transpose(program, at, frame, bases)
        elif opcode == WHERE:
            run_where(program, at, frame, bases)
        else:
            run_rows(program, at, frame, bases)
        at += program[at + INSTRUCTION_LENGTH]
