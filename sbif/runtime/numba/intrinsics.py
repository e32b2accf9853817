"""The numba backend's intrinsics: functions written as LLVM IR (numba's `@intrinsic`) where a numba loop cannot
say what the kernels need, and the wrapper that lets numba's ahead-of-time compiler run a kernel without the GIL.

Each one states its arithmetic in its first line: which products are fused (`llvm.fmuladd`: a fused multiply-add
where the CPU has a fast one, else a rounded product and a rounded sum; spec/ops.md allows both in the sums of
products, as BLAS kernels do), and the order in which a sum adds its terms. tests/test_numba_intrinsics.py checks
each against NumPy. The kernels that use them are in `kernels`.
"""
from __future__ import annotations

import inspect
import platform
from typing import Any, Callable, List

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .encoding import PANEL
from .host import PARAMETERS

#: float32 lanes of the vectors the tiles and dot products keep their sums in (`host`: 16 with AVX-512, else 8;
#: LLVM splits them where registers are narrower)
VECTOR = PARAMETERS.vector
#: bytes of a float32, the element of every product; a vector load or store of float32 assumes only this alignment
FLOAT32_BYTES = np.dtype(np.float32).itemsize
#: rows of a tile (`tile`) or of a group of dot products (`dots`) over several rows: a tile of TILE_ROWS rows by one
#: panel keeps TILE_ROWS * PANEL / VECTOR vector sums in registers (half the register file: `host`), and each
#: weight it loads serves every row
TILE_ROWS = PARAMETERS.tile_rows
#: panels of the widest tile of one row: as many vector sums as a tile of TILE_ROWS rows by one panel
ROW_TILE_PANELS = PARAMETERS.row_tile_panels
#: outputs of a group of TILE_ROWS rows of dot products, and of a group of one row
GROUP_DOT_OUTPUTS, ROW_DOT_OUTPUTS = PARAMETERS.group_dot_outputs, PARAMETERS.row_dot_outputs
#: bytes the CPU brings into its caches at a time (`prefetch`)
CACHE_LINE_BYTES = 64


@intrinsic
def float_from_bits(typingctx, bits):
    """Exact: the float32 whose IEEE bits are the int32 `bits` (a bit cast, no rounding)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


def _vector_load(builder: Any, vector: Any, pointer: Any) -> Any:
    """Exact (a load): a vector of float32 at `pointer`, which is aligned for a float32 only."""
    return builder.load(builder.bitcast(pointer, vector.as_pointer()), align=FLOAT32_BYTES)


def _dots(rows: int, outputs: int, lanes: int = VECTOR) -> Callable[..., Any]:
    """Fused, in a fixed order: an intrinsic computing y = x @ w for a group of `rows` rows and `outputs` outputs,
    each output a dot product summed in `lanes` lanes (`llvm.fmuladd`) over the whole multiples of `lanes`, the
    lanes then added pairwise (halves, quarters, the last two: rounded sums), then the remaining terms in order of
    k (`llvm.fmuladd`). w is given transposed (wt [N, K]: each output's weights a contiguous row), for narrow products
    (fewer outputs than a panel). Every output follows that one order whatever group it is in, so a row's result
    does not depend on the batch it came in. Arguments (addresses and element counts): x, x's row stride, the
    group's first row of wt, the depth K, y (at the group's first column), y's row stride."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    vector = ir.VectorType(f32, lanes)
    fmuladd_type = ir.FunctionType(vector, [vector, vector, vector])
    scalar_type = ir.FunctionType(f32, [f32, f32, f32])

    def codegen(context, builder, signature, args):
        x_at, x_stride, w_at, depth, y_at, y_stride = args
        x, w, y = (builder.inttoptr(a, f32.as_pointer()) for a in (x_at, w_at, y_at))
        x_rows = [builder.gep(x, [builder.mul(x_stride, ir.Constant(i64, r))]) for r in range(rows)]
        w_rows = [builder.gep(w, [builder.mul(depth, ir.Constant(i64, n))]) for n in range(outputs)]
        sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * lanes)) for _ in range(outputs)]
                for _ in range(rows)]
        fmuladd = cgutils.get_or_insert_function(builder.module, fmuladd_type, "llvm.fmuladd.v{}f32".format(lanes))
        fmuladd_scalar = cgutils.get_or_insert_function(builder.module, scalar_type, "llvm.fmuladd.f32")
        whole = builder.udiv(depth, ir.Constant(i64, lanes))

        with cgutils.for_range(builder, whole) as loop:
            k = builder.mul(loop.index, ir.Constant(i64, lanes))
            terms = [_vector_load(builder, vector, builder.gep(w_row, [k])) for w_row in w_rows]
            for r in range(rows):
                xr = _vector_load(builder, vector, builder.gep(x_rows[r], [k]))
                for n, term in enumerate(terms):
                    builder.store(builder.call(fmuladd, [xr, term, builder.load(sums[r][n])]), sums[r][n])
        totals = [[None] * outputs for _ in range(rows)]
        for r in range(rows):
            for n in range(outputs):
                summed = builder.load(sums[r][n])
                width = lanes
                while width > 1:  # pairwise: lane i + lane i + width/2
                    half = width // 2
                    low = builder.shuffle_vector(summed, summed,
                                                 ir.Constant(ir.VectorType(i32, half), list(range(half))))
                    high = builder.shuffle_vector(summed, summed, ir.Constant(ir.VectorType(i32, half),
                                                                              list(range(half, width))))
                    summed, width = builder.fadd(low, high), half
                totals[r][n] = cgutils.alloca_once_value(builder, builder.extract_element(summed, ir.Constant(i32, 0)))
        done = builder.mul(whole, ir.Constant(i64, lanes))
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


