"""`sbif predict --engine ray` on a real two-node cluster (tests/ray/conftest.py): the Parquet it writes equals the
local engine's, sampled actions and an LSTM over episodes included, and nothing but the result is printed; a worker
killed mid-job costs Ray a retry, not a row; a bad column, and episodes the local engine refuses, are one line naming
the row, the same line as the local engine's, and nothing is written.

The jobs run as a user runs them, through the command line in a child process, over a dataset of two million rows
(the PPO2-like MLP of tests/factories.py). Both engines use the numba backend, which computes each row the same
whatever batch it is in (sbif/batch/__init__.py), so equal means equal bit for bit.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("ray")

from conformance.models import EXAMPLES, write_model  # noqa: E402
from sbif.batch.tables import to_arrow  # noqa: E402
from tests.factories import make_sbif  # noqa: E402
from tests.ray.conftest import session_processes  # noqa: E402

ROWS = 2_000_000
#: row groups of one batch of the killed-worker test: the job is 122 pieces (`map_pieces`), so that each actor maps
#: many, the second node's too, however late it starts on a busy machine
ROW_GROUP = 16_384
OUTPUTS = "action,action_sample,value"
SEED = 11
#: seconds a CLI run may take on the loaded 2-core machine before the test gives up on it
RUN_TIMEOUT = 300


def write_parquet(path: str, columns: Dict[str, np.ndarray], row_group_size: int) -> str:
    pq.write_table(pa.table({name: to_arrow(values) for name, values in columns.items()}), path,
                   row_group_size=row_group_size)
    return path


def predict_command(model: str, data: str, out: str, outputs: str, engine: str, address: Optional[str] = None,
                    batch_size: int = 65536) -> List[str]:
    command = [sys.executable, "-m", "sbif", "predict", model, "--obs", data, "--out", out, "--outputs", outputs,
               "--seed", str(SEED), "--backend", "numba", "--batch-size", str(batch_size), "--engine", engine,
               "--json"]
    return command + (["--address", address] if address else [])


def run(command: Sequence[str], environment: Optional[Dict[str, str]] = None) -> dict:
    """A successful run's --json summary; it says nothing on stderr (no progress under --json, none of Ray's
    logging)."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == "", result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def refusal(command: Sequence[str], environment: Optional[Dict[str, str]] = None) -> str:
    """A failed run's one line on stderr (exit status 1, no traceback)."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=environment)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, (result.returncode, result.stderr[-3000:])
    return result.stderr.strip()


@pytest.fixture(scope="module")
def mlp_job(tmp_path_factory):
    """The MLP, two million rows (observations and a reward column to pass through), and the local engine's
    output over them."""
    directory = tmp_path_factory.mktemp("ray-mlp")
    model = str(directory / "ppo2.sbif")
    make_sbif("box_inf", "discrete", "mixed", seed=3).write(model)
    rng = np.random.default_rng(0)
    data = write_parquet(str(directory / "observations.parquet"), {
        "obs": rng.standard_normal((ROWS, 4), dtype=np.float32), "reward": rng.standard_normal(ROWS)}, ROW_GROUP)
    expected = str(directory / "local.parquet")
    summary = run(predict_command(model, data, expected, OUTPUTS, "local"))
    assert summary["rows"] == ROWS
    return model, data, expected


def test_the_ray_engine_writes_what_the_local_engine_writes(ray_cluster, mlp_job, tmp_path):
    model, data, expected = mlp_job
    out = str(tmp_path / "ray.parquet")
    summary = run(predict_command(model, data, out, OUTPUTS, "ray", ray_cluster.address), ray_cluster.environment)
    assert (summary["engine"], summary["rows"], summary["seed"]) == ("ray", ROWS, SEED)
    written, local = pq.read_table(out), pq.read_table(expected)
    assert written.schema == local.schema
    assert written.equals(local)
    samples = written.column("action_sample").to_numpy()
    assert (samples != written.column("action").to_numpy()).any()  # sampled, not the mode again


def test_an_lstm_over_episodes_gives_the_local_engines_output(ray_cluster, tmp_path):
    model = write_model(EXAMPLES["lstm"], str(tmp_path))
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 60, 3000)
    episodes = np.repeat(rng.permutation(100_000)[:len(lengths)], lengths)
    steps = np.concatenate([rng.permutation(length) * 2 for length in lengths])  # out of order, with gaps
    data = write_parquet(str(tmp_path / "episodes.parquet"), {
        "obs": rng.standard_normal((len(episodes), 3), dtype=np.float32), "episode": episodes, "step": steps},
        row_group_size=10_000)  # row groups, so read tasks, end inside episodes
    expected, out = str(tmp_path / "local.parquet"), str(tmp_path / "ray.parquet")
    run(predict_command(model, data, expected, "action,action_sample,value", "local", batch_size=4096))
    summary = run(predict_command(model, data, out, "action,action_sample,value", "ray", ray_cluster.address,
                                  batch_size=4096), ray_cluster.environment)
    assert summary["rows"] == len(episodes)
    assert pq.read_table(out).equals(pq.read_table(expected))


def test_both_engines_refuse_the_same_episodes_with_the_same_message(ray_cluster, tmp_path):
    """An episode whose rows are not together, and an episode with a step twice: refused by both engines alike,
    naming the row by its index in the dataset (Ray's batches, sorted by episode, know it from the row column)."""
    model = write_model(EXAMPLES["lstm"], str(tmp_path))
    episodes = np.repeat(np.arange(40), 50)
    steps = np.tile(np.arange(50), 40)
    observations = np.random.default_rng(3).standard_normal((len(episodes), 3), dtype=np.float32)
    scattered_episodes = episodes.copy()
    scattered_episodes[1234] = 3  # episode 3 again, inside episode 24
    scattered_steps = steps.copy()
    scattered_steps[1234] = 77
    repeated_steps = steps.copy()
    repeated_steps[1777] = repeated_steps[1776]  # episode 35 has one step twice: row 1777 is the later
    cases = {"scattered": (scattered_episodes, scattered_steps, "row 1234"),
             "repeated": (episodes, repeated_steps, "has step 26 twice (row 1777)")}
    for name, (episode, step, words) in cases.items():
        data = write_parquet(str(tmp_path / (name + ".parquet")), {"obs": observations, "episode": episode,
                                                                  "step": step}, row_group_size=300)
        lines = [refusal(predict_command(model, data, str(tmp_path / "out.parquet"), "action", engine,
                                         address, batch_size=512), environment)
                 for engine, address, environment in (("local", None, None),
                                                       ("ray", ray_cluster.address, ray_cluster.environment))]
        assert lines[0] == lines[1] and words in lines[0], lines
        assert not os.path.exists(str(tmp_path / "out.parquet"))


def map_workers(session: int) -> Dict[int, str]:
    """pid -> process title of the Ray Data actors (`ray::MapWorker(...)`) among a node's processes."""
    workers = {}
    for pid in session_processes([session]):
        try:
            with open("/proc/{}/cmdline".format(pid), "rb") as handle:
                title = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if title.startswith("ray::MapWorker"):
            workers[pid] = title
    return workers


def test_a_worker_killed_mid_job_costs_a_retry_not_a_row(ray_cluster, mlp_job, tmp_path):
    """SIGKILL the second node's actor while it predicts a batch, after it has returned others: Ray restarts the
    actor and retries the batch, and the output still holds every row exactly once, as the local engine's."""
    model, data, expected = mlp_job
    out = str(tmp_path / "ray.parquet")
    job = subprocess.Popen(predict_command(model, data, out, OUTPUTS, "ray", ray_cluster.address, batch_size=16384),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ray_cluster.environment)
    victim = None
    busy_since: Dict[int, int] = {}  # actor pid -> how many of its busy spells were seen
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while victim is None and job.poll() is None and time.monotonic() < deadline:
            for pid, title in map_workers(ray_cluster.worker_session).items():
                # Ray titles an actor by the method it runs: the class alone when idle, ".submit" while mapping
                busy = title.endswith(".submit")
                spells = busy_since.get(pid, 0)
                if busy and spells % 2 == 0 or not busy and spells % 2 == 1:
                    busy_since[pid] = spells + 1
                if busy and busy_since[pid] >= 3:  # busy, idle, busy again: one batch done, the next under way
                    victim = pid
            time.sleep(0.005)
        assert victim is not None, "no actor of the second node was seen mapping a second batch: {}".format(
            busy_since)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = job.communicate(timeout=RUN_TIMEOUT)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["rows"] == ROWS
    assert victim not in map_workers(ray_cluster.worker_session)
    written = pq.read_table(out)
    assert written.num_rows == ROWS
    assert written.equals(pq.read_table(expected))


def test_a_bad_column_is_one_line_naming_its_row_and_nothing_is_written(ray_cluster, tmp_path):
    model = str(tmp_path / "ppo2.sbif")
    make_sbif("box_inf", "discrete", "mixed", seed=3).write(model)
    rows = np.random.default_rng(2).standard_normal((300_000, 4)).astype(np.float32).tolist()
    rows[250_123] = rows[250_123][:3]  # a ragged row deep in a later piece
    data = str(tmp_path / "ragged.parquet")
    pq.write_table(pa.table({"obs": pa.array(rows, pa.list_(pa.float32()))}), data, row_group_size=65536)
    out = str(tmp_path / "out.parquet")
    result = subprocess.run(predict_command(model, data, out, "action", "ray", ray_cluster.address),
                            capture_output=True, text=True, timeout=RUN_TIMEOUT, env=ray_cluster.environment)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [text for text in result.stderr.splitlines() if text.startswith("sbif predict: error:")]
    assert "column 'obs'" in line and "row 250123" in line, line
    assert sorted(os.listdir(str(tmp_path))) == ["ppo2.sbif", "ragged.parquet"]
