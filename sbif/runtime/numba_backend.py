"""The numba backend: the graph lowered to a program (`numba_program`) that one compiled interpreter
(`numba_kernels.execute`) runs without per-op Python overhead, in buffers kept per batch size. Same interface and
results (within SPEC section 6) as the NumPy `GraphExecutor`, which computes instead any output set whose nodes
lack a kernel (with a warning naming the op).

Imported only when the numba backend is chosen: importing it imports numba.

- Small requests (the single-observation path) run the whole program in one call.
- Large ones run in chunks of rows: the interpreter between the large matrix products, which NumPy computes with
  BLAS in the same buffers (`np.matmul(out=)`; conv2d as im2col, then one product).
- The interpreter and its kernels are compiled once per machine and cached on disk by numba (`cache=True`):
  a model only builds its program, so a new model costs no compilation and a second process none at all.
- Results are fresh arrays on every call (views of one output buffer allocated per call); the buffers a call
  works in are reused by the next one and never returned.
"""
from __future__ import annotations

import collections
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import numba
import numpy as np

from ..errors import InputError, UnsupportedError
from ..format import SbifFile
from . import numba_kernels
from .executor import GraphExecutor
from .numba_kernels import MAX_INPUTS
from .numba_program import Gemm, Lowered, Value

#: a request runs in chunks with BLAS products once its matrix products hold this many multiply-adds (below, the
#: interpreter's own products are faster: no call overhead, and the weights stay in cache)
BLAS_MIN_MACS = 1 << 22
#: a chunk has this many rows, or fewer when its working buffers (scratch, im2col columns) would pass CHUNK_BYTES;
#: never fewer than MIN_CHUNK_ROWS (below that, BLAS products re-read their weights too often)
CHUNK_ROWS = 4096
CHUNK_BYTES = 32 << 20
MIN_CHUNK_ROWS = 64
#: an interpreter call between BLAS products is split between threads (up to one per CPU) once it touches this
#: many elements
PARALLEL_MIN_ELEMENTS = 1 << 18
LANES = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
#: how many request shapes keep their buffers
KEPT_BATCH_SIZES = 4
_BYTE = np.dtype(np.uint8)
_EMPTY = np.zeros(0, np.uint8)
Columns = Dict[str, Tuple[Tuple[int, ...], str]]


class NumbaExecutor(GraphExecutor):
    """A `GraphExecutor` whose `run` executes the lowered program; `fallbacks` maps each output set the NumPy
    executor computes instead to the reason."""

    backend = "numba"

    def __init__(self, model: SbifFile):
        super().__init__(model)
        self.lowered: Optional[Lowered] = None
        self.reason = ""
        if len(model.document["inputs"]) > MAX_INPUTS:
            self.reason = "the numba interpreter takes at most {} graph inputs".format(MAX_INPUTS)
        else:
            self.lowered = Lowered(model)
        self.fallbacks: Dict[Tuple[str, ...], str] = {}
        self._runners: Dict[Tuple[str, ...], Optional[_Runner]] = {}
        self._kept: "collections.OrderedDict[int, Dict[str, np.ndarray]]" = collections.OrderedDict()
        self.lock = threading.Lock()

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Dict[str, np.ndarray]:
        key = tuple(outputs)
        runner = self._runners.get(key, False)
        if runner is False:
            runner = self._runners[key] = self._make_runner(key)
        if runner is None:
            return super().run(feeds, outputs)
        return runner(feeds)

    def _make_runner(self, outputs: Tuple[str, ...]) -> Optional["_Runner"]:
        steps, required = self.plan(outputs)  # raises InputError for unknown outputs
        lowered = self.lowered
        if lowered is None:
            return self._fall_back(outputs, self.reason)
        needed = lowered.needed_steps([name for step in steps for name in step.outputs])
        missing = [lowered.unsupported[index] for index in needed if index in lowered.unsupported]
        if missing:
            return self._fall_back(outputs, missing[0])
        return _Runner(self, outputs, needed, required)

    def _fall_back(self, outputs: Tuple[str, ...], reason: str) -> None:
        """Record and announce that the NumPy executor computes `outputs`."""
        self.fallbacks[outputs] = reason
        warnings.warn("sbif numba backend: {}; {} computed by the NumPy executor".format(reason, ", ".join(outputs)),
                      RuntimeWarning, stacklevel=4)
        return None

    def buffers(self, rows: int, columns: Columns) -> Dict[str, np.ndarray]:
        """Fresh working buffers for `rows` rows: the scratch, and im2col columns for chunks with convolutions."""
        found = {"scratch": np.empty(rows * self.lowered.scratch_bytes, np.uint8)}
        found.update((name, np.empty((rows,) + shape, dtype)) for name, (shape, dtype) in columns.items())
        return found

    def kept_buffers(self, rows: int, columns: Columns) -> Dict[str, np.ndarray]:
        """The buffers kept for chunks of `rows` rows (for the last few sizes); call with `lock` held."""
        found = self._kept.get(rows)
        if found is None or (columns and any(name not in found for name in columns)):
            found = self._kept[rows] = dict(found or {}, **self.buffers(rows, columns))
            while len(self._kept) > KEPT_BATCH_SIZES:
                self._kept.popitem(last=False)
        return found