#: `dense_dots`'s groups: TILE_ROWS rows by GROUP_DOT_OUTPUTS outputs (or the last one), one row by ROW_DOT_OUTPUTS
#: outputs (or one)
dots_rows = _dots(TILE_ROWS, GROUP_DOT_OUTPUTS)
dots_rows_one_output = _dots(TILE_ROWS, 1)
dots_row = _dots(1, ROW_DOT_OUTPUTS)
dots_row_one_output = _dots(1, 1)


def _add_terms(builder: Any, fmuladd: Any, vector: Any, x_rows: List[Any], k: Any, terms: List[Any],
               sums: List[List[Any]]) -> None:
    """One step of a tile's sums: x_rows[r][k], broadcast to a vector, times each of the weights' `terms`, added
    to sums[r][j] with `llvm.fmuladd` (the step every tile takes once per term of its depth, in order of k)."""
    i32 = ir.IntType(32)
    broadcast = ir.Constant(ir.VectorType(i32, vector.count), [0] * vector.count)
    for r, x_row in enumerate(x_rows):
        scalar = builder.load(builder.gep(x_row, [k]))
        xr = builder.shuffle_vector(builder.insert_element(ir.Constant(vector, ir.Undefined), scalar,
                                                           ir.Constant(i32, 0)),
                                    ir.Constant(vector, ir.Undefined), broadcast)
        for j, term in enumerate(terms):
            builder.store(builder.call(fmuladd, [xr, term, builder.load(sums[r][j])]), sums[r][j])


def _tile(rows: int, panels: int, partial: bool, lanes: int = VECTOR, panel: int = PANEL) -> Callable[..., Any]:
    """Fused, in order of k: an intrinsic computing y = x @ w + b for a tile of `rows` rows and `panels` panels
    (`panel` columns each, in vectors of `lanes`), its sums kept in vector registers through the whole depth, each
    term added in order of k with `llvm.fmuladd`, then the bias (a separate rounded addition). Arguments (addresses
    and element counts): x, x's row stride, the tile's first panel, the depth K, b (at the tile's first column), y
    (likewise), y's row stride, and for a `partial` tile (the last panel) how many of its columns exist: only those
    are read from b and written."""
    f32, i64 = ir.FloatType(), ir.IntType(64)
    vector = ir.VectorType(f32, lanes)
    per_panel = panel // lanes  # vectors
    fmuladd_type = ir.FunctionType(vector, [vector, vector, vector])

    def codegen(context, builder, signature, args):
        x_at, x_stride, w_at, depth, b_at, y_at, y_stride, width = args
        x, w, b, y = (builder.inttoptr(a, f32.as_pointer()) for a in (x_at, w_at, b_at, y_at))
        sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * lanes))
                 for _ in range(panels * per_panel)] for _ in range(rows)]
        x_rows = [builder.gep(x, [builder.mul(x_stride, ir.Constant(i64, r))]) for r in range(rows)]
        panel_size = builder.mul(depth, ir.Constant(i64, panel))
        starts = [builder.gep(w, [builder.mul(panel_size, ir.Constant(i64, p))]) for p in range(panels)]
        fmuladd = cgutils.get_or_insert_function(builder.module, fmuladd_type, "llvm.fmuladd.v{}f32".format(lanes))
        with cgutils.for_range(builder, depth) as loop:
            at = builder.mul(loop.index, ir.Constant(i64, panel))
            terms = [_vector_load(builder, vector, builder.gep(start, [builder.add(at, ir.Constant(i64, h * lanes))]))
                     for start in starts for h in range(per_panel)]
            _add_terms(builder, fmuladd, vector, x_rows, loop.index, terms, sums)
        _store_tile(builder, sums, vector, b, y, y_stride, partial, width)
        return context.get_dummy_value()

    @intrinsic
    def tile(typingctx, x, x_stride, w, depth, b, y, y_stride, width):
        return types.none(*([types.intp] * 8)), codegen

    return tile


