"""The numba backend's lanes (sbif/runtime/numba/lanes.py): the compiled hand-off (`kernels.wait_change`,
`publish`, `run_lane`, `serve`), a lane held back leaving its chunks to the others, the bounded spin (threads
block once no request comes), exceptions and concurrent callers. Skipped where numba cannot be imported."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("numba")

import sbif  # noqa: E402
from conformance.models import EXAMPLES, ModelInfo, write_model  # noqa: E402
from sbif.runtime.numba import backend, lanes  # noqa: E402
from sbif.runtime.numba.encoding import CHUNK_COUNTER, FLAG_STRIDE, LANE_DONE, LANE_REQUEST  # noqa: E402

#: a test gives up on a thread after this long (a hang is a failure, not a stuck suite)
PATIENCE_SECONDS = 30


@pytest.fixture(scope="module")
def kernels():
    return backend.compiled_kernels()


@pytest.fixture(scope="module")
def sac(tmp_path_factory):
    return write_model(EXAMPLES["sac"], str(tmp_path_factory.mktemp("lanes")))


@pytest.fixture
def interpreter_lanes(monkeypatch):
    """Requests of 11 rows split into chunks of two rows between two lanes, without BLAS products."""
    monkeypatch.setattr(backend, "LANES", 2)
    monkeypatch.setattr(backend, "PARALLEL_MIN_WORK", 1)
    monkeypatch.setattr(backend, "CACHED_CHUNK_BYTES", 1)
    monkeypatch.setattr(backend, "CACHED_CHUNK_MIN_ROWS", 2)
    monkeypatch.setattr(backend, "BLAS_MIN_MACS", 1 << 62)


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(1e-3)


def test_wait_change_returns_on_a_change_or_after_its_spins(kernels):
    """Without a change, after its spins (a million of them within the patience); at once when the flag already
    differs; and as soon as another thread changes it, however many spins it was allowed (the GIL is released
    meanwhile, or the other thread could not run)."""
    flags = np.zeros(FLAG_STRIDE, np.int64)
    started = time.monotonic()
    kernels.wait_change(flags, 3, 0, 1_000_000)
    assert time.monotonic() - started < PATIENCE_SECONDS
    flags[3] = 5
    kernels.wait_change(flags, 3, 0, 1 << 62)
    setter = threading.Timer(0.05, kernels.publish, (flags, 3, 6))
    setter.start()
    started = time.monotonic()
    kernels.wait_change(flags, 3, 5, 1 << 62)
    setter.join()
    assert flags[3] == 6 and time.monotonic() - started < PATIENCE_SECONDS


def test_spins_for_scales_with_the_time_asked(kernels):
    short, long = lanes.spins_for(kernels.wait_change, 1e-4), lanes.spins_for(kernels.wait_change, 1e-2)
    assert 1 <= short < long


def test_an_interpreter_lane_held_back_leaves_its_chunks_to_the_other(sac, interpreter_lanes, monkeypatch):
    """The caller's lane starts only once the other lane has finished the request: that lane must have taken every
    chunk from the counter (six chunks of two rows, then one number past them), and the outputs are the bits of
    one call on the whole batch (each row is computed on its own, whichever lane runs it)."""
    info = ModelInfo(sac)
    rng = np.random.default_rng(7)
    feeds = dict(info.noise(11, rng), obs=info.observations(11, rng))
    with monkeypatch.context() as whole_batch:
        whole_batch.setattr(backend, "LANES", 1)
        whole = sbif.load(sac, backend="numba").run(feeds)
    threads = lanes.shared_lanes(backend.compiled_kernels(), backend.MAX_LANES - 1)
    real = threads._kernels
    taken_first = []

    def held_run_lane(mailbox, flags, lane):
        if lane == 0:
            line = FLAG_STRIDE
            _until(lambda: flags[line + LANE_DONE] == flags[line + LANE_REQUEST], "lane 1 never finished")
            taken_first.append(int(flags[CHUNK_COUNTER]))
        real.run_lane(mailbox, flags, lane)

    monkeypatch.setattr(threads, "_kernels", real._replace(run_lane=held_run_lane))
    held = sbif.load(sac, backend="numba").run(feeds)
    assert taken_first == [6 + 1]
    for name, expected in whole.items():
        np.testing.assert_array_equal(held[name], expected, err_msg=name)


def test_lanes_block_after_their_spin_and_wake_for_the_next_request(kernels, monkeypatch):
    """Idle lanes stop spinning (their threads block: the spin is bounded), and the next request still runs on
    all of them."""
    monkeypatch.setattr(lanes, "SPIN_SECONDS", 1e-4)
    pool = lanes.Lanes(kernels, 3)
    for _ in range(3):
        ran = [None] * 4
        pool.run_tasks([lambda lane=lane: ran.__setitem__(lane, threading.get_ident()) for lane in range(4)])
        assert ran[0] == threading.get_ident() and len(set(ran)) == 4
        _until(lambda: pool._sleeping == 3, "the lanes kept spinning")


def test_a_lanes_exception_reaches_the_caller(kernels):
    """An exception in a lane's task is raised by the caller, after every lane has finished; the lanes serve the
    next request."""
    pool = lanes.Lanes(kernels, 2)
    finished = []

    def fails():
        raise ValueError("lane 2 failed")

    with pytest.raises(ValueError, match="lane 2 failed"):
        pool.run_tasks([lambda: finished.append(0), lambda: (time.sleep(0.05), finished.append(1)), fails])
    assert sorted(finished) == [0, 1]
    pool.run_tasks([lambda: finished.append(2), lambda: finished.append(3)])
    assert sorted(finished) == [0, 1, 2, 3]


def test_concurrent_callers_get_their_own_answers(sac, interpreter_lanes):
    """Two threads with requests at once: one has the lanes, the other runs its chunks alone; each gets the bits
    of its own request run alone."""
    policy = sbif.load(sac, backend="numba")
    info = ModelInfo(sac)
    rng = np.random.default_rng(11)
    batches = [info.observations(11 + extra, rng) for extra in range(6)]
    expected = [policy.predict(batch, deterministic=True)[0] for batch in batches]
    found = {}

    def caller(first: int) -> None:
        for _ in range(20):
            for index in range(first, len(batches), 2):
                actions = policy.predict(batches[index], deterministic=True)[0]
                if not np.array_equal(actions, expected[index]):
                    found[index] = actions
    threads = [threading.Thread(target=caller, args=(first,)) for first in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE_SECONDS)
    assert not found


def test_a_request_while_another_holds_the_lanes_runs_in_its_callers_thread(sac, interpreter_lanes):
    """The lanes taken (as by another thread's request): `run_interpreter` declines, and the backend runs every
    chunk itself, with the same bits."""
    policy = sbif.load(sac, backend="numba")
    batch = ModelInfo(sac).observations(11, np.random.default_rng(5))
    expected = policy.predict(batch, deterministic=True)[0]
    pool = lanes.shared_lanes(backend.compiled_kernels(), backend.MAX_LANES - 1)
    with pool._busy:
        assert not pool.run_interpreter(2, np.zeros(0, np.int64), np.zeros(8, np.uint8), np.zeros(8, np.uint8), 0,
                                        np.zeros(8, np.uint8), [np.zeros(0, np.uint8)] * backend.MAX_INPUTS, 1, 1)
        assert np.array_equal(policy.predict(batch, deterministic=True)[0], expected)
