"""The numba backend's intrinsics (`sbif.runtime.numba.intrinsics`, LLVM IR written out) against NumPy, each as its
first docstring line states its arithmetic: exact where it only moves bits; for the fused sums of products, within
the bound their order of summation gives (a sum of m rounded additions of terms t is within gamma(m) * sum |t| of the
exact one, gamma(m) = m u / (1 - m u), u = 2^-24; with unfused products one rounding more), and bit for bit the same
for a row whatever group of rows or outputs computes it (the order is the same). The kernels built on them are tested
on TensorFlow's op vectors (tests/test_numba_runtime.py)."""
from __future__ import annotations

import platform

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from sbif.runtime.numba import host, intrinsics  # noqa: E402
from sbif.runtime.numba.intrinsics import FLOAT32_BYTES, VECTOR  # noqa: E402

UNIT_ROUNDOFF = 2.0 ** -24
RNG = np.random.default_rng(20)
#: the vector widths the kernels are built with (`host`): the one in use here and the other ($SBIF_NUMBA_VECTOR),
#: which LLVM legalises on any host
WIDTHS = (host.NARROW_LANES, host.WIDE_LANES)


def depths(lanes):
    """Depths around the vector width: none, fewer than a vector, whole vectors, whole vectors and a tail."""
    return (0, 1, 5, lanes, 3 * lanes, 3 * lanes + 5, 67)


def gamma(roundings: int) -> float:
    return roundings * UNIT_ROUNDOFF / (1 - roundings * UNIT_ROUNDOFF)


def caller(function, arity):
    """A jitted function calling the intrinsic `function` with `arity` int arguments (intrinsics run in compiled
    code only)."""
    if arity == 6:
        return numba.njit(lambda a, b, c, d, e, f: function(a, b, c, d, e, f))
    return numba.njit(lambda a, b, c, d, e, f, g, h: function(a, b, c, d, e, f, g, h))