#: panels of the narrower tiles of one row, for what is left of a row after its widest tiles: each has as many vector
#: sums as it can, rather than the two of a one-panel tile, whose every step waits for the one before
ROW_TILE_HALF_PANELS, ROW_TILE_QUARTER_PANELS = max(1, ROW_TILE_PANELS // 2), max(1, ROW_TILE_PANELS // 4)
#: `dense_panels`'s tiles: TILE_ROWS rows by one panel (whole, or the last, partial one); one row by ROW_TILE_PANELS
#: panels, by half and a quarter as many, by one panel (whole or partial)
tile_rows, tile_rows_partial = _tile(TILE_ROWS, 1, False), _tile(TILE_ROWS, 1, True)
tile_row = _tile(1, ROW_TILE_PANELS, False)
tile_row_half, tile_row_quarter = _tile(1, ROW_TILE_HALF_PANELS, False), _tile(1, ROW_TILE_QUARTER_PANELS, False)
tile_row_one_panel, tile_row_one_panel_partial = _tile(1, 1, False), _tile(1, 1, True)


def _store_tile(builder: Any, sums: Any, vector: Any, b: Any, y: Any, y_stride: Any, partial: bool,
                width: Any) -> None:
    """Exact but for the bias's rounded addition: a tile's vector sums (`sums[row][vector]`) plus the bias b, stored
    to y's rows (`y_stride` elements apart); for a `partial` tile, only the first `width` columns are read from b
    and written."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    lanes = vector.count
    for r, row_sums in enumerate(sums):
        y_row = builder.gep(y, [builder.mul(y_stride, ir.Constant(i64, r))])
        for j, at in enumerate(row_sums):
            total = builder.load(at)
            if not partial:
                column = ir.Constant(i64, j * lanes)
                bias = _vector_load(builder, vector, builder.gep(b, [column]))
                builder.store(builder.fadd(total, bias),
                              builder.bitcast(builder.gep(y_row, [column]), vector.as_pointer()),
                              align=FLOAT32_BYTES)
                continue
            for lane in range(lanes):
                column = ir.Constant(i64, j * lanes + lane)
                with builder.if_then(builder.icmp_signed("<", column, width)):
                    value = builder.fadd(builder.extract_element(total, ir.Constant(i32, lane)),
                                         builder.load(builder.gep(b, [column])))
                    builder.store(value, builder.gep(y_row, [column]))


def _conv_tile(rows: int, partial: bool, lanes: int = VECTOR, panel: int = PANEL) -> Callable[..., Any]:
    """Fused, in order of k: an intrinsic computing one panel of a convolution's outputs for `rows` consecutive
    output pixels of an image (NHWC, no padding: every patch inside the image) without writing its patches out:
    the tile of `_tile` with x's rows read where the patches are. Pixel m of the image reads its patch row p (of
    `segments`) as `span` (kw * C) contiguous floats, so term k = p * span + s of its sum is x[start(m) + p *
    segment_step + s], the (kh, kw, C) order of the HWIO kernel as a matrix [kh * kw * C, O] in panels: each sum
    adds its terms in order of k with `llvm.fmuladd`, as `_tile` on the patch columns would, then the bias (a
    separate rounded addition). Arguments (addresses and element counts): the image, its first pixel of the tile,
    the output width, the floats between the patches of horizontally and of vertically adjacent pixels, between a
    patch's rows, the patch's rows and their span, the panel, b (at the panel's first column), y (at the tile's
    first pixel and the panel's first column), y's row stride (the filters), and for a `partial` tile (the last
    panel) how many of its columns exist."""
    f32, i64 = ir.FloatType(), ir.IntType(64)
    vector = ir.VectorType(f32, lanes)
    per_panel = panel // lanes  # vectors
    fmuladd_type = ir.FunctionType(vector, [vector, vector, vector])

    def codegen(context, builder, signature, args):
        (x_at, first, out_w, pixel_step, out_row_step, segment_step, segments, span, w_at, b_at, y_at, y_stride,
         width) = args
        x, w, b, y = (builder.inttoptr(a, f32.as_pointer()) for a in (x_at, w_at, b_at, y_at))
        sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * lanes)) for _ in range(per_panel)]
                for _ in range(rows)]
        x_rows = []
        for r in range(rows):
            pixel = builder.add(first, ir.Constant(i64, r))
            out_row = builder.udiv(pixel, out_w)
            out_column = builder.sub(pixel, builder.mul(out_row, out_w))
            x_rows.append(builder.gep(x, [builder.add(builder.mul(out_row, out_row_step),
                                                      builder.mul(out_column, pixel_step))]))
        fmuladd = cgutils.get_or_insert_function(builder.module, fmuladd_type, "llvm.fmuladd.v{}f32".format(lanes))
        with cgutils.for_range(builder, segments) as segment:
            x_segment = builder.mul(segment.index, segment_step)
            w_segment = builder.gep(w, [builder.mul(builder.mul(segment.index, span), ir.Constant(i64, panel))])
            with cgutils.for_range(builder, span) as loop:
                at = builder.mul(loop.index, ir.Constant(i64, panel))
                terms = [_vector_load(builder, vector, builder.gep(w_segment, [builder.add(at, ir.Constant(i64,
                                                                                                    h * lanes))]))
                         for h in range(per_panel)]
                _add_terms(builder, fmuladd, vector, x_rows, builder.add(x_segment, loop.index), terms, sums)
        _store_tile(builder, sums, vector, b, y, y_stride, partial, width)
        return context.get_dummy_value()

    @intrinsic
    def conv_tile(typingctx, x, first, out_w, pixel_step, out_row_step, segment_step, segments, span, w, b, y,
                  y_stride, width):
        return types.none(*([types.intp] * 13)), codegen

    return conv_tile


#: `kernels.conv2d_panels`'s tiles: TILE_ROWS pixels by one panel (whole, or the last, partial one), and one pixel
#: by one panel for the pixels after an image's last whole tile
conv_tile_rows, conv_tile_rows_partial = _conv_tile(TILE_ROWS, False), _conv_tile(TILE_ROWS, True)
conv_tile_row, conv_tile_row_partial = _conv_tile(1, False), _conv_tile(1, True)


@intrinsic
def copy_floats(typingctx, target, source, count):
    """Exact (a copy): `count` float32 from address `source` to address `target` (not overlapping), VECTOR at a time,
    inline, for the short runs of im2col, where a call to memcpy or a loop over array views costs more than the
    copy."""
    f32, i64 = ir.FloatType(), ir.IntType(64)
    vector = ir.VectorType(f32, VECTOR)

    def codegen(context, builder, signature, args):
        to, at, n = (builder.inttoptr(args[0], f32.as_pointer()), builder.inttoptr(args[1], f32.as_pointer()),
                     args[2])
        whole = builder.udiv(n, ir.Constant(i64, VECTOR))
        with cgutils.for_range(builder, whole) as loop:
            offset = builder.mul(loop.index, ir.Constant(i64, VECTOR))
            value = _vector_load(builder, vector, builder.gep(at, [offset]))
            builder.store(value, builder.bitcast(builder.gep(to, [offset]), vector.as_pointer()), align=FLOAT32_BYTES)
        done = builder.mul(whole, ir.Constant(i64, VECTOR))
        with cgutils.for_range(builder, builder.sub(n, done)) as loop:
            offset = builder.add(done, loop.index)
            builder.store(builder.load(builder.gep(at, [offset])), builder.gep(to, [offset]))
        return context.get_dummy_value()

    return types.none(types.intp, types.intp, types.intp), codegen


@intrinsic
def prefetch(typingctx, address):
    """No arithmetic (a hint that never faults: llvm.prefetch): ask the CPU to bring the cache line at `address`
    into its caches, for im2col, whose short runs from several image rows at once the hardware prefetchers do not
    foresee."""
    byte_pointer, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)

    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch." + byte_pointer.intrinsic_name)
        read, keep_in_all_levels, data = ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)
        builder.call(function, [builder.inttoptr(args[0], byte_pointer), read, keep_in_all_levels, data])
        return context.get_dummy_value()

    return types.none(types.intp), codegen


@intrinsic
def pointer(typingctx, address, dtype):
    """No arithmetic: the int `address` as a pointer to `dtype` (a NumPy scalar class), for `carray` views of the
    interpreter's buffers."""
    pointer_type = types.CPointer(dtype.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer_type))

    return pointer_type(types.intp, dtype), codegen


