"""Resource budgets as a tested property (issue #18): every input kind, through the real entry points, in a
process whose address space is limited (RLIMIT_AS) to what it had after its imports plus the budget below, and
whose time is bounded. Measured, not trusted: a loader that allocates in proportion to what an input *declares*
rather than to its size fails here with MemoryError (an "internal error", exit 2) or a signal.

The budget for an input of S bytes (every file on the command line, or every byte written to a protocol server)
that legitimately declares T bytes of tensors is BASE_BUDGET + K * S + T; the time bound is TIME_BASE + S /
TIME_PER_SECOND (the constants below say why; tests/attacks/README.md quotes them). The same budget must let
legitimate inputs through (a zoo model exported with its config and statistics, predicts on it, a protocol
session), so a bound too tight to mean anything fails too.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, List, Tuple

import numpy as np
import pytest

from tests.zoo import ZOO, require_zoo

from .hostile_inputs import (PROTOCOL_SERVERS, CleanInputs, Outcome, c_baseline, clean_inputs, commands,
                             hostile_files, hostile_streams, run_budgeted)
from .sb2_like import NewObj, dumps
from .sb3_like import VEC_NORMALIZE, running_mean_std

MiB = 1 << 20
#: Address space any command may use beyond its imports, whatever the input (interpreter arenas, NumPy buffers,
#: the parsed document of a small file).
BASE_BUDGET = 64 * MiB
#: Address space per byte of input: reading copies an input a few times (raw bytes, decoded text, parsed JSON or
#: pickle objects, arrays, the written file). The legitimate runs below (9.5 MB of JSON observations or a 9.4 MB
#: protocol line of 20000 rows) peak at 77 and 109 MiB, graph values included, against budgets of 218 MiB: 8 leaves
#: about 2x headroom, where 4 would fail the protocol line.
K = 8
#: Wall time any command may take, plus one second per TIME_PER_SECOND bytes of input (2 shared cores).
TIME_BASE = 30.0
TIME_PER_SECOND = 16 * MiB
#: A refusal's message: one line, bounded (a preview of any value from the input, never the value).
MAX_MESSAGE = 1000
ZOO_MODEL = os.path.join(ZOO, "a2c", "BipedalWalker-v2.pkl")
ZOO_CONFIG = os.path.join(ZOO, "a2c", "BipedalWalker-v2", "config.yml")


def budget(size: int, declared: int = 0) -> int:
    return BASE_BUDGET + K * size + declared


def time_bound(size: int) -> float:
    return TIME_BASE + size / TIME_PER_SECOND


@pytest.fixture(scope="module")
def workspace():
    with tempfile.TemporaryDirectory() as directory:
        yield directory


@pytest.fixture(scope="module")
def clean(workspace) -> CleanInputs:
    return clean_inputs(workspace)


@pytest.fixture(scope="module")
def c_base(c_build) -> int:
    return c_baseline()


from tests.runtimes.conftest import c_build  # noqa: E402,F401  (the fixture that builds runtimes/c with make)


def input_size(argv: List[str]) -> int:
    """Bytes of every file the command reads, and of inline JSON observations."""
    size = 0
    for position, argument in enumerate(argv[1:], start=1):
        if os.path.isfile(argument):
            size += os.path.getsize(argument)
        elif argv[position - 1] == "--obs":
            size += len(argument)
    return size


def describe(argv: List[str], outcome: Outcome, limit: int) -> str:
    """The command, how it ended, its budget and measured peak, and the end of its stderr: the failure message."""
    used = "peak {:.1f} MiB over a baseline of {:.1f} MiB".format((outcome.peak - outcome.baseline) / MiB,
                                                                   outcome.baseline / MiB) if outcome.peak else ""
    return "{}: exit {}, {:.1f} s, budget {:.1f} MiB {}; stderr: {}".format(
        " ".join(os.path.basename(a) if os.path.isabs(a) else a for a in argv), outcome.returncode, outcome.seconds,
        limit / MiB, used, outcome.stderr.decode("utf-8", "replace")[-600:])


def assert_within_budget(argv: List[str], outcome: Outcome, limit: int, expect_success: bool = False) -> None:
    """Exit 0 or 1 (never 2, never a signal), within the time bound, a one-line refusal, no MemoryError."""
    where = describe(argv, outcome, limit)
    assert outcome.returncode is not None, "time bound exceeded: " + where
    assert outcome.returncode in ((0,) if expect_success else (0, 1)), where
    error = outcome.stderr.decode("utf-8", "replace")
    for forbidden in ("internal error", "MemoryError", "Traceback", "Segmentation"):
        assert forbidden not in error, where
    if outcome.returncode == 1:
        lines = error.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) <= MAX_MESSAGE, where
    if outcome.peak:
        assert outcome.peak - outcome.baseline <= limit, where


def run_command(argv: List[str], c_base: int, declared: int = 0) -> Tuple[Outcome, int]:
    """Run `argv` under the budget of its input (plus `declared` bytes of legitimate values); the outcome and the
    budget."""
    size = input_size(argv)
    limit = budget(size, declared)
    return run_budgeted(argv, limit, time_bound(size), c_base=c_base), limit


FILES = hostile_files()
#: One or two inputs of each kind and class run in the fast loop (`make check`); every input runs in the slow one (an
#: interpreter start each, about a second).
FAST = {"shared_references_as_observation_space", "codecs_encode_inflation_serialized_in_zip",
        "statistics_ordered_dict_inflation", "billion_laughs", "lists_50k_deep", "broadcast_4_gib", "one_hot_192_gib",
        "conv2d_strides_2_62", "npy_shape_4e9_by_4", "json_integer_4000_digits", "line_8_mib", "json_nested_1m",
        "json_integer_5000_digits", "sb3_storage_bomb", "sb3_deflate_bomb", "sb3_vecnormalize_mean_shape_bomb"}


def cases(items: List[Any]) -> List[Any]:
    return [pytest.param(item, id=item.name, marks=[] if item.name in FAST and not item.slow else [pytest.mark.slow])
            for item in items]


@pytest.mark.parametrize("item", cases(FILES))
def test_hostile_file_within_budget(item, workspace, clean, c_base):
    path = item.make(workspace)
    for argv in commands(item, path, clean):
        outcome, limit = run_command(argv, c_base)
        assert_within_budget(argv, outcome, limit)


def protocol_answers(outcome):
    """The JSON answers a server wrote; every line must be one."""
    return [json.loads(line) for line in outcome.stdout.decode("utf-8").splitlines()]


@pytest.mark.parametrize("server", sorted(PROTOCOL_SERVERS))
@pytest.mark.parametrize("stream", cases(hostile_streams()))
def test_protocol_stream_within_budget(stream, server, c_base):
    """A server answers every hostile line with one `errored` line and keeps serving (the stream ends with a
    shutdown, answered `bye`), or, for a line that never ends, answers it at the end of input; exit 0."""
    argv = PROTOCOL_SERVERS[server]
    limit = budget(stream.size)
    outcome = run_budgeted(argv, limit, time_bound(stream.size), stdin=stream.chunks(), c_base=c_base)
    where = describe([server + " protocol server", stream.name], outcome, limit)
    assert outcome.returncode == 0, where
    assert "Traceback" not in outcome.stderr.decode("utf-8", "replace"), where
    answers = protocol_answers(outcome)
    assert answers and all(answer.get("type") in ("errored", "bye", "skipped") for answer in answers), where
    assert any(answer.get("type") == "errored" for answer in answers), where
    assert not any("details" in answer for answer in answers), where  # a traceback: the runtime failed, not refused
    if outcome.peak:
        assert outcome.peak - outcome.baseline <= limit, where


# -- the same budgets let legitimate inputs through ----------------------------------------------------------------
@pytest.fixture(scope="module")
def zoo_export(workspace, c_base):
    """The zoo's A2C BipedalWalker exported with its config.yml (normalize: its obs_rms.pkl folded in), under the
    budget of its own size."""
    require_zoo([ZOO_MODEL] if os.path.exists(ZOO_MODEL) else [])
    output = os.path.join(workspace, "bipedal.sbif")
    argv = ["sbif", "export", ZOO_MODEL, "--zoo-config", ZOO_CONFIG, "-o", output]
    size = sum(os.path.getsize(path) for path in (ZOO_MODEL, ZOO_CONFIG,
                                                  os.path.join(os.path.dirname(ZOO_CONFIG), "obs_rms.pkl")))
    limit = budget(size)
    outcome = run_budgeted(argv, limit, time_bound(size))
    assert_within_budget(argv, outcome, limit, expect_success=True)
    return output


#: Rows of the legitimate batches, and the memory each row's graph values take (BipedalWalker's A2C: two 64-unit
#: layers for pi and vf, in float32 and the float64 of its observation normalization, measured about 3.7 KiB).
ROWS = 20000
ROW_BYTES = 4096


def test_legitimate_export_and_predict_pass_the_same_budget(zoo_export, workspace, c_base):
    """A real export (above), `validate`, `predict` on a batch of 20000 observations from .npy (3.7 MB) and from
    .json (9.5 MB), and `sbif-check`: all succeed under the budgets the hostile inputs get, the batch's graph values
    declared (ROWS x ROW_BYTES). The JSON batch is where K matters: 9.5 MB of text under 64 MiB + 8 x 9.5 MB."""
    observations = np.random.RandomState(0).standard_normal((ROWS, 24))
    npy, text = os.path.join(workspace, "batch.npy"), os.path.join(workspace, "batch.json")
    np.save(npy, observations)
    with open(text, "w") as handle:
        json.dump(observations.tolist(), handle)
    actions = os.path.join(workspace, "actions.npy")
    for argv in (["sbif", "validate", zoo_export], ["sbif", "predict", zoo_export, "--obs", npy, "-o", actions],
                 ["sbif", "predict", zoo_export, "--obs", text, "-o", actions], ["sbif-check", zoo_export]):
        outcome, limit = run_command(argv, c_base, declared=ROWS * ROW_BYTES)
        assert_within_budget(argv, outcome, limit, expect_success=True)
        if argv[1] == "predict":
            assert np.load(actions).shape == (ROWS, 4)


def test_legitimate_protocol_session_passes_the_same_budget(zoo_export, c_base):
    """hello, a load and a run of the exported model on 20000 observations (a 9.4 MB line), shutdown: answered in
    full by both servers under the budget of the session's bytes plus the batch's graph values."""
    from sbif.format import SbifFile

    dtype = next(entry["dtype"] for entry in SbifFile.read(zoo_export).document["inputs"] if entry["name"] == "obs")
    data = np.random.RandomState(1).standard_normal(ROWS * 24).tolist()
    observation = {"dtype": dtype, "shape": [ROWS, 24], "data": data}
    requests = [{"type": "hello", "protocol": 1}, {"type": "load", "id": 1, "model": zoo_export},
                {"type": "run", "id": 2, "model": zoo_export, "inputs": {"obs": observation},
                 "outputs": ["value"]}, {"type": "shutdown"}]
    payload = "".join(json.dumps(request) + "\n" for request in requests).encode("utf-8")
    for server, argv in sorted(PROTOCOL_SERVERS.items()):
        size = len(payload) + os.path.getsize(zoo_export)
        limit = budget(size, ROWS * ROW_BYTES)
        outcome = run_budgeted(argv, limit, time_bound(size), stdin=[payload], c_base=c_base)
        where = describe([server + " protocol server"], outcome, limit)
        assert outcome.returncode == 0, where
        answers = protocol_answers(outcome)
        assert [answer["type"] for answer in answers] == ["hello", "loaded", "result", "bye"], where
        assert answers[2]["outputs"]["value"]["shape"] == [ROWS], where


def test_legitimate_sb3_export_passes_the_same_budget(workspace, clean, c_base):
    """The clean hand-made SB3 save exported by the safe loader, alone and with a valid vecnormalize.pkl of its
    Box(4) observations, under the budget of the files' size: the SB3 kinds' budget lets a real export through."""
    statistics = os.path.join(workspace, "clean_vecnormalize.pkl")
    with open(statistics, "wb") as handle:
        handle.write(dumps(NewObj(VEC_NORMALIZE, {"norm_obs": True, "obs_rms": running_mean_std(4), "epsilon": 1e-8,
                                                  "clip_obs": 10.0})))
    output = os.path.join(workspace, "clean_sb3.sbif")
    for extra in ([], ["--vecnormalize", statistics]):
        argv = ["sbif", "export", clean.sb3_model, "--loader", "safe", "-o", output] + extra
        outcome, limit = run_command(argv, c_base)
        assert_within_budget(argv, outcome, limit, expect_success=True)
        assert os.path.getsize(output) > 0


def test_the_budget_catches_an_input_that_exceeds_it(workspace, clean, c_base):
    """The measurement can fail: NumPy's own `np.load` of a .npy declaring (4e9, 4) float32 (60 GiB) in 192 bytes,
    run under the same budget, dies with MemoryError: exactly what the assertions above reject."""
    path = next(item for item in FILES if item.name == "npy_shape_4e9_by_4").make(workspace)
    outcome = run_budgeted(["sbif", "--version"], budget(192), 30.0)
    assert outcome.returncode == 0 and outcome.peak >= outcome.baseline > 0  # the report works (VmPeak ≥ VmSize)
    import subprocess
    import sys

    probe = ("import os, resource, numpy\n"
             "size = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize')][0]\n"
             "resource.setrlimit(resource.RLIMIT_AS, (size + {budget}, size + {budget}))\n"
             "numpy.load({path!r})\n").format(budget=budget(192), path=path)
    result = subprocess.run([sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=60)
    assert result.returncode != 0 and b"MemoryError" in result.stderr, result.stderr[-300:]