class Width:
    """The dot products and tiles of one vector width, with the shapes this host derives for it: the module's own
    (what the kernels inline) for the width in use, the same factories' for the other."""

    def __init__(self, lanes):
        parameters = host.derive(host.CPU, host.CACHES, lanes, platform.machine())
        self.lanes, self.panel = lanes, parameters.panel
        self.rows, self.row_panels = parameters.tile_rows, parameters.row_tile_panels
        self.group_outputs, self.row_outputs = parameters.group_dot_outputs, parameters.row_dot_outputs
        half, quarter = max(1, self.row_panels // 2), max(1, self.row_panels // 4)
        if lanes == VECTOR:
            assert parameters == host.PARAMETERS
            made = {name: getattr(intrinsics, name) for name in (
                "dots_rows", "dots_rows_one_output", "dots_row", "dots_row_one_output", "tile_rows",
                "tile_rows_partial", "tile_row", "tile_row_half", "tile_row_quarter", "tile_row_one_panel",
                "tile_row_one_panel_partial")}
        else:
            made = {"dots_rows": intrinsics._dots(self.rows, self.group_outputs, lanes),
                    "dots_rows_one_output": intrinsics._dots(self.rows, 1, lanes),
                    "dots_row": intrinsics._dots(1, self.row_outputs, lanes),
                    "dots_row_one_output": intrinsics._dots(1, 1, lanes)}
            for name, rows, panels, partial in (
                    ("tile_rows", self.rows, 1, False), ("tile_rows_partial", self.rows, 1, True),
                    ("tile_row", 1, self.row_panels, False), ("tile_row_half", 1, half, False),
                    ("tile_row_quarter", 1, quarter, False), ("tile_row_one_panel", 1, 1, False),
                    ("tile_row_one_panel_partial", 1, 1, True)):
                made[name] = intrinsics._tile(rows, panels, partial, lanes, self.panel)
        #: name: (caller, rows, outputs)
        self.dots = {name: (caller(made[name], 6), rows, outputs) for name, rows, outputs in (
            ("dots_rows", self.rows, self.group_outputs), ("dots_rows_one_output", self.rows, 1),
            ("dots_row", 1, self.row_outputs), ("dots_row_one_output", 1, 1))}
        #: name: (caller, rows, panels, partial)
        self.tiles = {name: (caller(made[name], 8), rows, panels, partial) for name, rows, panels, partial in (
            ("tile_rows", self.rows, 1, False), ("tile_rows_partial", self.rows, 1, True),
            ("tile_row", 1, self.row_panels, False), ("tile_row_half", 1, half, False),
            ("tile_row_quarter", 1, quarter, False), ("tile_row_one_panel", 1, 1, False),
            ("tile_row_one_panel_partial", 1, 1, True))}


_widths = {}


def width(lanes):
    """The `Width` of `lanes`, made once (its intrinsics compile on first call)."""
    if lanes not in _widths:
        _widths[lanes] = Width(lanes)
    return _widths[lanes]


DOT_NAMES = ("dots_rows", "dots_rows_one_output", "dots_row", "dots_row_one_output")
TILE_NAMES = ("tile_rows", "tile_rows_partial", "tile_row", "tile_row_half", "tile_row_quarter", "tile_row_one_panel",
              "tile_row_one_panel_partial")
#: (lanes, depth) pairs: every depth around each width
WIDTH_DEPTHS = [(lanes, depth) for lanes in WIDTHS for depth in depths(lanes)]


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


@pytest.mark.parametrize("name", DOT_NAMES)
@pytest.mark.parametrize("lanes, depth", WIDTH_DEPTHS)
def test_dots_within_the_bound_of_their_order(name, lanes, depth):
    """Fused, in a fixed order: `lanes` lanes of depth // lanes terms each, their pairwise sum (log2 lanes
    roundings), then the tail's depth % lanes terms: at most that many rounded additions (plus one product rounding
    where the CPU does not fuse) per output."""
    call, rows, outputs = width(lanes).dots[name]
    x, w = operands(rows, depth, outputs)
    wt = np.ascontiguousarray(w.T)
    y = np.full((rows, outputs), np.nan, np.float32)
    call(x.ctypes.data, depth, wt.ctypes.data, depth, y.ctypes.data, outputs)
    roundings = depth // lanes + int(np.log2(lanes)) + depth % lanes + 1
    assert_within_order_bound(y, x, w, 0.0, roundings)


@pytest.mark.parametrize("lanes", WIDTHS)
def test_dots_give_a_row_the_same_bits_in_every_group(lanes):
    """The order of summation is one for every group: a row computed among the tile's rows and group's outputs,
    or alone and one output at a time, is bit for bit the same."""
    shapes = width(lanes)
    depth, rows, outputs = 3 * lanes + 5, shapes.rows, shapes.row_outputs
    x, w = operands(rows, depth, outputs)
    wt = np.ascontiguousarray(w.T)
    results = []
    for name in DOT_NAMES:
        call, group_rows, group_outputs = shapes.dots[name]
        y = np.zeros((rows, outputs), np.float32)
        for r in range(0, rows, group_rows):
            for n in range(0, outputs - group_outputs + 1, group_outputs):
                call(x.ctypes.data + FLOAT32_BYTES * r * depth, depth, wt.ctypes.data + FLOAT32_BYTES * n * depth,
                     depth, y.ctypes.data + FLOAT32_BYTES * (r * outputs + n), outputs)
        results.append(y.view(np.uint32))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def panels_of(w, panel):
    """w [K, N] as the tiles read it: ceil(N / panel) panels [K, panel] one after the other, zero-padded."""
    depth, columns = w.shape
    count = -(-columns // panel)
    padded = np.zeros((depth, count * panel), np.float32)
    padded[:, :columns] = w
    return np.ascontiguousarray(padded.reshape(depth, count, panel).transpose(1, 0, 2))


@pytest.mark.parametrize("name", TILE_NAMES)
@pytest.mark.parametrize("lanes, depth", [(lanes, depth) for lanes, depth in WIDTH_DEPTHS if depth])
def test_tiles_within_the_bound_of_their_order(name, lanes, depth):
    """Fused, in order of k, then the bias: depth rounded multiply-adds (plus one product rounding where the CPU does
    not fuse), then one for the bias; a partial tile writes only its columns."""
    shapes = width(lanes)
    call, rows, panels, partial = shapes.tiles[name]
    panel = shapes.panel
    columns = panels * panel - (panel // 2 + 3 if partial else 0)
    x, w = operands(rows, depth, columns)
    b = RNG.standard_normal(panels * panel).astype(np.float32)
    w_panels = panels_of(w, panel)
    y = np.full((rows, panels * panel), np.nan, np.float32)
    call(x.ctypes.data, depth, w_panels.ctypes.data, depth, b.ctypes.data, y.ctypes.data, panels * panel, columns)
    assert_within_order_bound(y[:, :columns], x, w, b[:columns].astype(np.float64), depth + 2)
    assert np.isnan(y[:, columns:]).all()  # past a partial tile's width nothing is written


@pytest.mark.parametrize("lanes", WIDTHS)
def test_tiles_give_a_row_the_same_bits_in_every_tile(lanes):
    """One order for every tile: the tile's rows by one panel, one row by the widest row tile's panels, by half and a
    quarter as many, and by one panel give a row the same bits."""
    shapes = width(lanes)
    panel, rows = shapes.panel, shapes.rows
    depth, columns = 3 * lanes + 5, shapes.row_panels * panel
    x, w = operands(rows, depth, columns)
    b = RNG.standard_normal(columns).astype(np.float32)
    w_panels = panels_of(w, panel)
    panel_bytes = FLOAT32_BYTES * depth * panel
    results = []
    for name in ("tile_rows", "tile_row", "tile_row_half", "tile_row_quarter", "tile_row_one_panel"):
        call, tile_rows, panels, _ = shapes.tiles[name]
        y = np.zeros((rows, columns), np.float32)
        for r in range(0, rows, tile_rows):
            for p in range(0, shapes.row_panels, panels):
                call(x.ctypes.data + FLOAT32_BYTES * r * depth, depth, w_panels.ctypes.data + p * panel_bytes, depth,
                     b.ctypes.data + FLOAT32_BYTES * p * panel,
                     y.ctypes.data + FLOAT32_BYTES * (r * columns + p * panel), columns, panels * panel)
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
