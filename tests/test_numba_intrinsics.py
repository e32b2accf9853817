"""The numba backend's intrinsics (`sbif.runtime.numba.intrinsics`, LLVM IR written out) against NumPy, each as its
first docstring line states its arithmetic: exact where it only moves bits; for the fused sums of products, within
the bound their order of summation gives (a sum of m rounded additions of terms t is within gamma(m) * sum |t| of the
exact one, gamma(m) = m u / (1 - m u), u = 2^-24; with unfused products one rounding more), and bit for bit the same
for a row whatever group of rows or outputs computes it (the order is the same). The kernels built on them are tested
on TensorFlow's op vectors (tests/test_numba_runtime.py)."""
from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from sbif.runtime.numba import intrinsics  # noqa: E402
from sbif.runtime.numba.encoding import PANEL  # noqa: E402
from sbif.runtime.numba.intrinsics import FLOAT32_BYTES, VECTOR  # noqa: E402

UNIT_ROUNDOFF = 2.0 ** -24
RNG = np.random.default_rng(20)
#: depths around the vector width: none, fewer than a vector, whole vectors, whole vectors and a tail
DEPTHS = (0, 1, 5, VECTOR, 3 * VECTOR, 3 * VECTOR + 5, 67)


def gamma(roundings: int) -> float:
    return roundings * UNIT_ROUNDOFF / (1 - roundings * UNIT_ROUNDOFF)


def caller(function, arity):
    """A jitted function calling the intrinsic `function` with `arity` int arguments (intrinsics run in compiled
    code only)."""
    if arity == 6:
        return numba.njit(lambda a, b, c, d, e, f: function(a, b, c, d, e, f))
    return numba.njit(lambda a, b, c, d, e, f, g, h: function(a, b, c, d, e, f, g, h))


#: name: (caller, rows, outputs)
DOTS = {name: (caller(getattr(intrinsics, name), 6), rows, outputs) for name, rows, outputs in (
    ("dots_rows", intrinsics.TILE_ROWS, intrinsics.GROUP_DOT_OUTPUTS),
    ("dots_rows_one_output", intrinsics.TILE_ROWS, 1),
    ("dots_row", 1, intrinsics.ROW_DOT_OUTPUTS), ("dots_row_one_output", 1, 1))}
#: name: (caller, rows, panels, partial)
TILES = {name: (caller(getattr(intrinsics, name), 8), rows, panels, partial) for name, rows, panels, partial in (
    ("tile_rows", intrinsics.TILE_ROWS, 1, False), ("tile_rows_partial", intrinsics.TILE_ROWS, 1, True),
    ("tile_row", 1, intrinsics.ROW_TILE_PANELS, False), ("tile_row_one_panel", 1, 1, False),
    ("tile_row_one_panel_partial", 1, 1, True))}


def operands(rows, depth, outputs):
    """x [rows, depth] and w [depth, outputs] with values of both signs and magnitudes (so that a wrong order or a
    dropped term shows), float32."""
    x = (RNG.standard_normal((rows, depth)) * np.exp2(RNG.integers(-6, 6, (rows, depth)))).astype(np.float32)
    w = (RNG.standard_normal((depth, outputs)) * np.exp2(RNG.integers(-6, 6, (depth, outputs)))).astype(np.float32)
    return x, w


def assert_within_order_bound(actual, x, w, b, roundings):
    """actual == x @ w + b within gamma(roundings) * (|x| @ |w| + |b|), the exact value computed in float64
    (products of float32 are exact there; the float64 sum's own error is far below the bound)."""
    exact = x.astype(np.float64) @ w.astype(np.float64) + b
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64) + np.abs(b)
    error = np.abs(actual.astype(np.float64) - exact)
    assert np.all(error <= gamma(roundings) * magnitude), (error / np.maximum(magnitude, 1e-300)).max()