# -- threads handing work to each other (`kernels.wait_change`, `serve`; `lanes`) -------------------------------
#: whether the machine code is for x86, whose PAUSE instruction tells the CPU that a loop spins
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@intrinsic
def load_acquire(typingctx, address):
    """No arithmetic: the int64 at `address`, read with acquire ordering (an atomic load: read afresh on each pass
    of a loop, where a plain load could be read once, and nothing read after it is read before it)."""
    int64 = ir.IntType(64)

    def codegen(context, builder, signature, args):
        return builder.load_atomic(builder.inttoptr(args[0], int64.as_pointer()), "acquire", 8)

    return types.int64(types.intp), codegen


@intrinsic
def store_release(typingctx, address, value):
    """No arithmetic: write the int64 `value` at `address` with release ordering (an atomic store: a thread that
    reads it with `load_acquire` also sees every write made before it)."""
    int64 = ir.IntType(64)

    def codegen(context, builder, signature, args):
        builder.store_atomic(args[1], builder.inttoptr(args[0], int64.as_pointer()), "release", 8)
        return context.get_dummy_value()

    return types.none(types.intp, types.int64), codegen


@intrinsic
def fetch_add(typingctx, address, value):
    """The int64 at `address` before adding `value` to it, in one atomic step (acquire and release ordering): how
    threads sharing a counter each take a different number."""
    int64 = ir.IntType(64)

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", builder.inttoptr(args[0], int64.as_pointer()), args[1], "acq_rel")

    return types.int64(types.intp, types.int64), codegen


