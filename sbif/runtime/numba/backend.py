"""The numba backend: the graph lowered to a program (`program`) that one compiled interpreter
(`kernels.execute`) runs without per-op Python overhead, in buffers kept per batch size. Same interface and
results (within SPEC section 6) as the NumPy `GraphExecutor`, which computes instead any output set whose nodes
lack a kernel (with a warning naming the op).

Imported only when the numba backend is chosen. It imports numba only to build its kernels (or when it falls back
to numba's JIT): a process that finds them built never imports numba.

- Small requests (the single-observation path) run the whole program in one call.
- Larger ones run in chunks of rows, which threads take one after another from a shared counter (a thread held
  back by a busy CPU leaves its chunks to the others): the whole program per chunk of about two L2 caches of
  scratch (so one step reads what the step before wrote from the caches), or, with products too large for the
  cache, the interpreter between those products (on a cache's worth of rows at a time), which NumPy computes with
  BLAS in the same buffers (`np.matmul(out=)`; a padded conv2d as im2col, then one product; one without padding
  stays in the interpreter, which reads its patches in place).
- The interpreter and its kernels are compiled once per machine, not per model, into an extension module kept in
  a cache directory (`aot`); a later process imports it in about a millisecond. Where that module cannot be
  built (no C compiler), numba's JIT compiles them and caches them on disk (`cache=True`) instead.
- Results are fresh arrays on every call (views of one output buffer allocated per call); the buffers a call
  works in are reused by the next one and never returned.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import os
import threading
import warnings
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ...errors import InputError, UnsupportedError
from ...format import SbifFile
from ..executor import GraphExecutor
from .encoding import ARENA_HEADER, ARENA_OFFSET_BYTES, FLAG_STRIDE, MAILBOX_FIELDS, MAX_INPUTS
from .host import PARAMETERS
from .lanes import shared_lanes
from .program import Gemm, Lowered, Value, aligned, aligned_bytes

#: a request runs in chunks with BLAS products once its BLAS-worthy products (below) hold this many multiply-adds
#: (below, the interpreter's own products are faster: no call overhead, and the weights stay in cache)
BLAS_MIN_MACS = 1 << 22
#: a dense product goes to BLAS only when its weights have this many elements (`host`: a core's L2 cache of
#: float32; a convolution always does): smaller weights stay in cache while the interpreter's panel tiles run at
#: BLAS's rate or better, without BLAS's calls and the staging of its operands (benchmarks/README.md, "Tuning")
BLAS_MIN_WEIGHTS = PARAMETERS.blas_min_weights
#: a chunk has this many rows, or fewer when its scratch would pass CHUNK_BYTES; never fewer than MIN_CHUNK_ROWS
#: (below that, BLAS products re-read their weights too often)
CHUNK_ROWS = 4096
CHUNK_BYTES = 32 << 20
MIN_CHUNK_ROWS = 64
#: without BLAS products, a lane runs its rows in interpreter calls whose scratch is about this size (`host`: in
#: proportion to a core's L2 cache), so that a step reads what the one before it wrote from the L2 cache, not from
#: L3, though never on fewer than CACHED_CHUNK_MIN_ROWS rows (each call costs a few microseconds of Python)
CACHED_CHUNK_BYTES = PARAMETERS.cached_chunk_bytes
CACHED_CHUNK_MIN_ROWS = 256
#: a padded convolution's patch columns are written and multiplied for this many bytes of them at a time (`host`: in
#: proportion to a core's L2 cache), so that the product reads them from the caches (at least one image at a time)
COLUMN_BLOCK_BYTES = PARAMETERS.column_block_bytes
#: an interpreter call is split between threads (up to one per CPU) once it writes this many elements plus
#: multiply-adds (`_Runner.whole_work`)
PARALLEL_MIN_WORK = 1 << 21
#: at most this many lanes: beyond it the parts of a request get too small to pay for a thread's hand-off
MAX_LANES = 8
LANES = min(MAX_LANES, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
#: a first call of the interpreter that takes longer than this is compiling it (`CompileNotice`)
COMPILE_NOTICE_SECONDS = 3.0
#: how many request shapes keep their buffers
KEPT_BATCH_SIZES = 4
_BYTE = np.dtype(np.uint8)
_EMPTY = np.zeros(0, np.uint8)
Columns = Dict[str, Tuple[int, Tuple[int, ...], str]]


class CompileNotice(UserWarning):
    """The numba kernels are being compiled (once per machine): why the first load waits."""


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
        runner = self._runner(tuple(outputs))
        if runner is None:
            return super().run(feeds, outputs)
        return runner(feeds)

    def single_row(self, output: str) -> Optional["SingleRow"]:
        """The fast path of `output` for one observation, or None when it reads other inputs than `obs`, when one
        observation is enough work for BLAS products (a large dense product, a padded convolution), or when the NumPy
        executor computes it (see `run`)."""
        runner = self._runner((output,))
        if (runner is None or [name for name, _, _, _, _ in runner.checks] != ["obs"]
                or runner.macs_per_row >= BLAS_MIN_MACS):
            return None
        return SingleRow(runner)

    def _runner(self, outputs: Tuple[str, ...]) -> Optional["_Runner"]:
        """The runner of an output set, made on first use; None when the NumPy executor computes it."""
        runner = self._runners.get(outputs, False)
        if runner is False:
            runner = self._runners[outputs] = self._make_runner(outputs)
        return runner

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
                      RuntimeWarning, stacklevel=5)
        return None

    def buffers(self, rows: int, columns: Columns) -> Dict[str, np.ndarray]:
        """Fresh working buffers for `rows` rows: the scratch, and im2col columns for chunks with convolutions
        (`columns`: per convolution, its rows, shape and dtype)."""
        found = {"scratch": aligned_bytes(rows * self.lowered.scratch_bytes)}
        found.update((name, aligned_bytes(count * int(np.prod(shape)) * np.dtype(dtype).itemsize).view(dtype).reshape(
            (count,) + shape)) for name, (count, shape, dtype) in columns.items())
        return found

    def kept_buffers(self, rows: int, columns: Columns) -> Dict[str, np.ndarray]:
        """The buffers kept for chunks of `rows` rows (for the last few sizes); call with `lock` held."""
        found = self._kept.get(rows)
        if found is None or any(name not in found or len(found[name]) != count
                                for name, (count, _, _) in columns.items()):
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
        self.output_names = outputs
        self.checks = [(entry["name"], index, np.dtype(entry["dtype"]), len(entry["shape"]),
                        tuple(entry["shape"][1:])) for index, entry in enumerate(executor.model.document["inputs"])
                       if entry["name"] in required]
        self.row_bytes, self.layout = lowered.output_layout(outputs)
        #: per output: name, dtype, where its rows start in the output buffer (bytes per row), shape after the batch
        self.results = [(name, np.dtype(dtype), offset, tuple(lowered.outputs[name].shape[1:]))
                        for name, dtype, offset, _ in self.layout]
        self.needed = needed
        gemms = [(index, lowered.steps[index].gemm) for index in needed if lowered.steps[index].gemm is not None]
        #: the products BLAS computes: the convolutions the interpreter cannot run from their panels (those with
        #: padding) and the dense products with large weights
        self.gemms: List[Tuple[int, Gemm]] = [
            (index, gemm) for index, gemm in gemms
            if (gemm.w.layout != "panels" if gemm.conv is not None else gemm.w.matrix.size >= BLAS_MIN_WEIGHTS)]
        self.macs_per_row = sum(gemm.macs_per_row() for _, gemm in self.gemms)
        self.whole = lowered.program(needed, copy_out=self.layout)
        #: what decides whether a request is worth splitting between threads: per row, the elements the steps
        #: write plus the multiply-adds of their products
        self.whole_work = sum(lowered.values[name].row_size for index in needed
                              for name in lowered.steps[index].node["outputs"])
        self.whole_work += sum(lowered.steps[index].gemm.macs_per_row() for index in needed
                               if lowered.steps[index].gemm is not None)
        #: per convolution: the patch columns of one image (shape, dtype), and how many images a block has
        self.columns = {"columns{}".format(index): (_columns_shape(gemm), gemm.x.dtype)
                        for index, gemm in self.gemms if gemm.conv is not None}
        self.column_block = {name: max(1, COLUMN_BLOCK_BYTES // (int(np.prod(shape)) * np.dtype(dtype).itemsize))
                             for name, (shape, dtype) in self.columns.items()}
        scratch_bytes = max(1, lowered.scratch_bytes)
        self.chunk_rows = min(CHUNK_ROWS, max(MIN_CHUNK_ROWS, CHUNK_BYTES // scratch_bytes))
        self.cached_chunk_rows = max(CACHED_CHUNK_MIN_ROWS, CACHED_CHUNK_BYTES // scratch_bytes)
        #: the rows of a chunk each interpreter call between BLAS products runs: as many as keep their scratch in
        #: the cache (CACHED_CHUNK_BYTES), so that a step reads what the one before it wrote from there, not from
        #: memory (a chunk's scratch, made for the BLAS products, is larger)
        self.stage_rows = max(1, CACHED_CHUNK_BYTES // scratch_bytes)
        self.stages: List[np.ndarray] = self._stages()

    def _stages(self) -> List[np.ndarray]:
        """The programs of the calls around the BLAS products: stage k runs the needed steps after product k-1 (and
        its bias) up to product k; the last stage also copies the outputs."""
        stages = []
        previous = -1
        bounds = [index for index, _ in self.gemms] + [len(self.lowered.steps)]
        for position, bound in enumerate(bounds):
            steps = [index for index in self.needed if previous < index < bound]
            after = [previous] if previous >= 0 else []
            last = position == len(bounds) - 1
            stages.append(self.lowered.program(steps, after, self.layout if last else ()))
            previous = bound
        return stages

    # -- a request ---------------------------------------------------------------------------------------------
    def __call__(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        arrays, rows = self.inputs(feeds)
        self.executor.check_batch(self.output_names, rows)  # before the output buffer is allocated
        outputs = np.empty(rows * self.row_bytes, _BYTE)
        staged = rows * self.macs_per_row >= BLAS_MIN_MACS
        lanes = max(1, min(LANES, rows, rows * self.whole_work // PARALLEL_MIN_WORK))
        chunk = even_chunk_rows(rows, lanes, self.chunk_rows if staged else self.cached_chunk_rows)
        columns: Columns = {name: (lanes * min(chunk, self.column_block[name]), shape, dtype)
                            for name, (shape, dtype) in self.columns.items()} if staged else {}
        executor = self.executor
        if rows == 0:
            pass
        elif self.lock.acquire(blocking=False):
            try:
                buffers = executor._kept.get(chunk * lanes)
                if buffers is None or staged:
                    buffers = executor.kept_buffers(chunk * lanes, columns)
                self.execute(arrays, outputs, rows, lanes, chunk, staged, buffers)
            finally:
                self.lock.release()
        else:  # another thread is using the kept buffers
            self.execute(arrays, outputs, rows, lanes, chunk, staged, executor.buffers(chunk * lanes, columns))
        return {name: np.ndarray((rows,) + shape, dtype, outputs, start * rows)
                for name, dtype, start, shape in self.results}

    def execute(self, arrays: List[np.ndarray], outputs: np.ndarray, rows: int, lanes: int, chunk: int,
                staged: bool, buffers: Dict[str, np.ndarray]) -> None:
        """The request's rows in chunks of `chunk` rows (chunk k starts at row k * chunk), run by `lanes` threads
        (the caller's and those of `lanes`: the interpreter and BLAS release the GIL), each in its own part of the
        buffers: without BLAS products, in compiled code from start to end (`Lanes.run_interpreter`), else as a
        Python task per lane (`Lanes.run_tasks`). Each lane takes the next chunk from a shared counter until none
        is left, so that a lane held back (its CPU taken by another process, a thread that wakes late) leaves its
        chunks to the others instead of keeping them waiting at the end. Which lane runs a chunk changes no bit:
        the chunks' bounds depend on `rows` and `chunk` alone (so even BLAS sees the same shapes), and lanes differ
        only in where their buffers are. Lanes make BLAS single-threaded meanwhile: they already keep the CPUs
        busy, and BLAS threads that spin-wait on a busy machine cost more than they gain."""
        if lanes == 1:
            self.run_chunks(arrays, outputs, rows, chunk, staged, buffers, ChunkCounter(-(-rows // chunk)))
            return
        threads = shared_lanes(compiled_kernels(), MAX_LANES - 1)
        if not staged:
            scratch = buffers["scratch"]
            if not threads.run_interpreter(lanes, self.whole, self.weights, scratch,
                                           scratch.size // (lanes * chunk) * chunk, outputs, arrays, rows, chunk):
                self.run_chunks(arrays, outputs, rows, chunk, staged, _lane_buffers(buffers, 0, lanes, chunk),
                                ChunkCounter(-(-rows // chunk)))
            return
        chunks = ChunkCounter(-(-rows // chunk))
        with _single_threaded_blas(True):
            threads.run_tasks([functools.partial(self.run_chunks, arrays, outputs, rows, chunk, staged,
                                                 _lane_buffers(buffers, lane, lanes, chunk), chunks)
                               for lane in range(lanes)])

    def run_chunks(self, arrays: List[np.ndarray], outputs: np.ndarray, rows: int, chunk: int, staged: bool,
                   buffers: Dict[str, np.ndarray], chunks: "ChunkCounter") -> None:
        """One lane: chunks taken from `chunks` until none is left, each run in this lane's `buffers`."""
        with np.errstate(all="ignore"):  # IEEE results, as the NumPy executor: no warnings (errstate is per thread)
            index = chunks.take()
            while index is not None:
                start = index * chunk
                self.run_chunk(arrays, outputs, rows, start, min(chunk, rows - start), staged, buffers)
                index = chunks.take()

    def run_chunk(self, arrays: List[np.ndarray], outputs: np.ndarray, rows: int, start: int, count: int,
                  staged: bool, buffers: Dict[str, np.ndarray]) -> None:
        """Rows start..start + count of the request's `rows`: in one interpreter call, or (`staged`) in
        interpreter calls between BLAS products."""
        part = [array[start * (array.size // rows):(start + count) * (array.size // rows)] for array in arrays]
        scratch = buffers["scratch"]
        if not staged:
            compiled_kernels().execute(self.whole, count, 0, count, start, rows, self.weights, scratch, outputs,
                                       *part)
            return
        for program, (index, gemm) in zip(self.stages, self.gemms):
            self.run_stage(program, count, start, rows, scratch, outputs, part)
            self.blas_product(index, gemm, part, buffers, count)
        self.run_stage(self.stages[-1], count, start, rows, scratch, outputs, part)

    def run_stage(self, program: np.ndarray, count: int, start: int, rows: int, scratch: np.ndarray,
                  outputs: np.ndarray, part: List[np.ndarray]) -> None:
        """A stage's program on a chunk of `count` rows (row `start` of the request's `rows`), in calls on
        `stage_rows` of them at a time."""
        execute, weights = compiled_kernels().execute, self.weights
        for first in range(0, count, self.stage_rows):
            execute(program, min(self.stage_rows, count - first), first, count, start, rows, weights, scratch,
                    outputs, *part)

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
        if gemm.conv is None:
            np.matmul(x, gemm.w.matrix, out=y)
            return
        w = _array(gemm.w, inputs, self.weights, rows)
        conv = gemm.conv
        columns = buffers["columns{}".format(index)]
        depth, filters = columns.shape[-1], gemm.w.shape[-1]
        w = w.reshape(depth, filters)
        for first in range(0, rows, len(columns)):  # a block of images at a time (COLUMN_BLOCK_BYTES)
            last = min(rows, first + len(columns))
            block = columns[:last - first]
            compiled_kernels().im2col(x[first:last], block, conv["kernel_h"], conv["kernel_w"], conv["stride_h"],
                                 conv["stride_w"], conv["pad_top"], conv["pad_left"])
            np.matmul(block.reshape(-1, depth), w, out=y[first:last].reshape(-1, filters))


class SingleRow:
    """One output computed from the observation alone, for one observation, without `run`'s dictionaries and
    checks: the observation is copied (with NumPy's casting, as `astype`) into a typed view of an arena that also
    holds the scratch and the output, and one call with three arrays runs the whole program. Each thread has its
    own arena (thread-local: it goes with the thread), so calls need no lock."""

    def __init__(self, runner: _Runner):
        (_, _, self.dtype, _, self.shape), = runner.checks
        (_, out_dtype, out_start, out_shape), = runner.results
        self.program, self.weights = runner.whole, runner.weights
        self.execute = compiled_kernels().execute_one
        scratch = aligned(ARENA_HEADER * ARENA_OFFSET_BYTES)
        outputs = aligned(scratch + runner.lowered.scratch_bytes)
        self.observation_at = aligned(outputs + runner.row_bytes)
        self.output = (outputs + out_start, out_dtype, out_shape)
        self.header = np.array([scratch, outputs] + [self.observation_at] * MAX_INPUTS, np.uint64)
        self.size = aligned(self.observation_at + self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64)))
        self._local = threading.local()

    def __call__(self, observation: np.ndarray) -> Any:
        """The output's row for one observation (a fresh array, or a NumPy scalar for one-element rows). Raises
        ValueError or TypeError when the observation does not convert to the input's dtype and shape."""
        try:
            arena, observation_view, output, row = self._local.arena
        except AttributeError:
            arena, observation_view, output, row = self.arena()
        observation_view[...] = observation
        self.execute(self.program, self.weights, arena)
        return output[0] if row is None else row.copy()

    def kernel(self, observation: np.ndarray) -> Callable[[], None]:
        """The compiled call alone, on `observation` placed in this thread's arena: what `__call__` costs without
        its Python (for benchmarks)."""
        arena, observation_view, _, _ = self.arena()
        observation_view[...] = observation
        return functools.partial(self.execute, self.program, self.weights, arena)

    def arena(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """This thread's arena, with its observation view, its output view ([1, ...]) and that view's row (None
        for one-element rows, returned as NumPy scalars)."""
        arena = aligned_bytes(self.size)
        arena[:self.header.nbytes] = self.header.view(np.uint8)
        start, dtype, shape = self.output
        output = np.ndarray((1,) + shape, dtype, arena, start)
        found = (arena, np.ndarray(self.shape, self.dtype, arena, self.observation_at), output,
                 None if output.ndim == 1 else output[0])
        self._local.arena = found
        return found


def even_chunk_rows(rows: int, lanes: int, limit: int) -> int:
    """Rows per chunk: `rows` divided evenly between the fewest chunks of at most `limit` rows whose number is a
    multiple of `lanes` (rounded up: the last chunk may be shorter), so that on an idle machine every lane takes
    as many rows as the others, and a lane held back gives whole chunks to the others."""
    per_lane = max(1, -(-rows // (lanes * limit)))
    return max(1, -(-rows // (lanes * per_lane)))


class ChunkCounter:
    """The chunks of a request not yet taken by a lane, shared by its lanes: `take` hands each index out once, in
    order, under a lock (each chunk is long enough that the lock costs nothing)."""

    def __init__(self, count: int):
        self._next, self._count = 0, count
        self._lock = threading.Lock()

    def take(self) -> Optional[int]:
        """The next chunk's index, or None when every chunk has been taken."""
        with self._lock:
            index = self._next
            if index >= self._count:
                return None
            self._next = index + 1
            return index


def _lane_buffers(buffers: Dict[str, np.ndarray], lane: int, lanes: int, chunk: int) -> Dict[str, np.ndarray]:
    """Lane `lane`'s part of buffers made for `lanes` lanes of `chunk` rows: its rows of each."""
    part = {}
    for name, array in buffers.items():
        if name == "scratch":  # flat bytes
            size = array.size // (lanes * chunk) * chunk
        else:  # im2col columns: a block of images per lane
            size = len(array) // lanes
        part[name] = array[lane * size:(lane + 1) * size]
    return part


def _single_threaded_blas(active: bool) -> Any:
    """A context in which BLAS runs on one thread (threadpoolctl's limit: process-wide while it lasts), when
    `active` and threadpoolctl is installed; otherwise nothing changes (concurrent calls into OpenBLAS then wait
    for each other: slower, still correct)."""
    if not active:
        return contextlib.nullcontext()
    if not _blas_limiters:
        with _setup:
            if not _blas_limiters:
                try:
                    from threadpoolctl import ThreadpoolController
                except ImportError:
                    _blas_limiters.append(None)
                else:
                    _blas_limiters.append(ThreadpoolController().select(user_api="blas"))
    limiter = _blas_limiters[0]
    return contextlib.nullcontext() if limiter is None else limiter.limit(limits=1)


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


_blas_limiters: List[Any] = []
_kernels: List["Kernels"] = []
_setup = threading.Lock()


class Kernels(NamedTuple):
    """The compiled entry points the backend calls (`kernels.execute`, `execute_one`, `im2col`; the lanes'
    `run_lane`, `serve`, `publish`, `wait_change`), each for its one signature (an int64 program, ints, flat
    writable uint8 buffers; float32 images; int64 mailbox and flags), and where they come from: a path to this
    machine's extension module, or "numba JIT"."""

    execute: Callable[..., None]
    execute_one: Callable[..., None]
    im2col: Callable[..., None]
    run_lane: Callable[..., None]
    serve: Callable[..., None]
    publish: Callable[..., None]
    wait_change: Callable[..., None]
    origin: str


def compiled_kernels() -> Kernels:
    """The compiled entry points, loaded on first use: from this machine's extension module (`aot`, built
    the first time), else, with a warning saying why, from numba's JIT and its disk cache."""
    if not _kernels:
        with _setup:
            if not _kernels:
                _kernels.append(_load_kernels())
    return _kernels[0]


def _load_kernels() -> Kernels:
    from . import aot

    try:
        module = aot.load()
        if module is None:
            aot.announced(aot.build, _compile_notice)  # a progress line, or a CompileNotice
            module = aot.load()
        if module is None:
            raise aot.KernelsUnavailable("the build wrote no module to {}".format(aot.module_path()))
        return Kernels(*(getattr(module, name) for name in Kernels._fields[:-1]), module.__file__)
    except aot.KernelsUnavailable as exc:
        warnings.warn("sbif numba backend: {}; numba's JIT runs the kernels instead (a process then takes about a "
                      "second more to start)".format(exc), RuntimeWarning, stacklevel=2)
    from . import kernels

    return Kernels(_compiled(kernels.execute, (np.zeros(0, np.int64), 0, 0, 0, 0, 0)
                             + (np.zeros(8, np.uint8),) * (3 + MAX_INPUTS)),
                   _compiled(kernels.execute_one, (np.zeros(0, np.int64), np.zeros(8, np.uint8),
                                                         np.zeros(ARENA_HEADER * ARENA_OFFSET_BYTES, np.uint8))),
                   kernels.im2col, *_compiled_lanes(kernels), "numba JIT")


def _compiled_lanes(kernels: Any) -> Tuple[Callable[..., None], ...]:
    """The lanes' entry points (`kernels.run_lane`, `serve`, `publish`, `wait_change`) from numba's JIT, compiled
    by calls that do nothing: an empty request, a spin of none, flags set to what they hold."""
    mailbox, flags = np.zeros(len(MAILBOX_FIELDS), np.int64), np.zeros(2 * FLAG_STRIDE, np.int64)
    return (_compiled(kernels.run_lane, (mailbox, flags, 0)), _compiled(kernels.serve, (mailbox, flags, 1, 0)),
            _compiled(kernels.publish, (flags, 0, 0)), _compiled(kernels.wait_change, (flags, 0, 1, 0)))


@contextlib.contextmanager
def _compile_notice(message: str) -> Any:
    """A `CompileNotice` with `message` if the block takes longer than COMPILE_NOTICE_SECONDS (a load from a
    cache does not; a compilation does), so that a user knows why the process waits."""
    notice = threading.Timer(COMPILE_NOTICE_SECONDS, warnings.warn_explicit, (message, CompileNotice, "sbif", 0))
    notice.daemon = True
    notice.start()
    try:
        yield
    finally:
        notice.cancel()


@contextlib.contextmanager
def _jit_compiling(name: str) -> Any:
    """numba's JIT compiling the kernels of entry point `name` (or loading them from its cache, in about a second):
    on a terminal, a progress line naming the kernel being compiled (`aot.CompilerStages`); elsewhere a
    `CompileNotice` if it takes longer than COMPILE_NOTICE_SECONDS."""
    from ... import progress
    from . import aot, kernels

    if not progress.enabled():
        with _compile_notice("compiling the numba kernels of {} for this machine (once: about a minute; later "
                             "processes load them from numba's cache)".format(name)):
            yield
        return
    with progress.Progress("compiling SBIF's numba kernels of {} with numba's JIT (once: numba caches "
                           "them)".format(name)) as line, \
            aot.CompilerStages.observing(kernels.__name__, [], line.doing):
        yield


def _compiled(function: Any, arguments: Tuple[Any, ...]) -> Callable[..., Any]:
    """The entry point of a numba function compiled (or loaded from numba's cache) for these arguments' types:
    running an empty program compiles it. Calling the entry point skips numba's per-call type dispatch."""
    import numba

    try:
        with _jit_compiling(function.__name__):
            function(*arguments)
    except Exception as exc:  # numba's own errors: this numba cannot compile the kernels
        raise UnsupportedError("the numba backend's kernels do not compile with numba {} ({}: {}); use "
                               "backend='numpy' or SBIF_BACKEND=numpy".format(
                                   numba.__version__, type(exc).__name__, str(exc).splitlines()[0])) from exc
    try:
        signature = tuple(function.typeof_pyval(argument) for argument in arguments)
        return function.overloads[signature].entry_point
    except (AttributeError, KeyError):  # a numba without these internals: keep its dispatcher
        return function