@pytest.mark.parametrize("name", sorted(DOTS))
@pytest.mark.parametrize("depth", DEPTHS)
def test_dots_within_the_bound_of_their_order(name, depth):
    """Fused, in a fixed order: VECTOR lanes of depth // VECTOR terms each, their pairwise sum (log2 VECTOR
    roundings), then the tail's depth % VECTOR terms: at most that many rounded additions (plus one product rounding
    where the CPU does not fuse) per output."""
    call, rows, outputs = DOTS[name]
    x, w = operands(rows, depth, outputs)
    wt = np.ascontiguousarray(w.T)
    y = np.full((rows, outputs), np.nan, np.float32)
    call(x.ctypes.data, depth, wt.ctypes.data, depth, y.ctypes.data, outputs)
    roundings = depth // VECTOR + int(np.log2(VECTOR)) + depth % VECTOR + 1
    assert_within_order_bound(y, x, w, 0.0, roundings)


def test_dots_give_a_row_the_same_bits_in_every_group():
    """The order of summation is one for every group: a row computed among TILE_ROWS rows and GROUP_DOT_OUTPUTS
    outputs, or alone and one output at a time, is bit for bit the same."""
    depth = 3 * VECTOR + 5
    x, w = operands(intrinsics.TILE_ROWS, depth, intrinsics.ROW_DOT_OUTPUTS)
    wt = np.ascontiguousarray(w.T)
    results = []
    for name in sorted(DOTS):
        call, rows, outputs = DOTS[name]
        y = np.zeros((intrinsics.TILE_ROWS, intrinsics.ROW_DOT_OUTPUTS), np.float32)
        for r in range(0, intrinsics.TILE_ROWS, rows):
            for n in range(0, intrinsics.ROW_DOT_OUTPUTS, outputs):
                call(x.ctypes.data + FLOAT32_BYTES * r * depth, depth, wt.ctypes.data + FLOAT32_BYTES * n * depth,
                     depth, y.ctypes.data + FLOAT32_BYTES * (r * intrinsics.ROW_DOT_OUTPUTS + n),
                     intrinsics.ROW_DOT_OUTPUTS)
        results.append(y.view(np.uint32))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def panels_of(w):
    """w [K, N] as the tiles read it: ceil(N / PANEL) panels [K, PANEL] one after the other, zero-padded."""
    depth, width = w.shape
    count = -(-width // PANEL)
    padded = np.zeros((depth, count * PANEL), np.float32)
    padded[:, :width] = w
    return np.ascontiguousarray(padded.reshape(depth, count, PANEL).transpose(1, 0, 2))


@pytest.mark.parametrize("name", sorted(TILES))
@pytest.mark.parametrize("depth", DEPTHS[1:])
def test_tiles_within_the_bound_of_their_order(name, depth):
    """Fused, in order of k, then the bias: depth rounded multiply-adds (plus one product rounding where the CPU does
    not fuse), then one for the bias; a partial tile writes only its columns."""
    call, rows, panels, partial = TILES[name]
    width = panels * PANEL - (PANEL // 2 + 3 if partial else 0)
    x, w = operands(rows, depth, width)
    b = RNG.standard_normal(panels * PANEL).astype(np.float32)
    w_panels = panels_of(w)
    y = np.full((rows, panels * PANEL), np.nan, np.float32)
    call(x.ctypes.data, depth, w_panels.ctypes.data, depth, b.ctypes.data, y.ctypes.data, panels * PANEL, width)
    assert_within_order_bound(y[:, :width], x, w, b[:width].astype(np.float64), depth + 2)
    assert np.isnan(y[:, width:]).all()  # past a partial tile's width nothing is written


def test_tiles_give_a_row_the_same_bits_in_every_tile():
    """One order for every tile: TILE_ROWS rows by one panel, one row by ROW_TILE_PANELS panels, one row by one
    panel give a row the same bits."""
    depth, width = 3 * VECTOR + 5, intrinsics.ROW_TILE_PANELS * PANEL
    x, w = operands(intrinsics.TILE_ROWS, depth, width)
    b = RNG.standard_normal(width).astype(np.float32)
    w_panels = panels_of(w)
    panel_bytes = FLOAT32_BYTES * depth * PANEL
    results = []
    for name in ("tile_rows", "tile_row", "tile_row_one_panel"):
        call, rows, panels, _ = TILES[name]
        y = np.zeros((intrinsics.TILE_ROWS, width), np.float32)
        for r in range(0, intrinsics.TILE_ROWS, rows):
            for p in range(0, intrinsics.ROW_TILE_PANELS, panels):
                call(x.ctypes.data + FLOAT32_BYTES * r * depth, depth, w_panels.ctypes.data + p * panel_bytes, depth,
                     b.ctypes.data + FLOAT32_BYTES * p * PANEL, y.ctypes.data + FLOAT32_BYTES * (r * width + p * PANEL),
                     width, panels * PANEL)
        results.append(y.view(np.uint32))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@numba.njit
def _floats_from_bits(bits, out):
    for i in range(bits.size):
        out[i] = intrinsics.float_from_bits(bits[i])


def test_float_from_bits_is_a_bit_cast():
    """Exact: every pattern, NaN payloads and infinities included, as NumPy's view."""
    bits = np.concatenate([RNG.integers(-2 ** 31, 2 ** 31, 4096, dtype=np.int64).astype(np.int32),
                           np.array([0, -2 ** 31, 0x7F800000, -8388608, 0x7FC00001, 1], np.int32)])
    out = np.empty(bits.size, np.float32)
    _floats_from_bits(bits, out)
    np.testing.assert_array_equal(out.view(np.int32), bits)


@numba.njit
def _copy(target, source, count):
    intrinsics.copy_floats(target.ctypes.data, source.ctypes.data, count)


@pytest.mark.parametrize("count", [0, 1, VECTOR - 1, VECTOR, 2 * VECTOR + 3])
def test_copy_floats_copies_exactly_count(count):
    """Exact: `count` floats (whole vectors and a tail), bits kept, nothing after them touched."""
    source = RNG.standard_normal(count + 4).astype(np.float32)
    source[:count:3] = np.nan
    target = np.full(count + 4, 7.0, np.float32)
    _copy(target, source, count)
    np.testing.assert_array_equal(target[:count].view(np.uint32), source[:count].view(np.uint32))
    assert (target[count:] == 7.0).all()


@numba.njit
def _prefetched_sum(values):
    total = 0.0
    for start in range(0, values.size * FLOAT32_BYTES, intrinsics.CACHE_LINE_BYTES):
        intrinsics.prefetch(values.ctypes.data + start)
    for value in values:
        total += value
    return total


def test_prefetch_is_only_a_hint():
    """No arithmetic: prefetching every cache line of an array changes nothing in it."""
    values = RNG.standard_normal(1000).astype(np.float32)
    before = values.copy()
    assert _prefetched_sum(values) == pytest.approx(float(values.astype(np.float64).sum()), rel=1e-5)
    np.testing.assert_array_equal(values, before)


@numba.njit
def _through_pointer(values, rows, columns):
    return numba.carray(intrinsics.pointer(values.ctypes.data, np.float32), (rows, columns)).copy()


def test_pointer_views_the_memory_at_an_address():
    """No arithmetic: a carray over pointer(address) reads the array's own elements."""
    values = RNG.standard_normal(12).astype(np.float32)
    np.testing.assert_array_equal(_through_pointer(values, 3, 4), values.reshape(3, 4))


@numba.njit(nogil=True)
def _doubled(values, out):
    for i in range(values.size):
        out[i] = values[i] * 2


@numba.njit(nogil=True)
def _failing(values, out):
    out[0] = values[values.size]  # out of bounds with boundscheck: raises


def test_without_gil_runs_the_work_and_reports_its_failure():
    """No arithmetic: the wrapper (compiled here as the extension module compiles it) runs the work, and a failure
    inside it becomes one RuntimeError after the GIL is back."""
    values = RNG.standard_normal(8).astype(np.float32)
    out = np.zeros(8, np.float32)
    numba.njit(intrinsics.without_gil(_doubled))(values, out)
    np.testing.assert_array_equal(out, values * 2)
    failing = numba.njit(boundscheck=True)(intrinsics.without_gil(numba.njit(boundscheck=True, nogil=True)(
        _failing.py_func)))
    with pytest.raises(RuntimeError, match="sbif's compiled kernel _failing failed"):
        failing(values, out)