class _Runner:
    """One output set: its programs (whole, and per stage between BLAS products), inputs and output layout."""

    def __init__(self, executor: NumbaExecutor, outputs: Tuple[str, ...], needed: List[int],
                 required: FrozenSet[str]):
        lowered = executor.lowered
        self.executor, self.lowered, self.weights, self.lock = executor, lowered, lowered.weights, executor.lock
        self.checks = [(entry["name"], index, np.dtype(entry["dtype"]), len(entry["shape"]),
                        tuple(entry["shape"][1:])) for index, entry in enumerate(executor.model.document["inputs"])
                       if entry["name"] in required]
        self.row_bytes, self.layout = lowered.output_layout(outputs)
        #: per output: name, dtype, where its rows start in the output buffer (bytes per row), shape after the batch
        self.results = [(name, np.dtype(dtype), offset, tuple(lowered.outputs[name].shape[1:]))
                        for name, dtype, offset, _ in self.layout]
        self.needed = needed
        self.gemms: List[Tuple[int, Gemm]] = [(index, lowered.steps[index].gemm) for index in needed
                                              if lowered.steps[index].gemm is not None]
        self.macs_per_row = sum(gemm.macs_per_row() for _, gemm in self.gemms)
        self.whole = lowered.program(needed, copy_out=self.layout)
        self.columns: Columns = {"columns{}".format(index): (_columns_shape(gemm), gemm.x.dtype)
                                 for index, gemm in self.gemms if gemm.conv is not None}
        column_bytes = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in self.columns.values())
        per_row = max(1, lowered.scratch_bytes + column_bytes)
        self.chunk_rows = min(CHUNK_ROWS, max(MIN_CHUNK_ROWS, CHUNK_BYTES // per_row))
        self.stages: List[Tuple[np.ndarray, int]] = self._stages()

    def _stages(self) -> List[Tuple[np.ndarray, int]]:
        """The programs of the calls around the BLAS products, with the elements per row they write: stage k runs
        the needed steps after product k-1 (and its bias) up to product k; the last stage also copies the
        outputs."""
        stages = []
        previous = -1
        bounds = [index for index, _ in self.gemms] + [len(self.lowered.steps)]
        for position, bound in enumerate(bounds):
            steps = [index for index in self.needed if previous < index < bound]
            after = [previous] if previous >= 0 else []
            last = position == len(bounds) - 1
            written = sum(self.lowered.values[name].row_size for index in steps + after
                          for name in self.lowered.steps[index].node["outputs"])
            stages.append((self.lowered.program(steps, after, self.layout if last else ()), written))
            previous = bound
        return stages

    # -- a request ---------------------------------------------------------------------------------------------
    def __call__(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        arrays, rows = self.inputs(feeds)
        outputs = np.empty(rows * self.row_bytes, _BYTE)
        staged = rows * self.macs_per_row >= BLAS_MIN_MACS
        chunk = min(rows, self.chunk_rows) if staged else rows
        columns = self.columns if staged else {}
        executor = self.executor
        if self.lock.acquire(blocking=False):
            try:
                buffers = executor._kept.get(chunk)
                if buffers is None or staged:
                    buffers = executor.kept_buffers(chunk, columns)
                self.execute(arrays, outputs, rows, chunk, staged, buffers)
            finally:
                self.lock.release()
        else:  # another thread is using the kept buffers
            self.execute(arrays, outputs, rows, chunk, staged, executor.buffers(chunk, columns))
        return {name: np.ndarray((rows,) + shape, dtype, outputs, start * rows)
                for name, dtype, start, shape in self.results}

    def execute(self, arrays: List[np.ndarray], outputs: np.ndarray, rows: int, chunk: int, staged: bool,
                buffers: Dict[str, np.ndarray]) -> None:
        """All rows in one interpreter call, or in chunks with BLAS products between the interpreter's calls."""
        if not staged:
            (_entry[0] if _entry else interpreter())(self.whole, rows, 0, rows, 0, rows, self.weights,
                                                     buffers["scratch"], outputs, *arrays)
            return
        scratch = buffers["scratch"]
        sizes = [array.size // rows for array in arrays]
        with np.errstate(all="ignore"):  # IEEE results, as the NumPy executor: no warnings
            for start in range(0, rows, chunk):
                count = min(chunk, rows - start)
                part = [array[start * size:(start + count) * size] for array, size in zip(arrays, sizes)]
                for (program, written), (index, gemm) in zip(self.stages, self.gemms):
                    self.run_stage(program, written, count, start, rows, scratch, outputs, part)
                    self.blas_product(index, gemm, part, buffers, count)
                program, written = self.stages[-1]
                self.run_stage(program, written, count, start, rows, scratch, outputs, part)

    def run_stage(self, program: np.ndarray, written: int, count: int, start: int, rows: int, scratch: np.ndarray,
                  outputs: np.ndarray, part: List[np.ndarray]) -> None:
        """One interpreter call on the `count` rows of a chunk starting at row `start` of the request, split by
        rows between threads when it is large enough to gain from it (the interpreter releases the GIL)."""
        execute, weights = interpreter(), self.weights
        lanes = min(LANES, count * written // PARALLEL_MIN_ELEMENTS)
        if lanes < 2:
            execute(program, count, 0, count, start, rows, weights, scratch, outputs, *part)
            return
        bounds = [count * lane // lanes for lane in range(lanes + 1)]
        futures = [_pool().submit(execute, program, bounds[lane + 1] - bounds[lane], bounds[lane], count, start, rows,
                                  weights, scratch, outputs, *part) for lane in range(1, lanes)]
        try:
            execute(program, bounds[1], 0, count, start, rows, weights, scratch, outputs, *part)
        finally:
            for future in futures:
                future.result()

    def inputs(self, feeds: Mapping[str, np.ndarray]) -> Tuple[List[np.ndarray], int]:
        """The inputs as flat writable byte arrays in argument order (empty for inputs this output set does not
        read) and the batch size. Anything unusual goes through the NumPy executor's checks, which raise the errors
        users see."""
        arrays = [_EMPTY] * MAX_INPUTS
        rows = -1
        for name, index, dtype, rank, rest in self.checks:
            array = feeds.get(name)
            if (type(array) is not np.ndarray or array.dtype is not dtype or array.ndim != rank
                    or array.shape[1:] != rest or (rows >= 0 and array.shape[0] != rows)):
                return self.checked_inputs(feeds)  # (dtype: `is` holds for native dtypes; others go this way)
            flags = array.flags
            if not (flags.c_contiguous and flags.writeable):
                return self.checked_inputs(feeds)
            arrays[index] = np.ndarray((array.nbytes,), _BYTE, array)
            rows = array.shape[0]
        return arrays, rows if rows >= 0 else 0

    def checked_inputs(self, feeds: Mapping[str, np.ndarray]) -> Tuple[List[np.ndarray], int]:
        """`inputs` for feeds that are not plain arrays of the declared dtype and shape: the NumPy executor's
        checks (and errors), then native-order copies where needed."""
        missing = {name for name, _, _, _, _ in self.checks} - set(feeds)
        if missing:
            raise InputError("missing input(s): {}".format(", ".join(sorted(missing))))
        checked = self.executor.check_feeds({name: feeds[name] for name, _, _, _, _ in self.checks})
        arrays = [_EMPTY] * MAX_INPUTS
        rows = 0
        for name, index, dtype, _, _ in self.checks:
            arrays[index] = _bytes(np.asarray(checked[name], dtype))  # native byte order
            rows = len(checked[name])
        return arrays, rows

    def blas_product(self, index: int, gemm: Gemm, inputs: List[np.ndarray], buffers: Dict[str, np.ndarray],
                     rows: int) -> None:
        """Product `index` of a chunk of `rows` rows with BLAS, into the buffers the interpreter reads next."""
        x = _array(gemm.x, inputs, buffers["scratch"], rows)
        y = _array(gemm.y, inputs, buffers["scratch"], rows)
        w = _array(gemm.w, inputs, self.weights, rows)
        if gemm.conv is None:
            np.matmul(x, w.T if gemm.w.transposed else w, out=y)
            return
        conv = gemm.conv
        columns = buffers["columns{}".format(index)][:rows]
        numba_kernels.im2col(x, columns, conv["kernel_h"], conv["kernel_w"], conv["stride_h"], conv["stride_w"],
                             conv["pad_top"], conv["pad_left"])
        depth, filters = columns.shape[-1], gemm.w.shape[-1]
        np.matmul(columns.reshape(-1, depth), w.reshape(depth, filters), out=y.reshape(-1, filters))


def _bytes(array: np.ndarray) -> np.ndarray:
    """The array's data as a flat, writable (so that the interpreter's one signature fits) byte array, without a
    copy when it already is one."""
    flags = array.flags
    if not (flags.c_contiguous and flags.writeable):
        array = np.array(array, order="C")
    return np.ndarray((array.nbytes,), _BYTE, array)


def _columns_shape(gemm: Gemm) -> Tuple[int, ...]:
    depth = gemm.conv["kernel_h"] * gemm.conv["kernel_w"] * gemm.x.shape[3]
    return (gemm.y.shape[1], gemm.y.shape[2], depth)


def _array(value: Value, inputs: List[np.ndarray], buffer: np.ndarray, rows: int) -> np.ndarray:
    """The NumPy view of a value for a chunk of `rows` rows, as the interpreter sees it."""
    storage = value.storage()
    shape = (rows,) + tuple(value.shape[1:]) if value.batched else value.shape
    count = int(np.prod(shape)) * value.itemsize
    if storage.kind == "input":
        data = inputs[storage.index]
    else:
        start = storage.offset * rows if storage.kind == "slot" else storage.offset
        data = buffer[start:start + count]
    return data[:count].view(value.dtype).reshape(shape)


_entry: List[Callable[..., Any]] = []
_pools: List[ThreadPoolExecutor] = []
_setup = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that run the parts of large interpreter calls after the first (which runs in the caller's
    thread)."""
    if not _pools:
        with _setup:
            if not _pools:
                _pools.append(ThreadPoolExecutor(max_workers=max(1, LANES - 1), thread_name_prefix="sbif-numba"))
    return _pools[0]


def interpreter() -> Callable[..., Any]:
    """`numba_kernels.execute`, called through its compiled entry point once it is compiled or loaded from
    numba's cache: its arguments always have the one signature the callers build (an int64 program, ints, flat
    writable uint8 arrays), so numba's per-call type dispatch is skipped."""
    if _entry:
        return _entry[0]
    with _setup:
        if not _entry:
            execute = numba_kernels.execute
            arguments = (np.zeros(0, np.int64), 0, 0, 0, 0, 0) + (np.zeros(8, np.uint8),) * (3 + MAX_INPUTS)
            try:
                execute(*arguments)  # compiles, or loads from numba's cache
            except Exception as exc:  # numba's own errors: this numba cannot compile the kernels
                raise UnsupportedError("the numba backend's kernels do not compile with numba {} ({}: {}); use "
                                       "backend='numpy' or SBIF_BACKEND=numpy".format(
                                           numba.__version__, type(exc).__name__, str(exc).splitlines()[0])) from exc
            try:
                signature = tuple(execute.typeof_pyval(argument) for argument in arguments)
                _entry.append(execute.overloads[signature].entry_point)
            except (AttributeError, KeyError):  # a numba without these internals: keep its dispatcher
                _entry.append(execute)
    return _entry[0]