@intrinsic
def spin_pause(typingctx):
    """No arithmetic: a hint that the thread is spinning (x86's PAUSE, llvm.x86.sse2.pause: the core gives its
    sibling hyperthread the cycles and leaves the loop without a memory-order stall); nothing on other CPUs."""
    def codegen(context, builder, signature, args):
        if X86:
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()

    return types.none(), codegen


# -- the entry points of the extension module (`aot`) ------------------------------------------------------
# numba's ahead-of-time compiler exports plain Python functions, holding the GIL throughout; these release it
# around the work, as `nogil` does for the jitted ones (the backend runs parts of a request in several threads).
# An exception in the work is caught while the GIL is released and raised once it is held again.
@intrinsic
def release_gil(typingctx):
    """No arithmetic: PyEval_SaveThread(), the thread state as an int, for `acquire_gil`."""
    def codegen(context, builder, signature, args):
        save = cgutils.get_or_insert_function(builder.module, ir.FunctionType(cgutils.voidptr_t, []),
                                              "PyEval_SaveThread")
        return builder.ptrtoint(builder.call(save, []), context.get_value_type(types.intp))

    return types.intp(), codegen


@intrinsic
def acquire_gil(typingctx, state):
    """No arithmetic: PyEval_RestoreThread(state)."""
    def codegen(context, builder, signature, args):
        restore = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t]),
                                                 "PyEval_RestoreThread")
        builder.call(restore, [builder.inttoptr(args[0], cgutils.voidptr_t)])
        return context.get_dummy_value()

    return types.void(types.intp), codegen


_WITHOUT_GIL = """
def {name}({arguments}):
    state = release_gil()
    failed = False
    try:
        work({arguments})
    except Exception:
        failed = True
    acquire_gil(state)
    if failed:
        raise RuntimeError("sbif's compiled kernel {name} failed (a bug: please report it)")
"""


def without_gil(work: Any) -> Callable[..., None]:
    """No arithmetic: the jitted function `work` as a plain function that runs it without the GIL, for numba's
    ahead-of-time compiler (`aot`), which takes neither `nogil` nor `*args`: hence the source, written for `work`'s
    parameters."""
    namespace = {"work": work, "release_gil": release_gil, "acquire_gil": acquire_gil}
    arguments = ", ".join(inspect.signature(work.py_func).parameters)
    exec(_WITHOUT_GIL.format(name=work.__name__, arguments=arguments), namespace)
    return namespace[work.__name__]
