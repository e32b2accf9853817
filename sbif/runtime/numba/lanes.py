"""The threads that run a request's lanes beside the caller's thread, handing work over in well under a
microsecond.

A thread that blocks (a condition variable, a lock, the GIL: a futex) takes tens of microseconds to run again once
woken, more on a virtual machine. On a request of a millisecond split between two lanes, the hand-offs of a thread
pool (wake a thread; each chunk's Python taking the GIL from the other lane) cost a tenth of it or more. So:

- An interpreter request (the whole program on every chunk) is run by compiled code from start to end: the caller
  writes a mailbox (the program, the buffers' addresses, the chunk size: encoding's MAILBOX_FIELDS), bumps each
  lane's request flag, and runs lane 0 (`kernels.run_lane`) while the lanes' threads, waiting in
  `kernels.serve`, run theirs: chunks taken from an atomic counter, without the GIL, the done flag set at the end.
- Between requests a lane's thread spins in `kernels.serve` (atomic loads and PAUSE, no GIL) for half as long as
  the last request took (SPIN_SHARE, at most SPIN_SECONDS), then blocks in Python until the next request; the
  caller, its own lane done, spins the same way for the others. onnxruntime's and OpenMP's thread pools spin for
  the same reason; the share bounds what spinning costs the machine's other work.
- A staged request (BLAS products between interpreter calls, in Python) hands a Python task to each lane: `serve`
  returns, the thread runs the task holding the GIL, then sets its done flag.

Flags are set with release ordering and read with acquire ordering (`kernels.publish`, `serve`, `wait_change`),
so a lane that sees a request sees its mailbox, and the caller that sees a lane done sees its outputs. Python
objects (tasks, their exceptions) are handed over under the GIL.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .encoding import (CHUNK_COUNTER, FLAG_STRIDE, LANE_DONE, LANE_FAILED, LANE_REQUEST, LANE_STATE, MAILBOX_FIELDS,
                       MAILBOX_KIND, MAILBOX_SPINS, MAX_INPUTS, REQUEST_INTERPRETER, REQUEST_TASKS, SERVE_TASKS, fields)

#: how long a lane's thread spins for the next request before it blocks: SPIN_SHARE of the time the caller's lane
#: took on the last request, at most SPIN_SECONDS. Back-to-back requests (the caller's Python between two calls
#: takes tens of microseconds) find the lanes spinning, and a lane never spins more than half the time it worked.
#: A caller spins up to SPIN_SECONDS for the lanes to finish (they are running: it is the tail of their work).
SPIN_SHARE = 0.5
SPIN_SECONDS = 1e-3
#: after SPIN_SECONDS, a caller looks at a lane that is not done this often (its thread was preempted: rare)
POLL_SECONDS = 1e-4
#: spins (`kernels.wait_change`) timed to learn how long one takes here (PAUSE takes 10 to 150 cycles, by CPU)
CALIBRATION_SPINS = 2000

Task = Callable[[], None]


class Lanes:
    """Up to `capacity` threads besides the caller's, started as requests first need them, serving one request at
    a time (`run_interpreter`, `run_tasks`). While another thread's request holds them, a request runs in its
    caller's thread alone (`run_tasks` runs its tasks there; `run_interpreter` declines, and its caller runs the
    chunks): the CPUs are busy with that request anyway."""

    def __init__(self, kernels: Any, capacity: int):
        """`kernels`: the backend's `Kernels` (`run_lane`, `serve`, `publish`, `wait_change`)."""
        self._kernels = kernels
        self._flags = np.zeros((capacity + 1) * FLAG_STRIDE, np.int64)
        self._mailbox = np.zeros(len(MAILBOX_FIELDS), np.int64)
        self._number = 0
        #: a staged request's tasks and the exception each raised (None: none)
        self._tasks: Tuple[Sequence[Task], List[Optional[BaseException]]] = ((), [])
        self._threads: List[threading.Thread] = []
        self._sleeping = 0
        self._busy = threading.Lock()
        self._changed = threading.Condition()
        self._spins = spins_for(kernels.wait_change, SPIN_SECONDS)
        #: a lane's spins after a request (SPIN_SHARE of the caller's lane's time on the one before)
        self._idle_spins = 0

    @property
    def capacity(self) -> int:
        return len(self._flags) // FLAG_STRIDE - 1

    def run_interpreter(self, lanes: int, program: np.ndarray, weights: np.ndarray, scratch: np.ndarray,
                        scratch_per_lane: int, outputs: np.ndarray, inputs: Sequence[np.ndarray], rows: int,
                        chunk: int) -> bool:
        """The whole `program` on `rows` rows in chunks of `chunk` rows, by `lanes` lanes, lane k in the
        `scratch_per_lane` bytes of `scratch` from k times that; `inputs` are MAX_INPUTS flat byte arrays of `rows`
        rows each (or empty). False, and nothing run, while another thread's request holds the lanes: the caller
        then runs its chunks alone."""
        if not self._busy.acquire(blocking=False):
            return False
        try:
            values = dict(kind=REQUEST_INTERPRETER, spins=self._idle_spins, program=program.ctypes.data,
                          program_size=program.size, weights=weights.ctypes.data, scratch=scratch.ctypes.data,
                          scratch_per_lane=scratch_per_lane, outputs=outputs.ctypes.data, rows=rows, chunk=chunk,
                          chunks=-(-rows // chunk))
            for index in range(MAX_INPUTS):
                values["input{}".format(index)] = inputs[index].ctypes.data
                values["input{}_row_bytes".format(index)] = inputs[index].size // rows
            mailbox = self._mailbox
            mailbox[:] = fields(MAILBOX_FIELDS, values)
            self._request(lanes, lambda: self._kernels.run_lane(mailbox, self._flags, 0))
        finally:
            self._busy.release()
        return True

    def run_tasks(self, tasks: Sequence[Task]) -> None:
        """Run the tasks concurrently, task 0 in this thread, task k in lane k's, and return once all have
        finished, raising the first exception one raised."""
        if not self._busy.acquire(blocking=False):
            for task in tasks:
                task()
            return
        try:
            errors: List[Optional[BaseException]] = [None] * len(tasks)
            self._tasks = (tasks, errors)
            self._mailbox[MAILBOX_KIND] = REQUEST_TASKS
            self._mailbox[MAILBOX_SPINS] = self._idle_spins
            self._request(len(tasks), tasks[0])
            for error in errors:
                if error is not None:
                    raise error
        finally:
            self._busy.release()

    def _request(self, lanes: int, lead: Task) -> None:
        """Publish request number n + 1 to lanes 1..lanes-1 (its mailbox written), run `lead` here, and return
        once every lane has finished it."""
        if lanes - 1 > self.capacity:
            raise ValueError("{} lanes for {} threads and the caller".format(lanes, self.capacity))
        while len(self._threads) < lanes - 1:
            self._start_thread(len(self._threads) + 1)
        self._number += 1
        number, flags, publish = self._number, self._flags, self._kernels.publish
        flags[CHUNK_COUNTER] = 0
        with self._changed:
            for lane in range(1, lanes):
                publish(flags, lane * FLAG_STRIDE + LANE_REQUEST, number)
            if self._sleeping:
                self._changed.notify_all()
        started = time.perf_counter()
        try:
            lead()
        finally:
            worked = time.perf_counter() - started
            for lane in range(1, lanes):
                self._await(lane, number)
        self._idle_spins = int(self._spins * min(1.0, SPIN_SHARE * worked / SPIN_SECONDS))
        failed = [lane for lane in range(1, lanes) if flags[lane * FLAG_STRIDE + LANE_FAILED]]
        if failed:
            for lane in failed:
                flags[lane * FLAG_STRIDE + LANE_FAILED] = 0
            raise RuntimeError("sbif's compiled kernel run_lane failed (a bug: please report it)")

    def _start_thread(self, lane: int) -> None:
        thread = threading.Thread(target=self._serve, args=(lane,), name="sbif-numba-lane-{}".format(lane),
                                  daemon=True)
        thread.start()
        self._threads.append(thread)

    def _await(self, lane: int, number: int) -> None:
        """Until lane `lane` has finished request `number`: spinning, then looking every POLL_SECONDS. An interrupt
        (Ctrl-C) meanwhile is raised once the lane is done: until then it writes into the request's buffers."""
        flags, done = self._flags, lane * FLAG_STRIDE + LANE_DONE
        seen = int(flags[done])
        if seen != number:
            self._kernels.wait_change(flags, done, seen, self._spins)
        interrupted = None
        while flags[done] != number:
            try:
                time.sleep(POLL_SECONDS)
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _serve(self, lane: int) -> None:
        """Lane `lane`'s thread: `kernels.serve` runs the interpreter requests; here, the Python tasks, and the
        sleep when no request came for SPIN_SECONDS."""
        kernels, flags, mailbox = self._kernels, self._flags, self._mailbox
        line = lane * FLAG_STRIDE
        while True:
            kernels.serve(mailbox, flags, lane, int(mailbox[MAILBOX_SPINS]))
            if flags[line + LANE_STATE] == SERVE_TASKS:
                tasks, errors = self._tasks
                if lane < len(tasks):
                    try:
                        tasks[lane]()
                    except BaseException as exc:  # handed to the caller, which raises it
                        errors[lane] = exc
                kernels.publish(flags, line + LANE_DONE, int(flags[line + LANE_REQUEST]))
                continue
            with self._changed:
                self._sleeping += 1
                while flags[line + LANE_REQUEST] == flags[line + LANE_DONE]:
                    self._changed.wait()
                self._sleeping -= 1


def spins_for(wait_change: Callable[..., None], seconds: float) -> int:
    """How many spins of `wait_change` last about `seconds` here: timed on a flag that never changes (the best of
    three, so that a thread preempted meanwhile does not make the spins seem slower than they are)."""
    flag = np.zeros(1, np.int64)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        wait_change(flag, 0, 0, CALIBRATION_SPINS)
        best = min(best, time.perf_counter() - started)
    return max(1, int(seconds / max(best / CALIBRATION_SPINS, 1e-10)))


_lanes: Dict[str, Lanes] = {}
_setup = threading.Lock()


def shared_lanes(kernels: Any, capacity: int) -> Lanes:
    """The process's lanes for these kernels (by their origin: the extension module, or numba's JIT), made on first
    use, for `capacity` threads besides the caller's."""
    found = _lanes.get(kernels.origin)
    if found is None:
        with _setup:
            found = _lanes.get(kernels.origin)
            if found is None:
                found = _lanes[kernels.origin] = Lanes(kernels, capacity)
    return found


def _forget_in_child() -> None:
    """A forked child has none of its parent's threads: it makes its own lanes when it needs them."""
    global _setup
    _lanes.clear()
    _setup = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
