"""Rows per second of `sbif predict --out` over a Parquet dataset: the local engine (one process) against the Ray
engine with 1 and 2 actors, at batch sizes 1k, 16k and 64k, for the PPO2 MLP and the nature CNN (issue #24).

The Ray runs go to a two-node cluster on loopback (tests/ray/conftest.py's, one CPU per node), each run as
`sbif predict --engine ray` does it: join the cluster, read, map, stream the results back, write, leave. A run is
timed whole, so Ray's fixed costs (joining, starting the actors, which import SBIF and its numba kernels) are part of
its figure, as they are of a user's job; `overhead` compares Ray with one actor to the local engine (equal
parallelism: one process predicting). Every figure is the median of `--repeats` runs; both engines use the numba
backend and their outputs are checked equal before anything is timed.

    .venv/bin/python benchmarks/ray_batch.py            # the measurement (a quiet machine: about 15 minutes)
    .venv/bin/python benchmarks/ray_batch.py --quick    # small datasets, one repeat: checks that it works

Writes benchmarks/results/ray/ray_batch.json (every run's seconds), ray_batch.md (the table) and ray_batch.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, List

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from conformance.models import write_model  # noqa: E402
from sbif.batch import BatchSpec, run_local  # noqa: E402
from sbif.batch.tables import to_arrow  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results", "ray")
BATCH_SIZES = (1024, 16384, 65536)
#: the issue's target: Ray with one actor within 15% of the local engine at batch 16k, for the MLP
OVERHEAD_TARGET = 0.15

#: the benchmark's two models, in the shapes of benchmarks/catalog.py's SB2 models (random weights: the speed of a
#: policy does not depend on what it learned)
MODELS: Dict[str, Dict[str, Any]] = {
    "ppo2_mlp": {"family": "mlp", "algorithm": "PPO2", "net_arch": [{"pi": [64, 64], "vf": [64, 64]}],
                 "activation": "tanh", "observation": {"kind": "box", "shape": [4], "dtype": "float32",
                                                       "low": -1.0, "high": 1.0},
                 "action": {"kind": "discrete", "n": 2}, "seed": 0},
    "ppo2_cnn": {"family": "cnn", "algorithm": "PPO2", "observation": {"kind": "box", "shape": [84, 84, 4],
                                                                      "dtype": "uint8", "low": 0, "high": 255},
                 "action": {"kind": "discrete", "n": 6}, "seed": 0},
}
#: rows of each model's dataset: (full, --quick)
ROWS = {"ppo2_mlp": (4_000_000, 200_000), "ppo2_cnn": (40_000, 2_000)}
OUTPUTS = ("action", "value")


def make_dataset(name: str, rows: int, path: str) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    shape = MODELS[name]["observation"]["shape"]
    rng = np.random.default_rng(0)
    if MODELS[name]["observation"]["dtype"] == "uint8":
        observations = rng.integers(0, 256, (rows,) + tuple(shape), dtype=np.uint8)
    else:
        observations = rng.uniform(-1, 1, (rows,) + tuple(shape)).astype(np.float32)
    pq.write_table(pa.table({"obs": to_arrow(observations)}), path, row_group_size=max(1, min(rows // 8, 262144)))
    return path


def timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(quick: bool, repeats: int, directory: str) -> Dict[str, Any]:
    from sbif.integrations.ray import run_dataset
    from tests.ray.conftest import running_cluster

    runs: List[Dict[str, Any]] = []
    with running_cluster(os.environ["RAY_AUTH_TOKEN"]) as cluster:
        for name, spec in MODELS.items():
            model = write_model(spec, directory)
            rows = ROWS[name][1 if quick else 0]
            data = make_dataset(name, rows, os.path.join(directory, name + ".parquet"))
            batch_spec = BatchSpec(outputs=OUTPUTS, backend="numba")
            engines = {
                "local": lambda out, size: run_local(model, data, out, batch_spec, batch_size=size),
                "ray, 1 actor": lambda out, size: run_dataset(model, data, out, batch_spec, batch_size=size,
                                                              address=cluster.address, actors=1),
                "ray, 2 actors": lambda out, size: run_dataset(model, data, out, batch_spec, batch_size=size,
                                                               address=cluster.address, actors=2),
            }
            check_agreement(engines, directory)
            for batch_size in BATCH_SIZES:
                for engine, run in engines.items():
                    out = os.path.join(directory, "out.parquet")
                    seconds = []
                    for _ in range(repeats):
                        if os.path.exists(out):
                            os.unlink(out)
                        seconds.append(timed(lambda: run(out, batch_size)))
                    median = statistics.median(seconds)
                    runs.append({"model": name, "engine": engine, "batch_size": batch_size, "rows": rows,
                                 "seconds": seconds, "rows_per_second": rows / median})
                    print("{:9} {:14} batch {:6}: {:12,.0f} rows/s (median of {})".format(
                        name, engine, batch_size, rows / median, repeats), flush=True)
    return {"host": platform.node(), "cpus": os.cpu_count(), "quick": quick, "repeats": repeats,
            "load_before": os.getloadavg()[0], "runs": runs, "overhead": overheads(runs)}


def check_agreement(engines: Dict[str, Any], directory: str) -> None:
    """Every engine writes the same table (the numba backend computes a row alike in any batch)."""
    import pyarrow.parquet as pq

    tables = {}
    for engine, run in engines.items():
        out = os.path.join(directory, "check-{}.parquet".format(len(tables)))
        run(out, BATCH_SIZES[1])
        tables[engine] = pq.read_table(out)
        os.unlink(out)
    first = next(iter(tables.values()))
    differing = [engine for engine, table in tables.items() if not table.equals(first)]
    if differing:
        raise SystemExit("the engines disagree: {} differ from local".format(", ".join(differing)))


def overheads(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Ray with one actor against the local engine, per model and batch size: (local rate / Ray rate) - 1."""
    rate = {(run["model"], run["engine"], run["batch_size"]): run["rows_per_second"] for run in runs}
    return [{"model": model, "batch_size": size,
             "overhead": rate[(model, "local", size)] / rate[(model, "ray, 1 actor", size)] - 1}
            for model in MODELS for size in BATCH_SIZES if (model, "ray, 1 actor", size) in rate]


def write_report(results: Dict[str, Any]) -> None:
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "ray_batch.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    lines = ["| model | engine | " + " | ".join("batch {}k".format(size // 1024) for size in BATCH_SIZES) + " |",
             "|---|---|" + "---:|" * len(BATCH_SIZES)]
    rate = {(run["model"], run["engine"], run["batch_size"]): run["rows_per_second"] for run in results["runs"]}
    for model in MODELS:
        for engine in ("local", "ray, 1 actor", "ray, 2 actors"):
            lines.append("| {} | {} | ".format(model, engine) + " | ".join(
                "{:,.0f}".format(rate[(model, engine, size)]) for size in BATCH_SIZES) + " |")
    lines.append("")
    for entry in results["overhead"]:
        target = " (target <= {:.0%})".format(OVERHEAD_TARGET) if (entry["model"], entry["batch_size"]) == \
            ("ppo2_mlp", 16384) else ""
        lines.append("- Ray (1 actor) over local, {} at batch {}: {:+.0%}{}".format(
            entry["model"], entry["batch_size"], entry["overhead"], target))
    note = "quick mode: small datasets, one repeat; not a measurement" if results["quick"] else \
        "medians of {} runs".format(results["repeats"])
    lines.append("\nRows per second, whole runs of `sbif predict --out` ({}; {} CPUs, load {:.2f} before).".format(
        note, results["cpus"], results["load_before"]))
    with open(os.path.join(RESULTS, "ray_batch.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    plot(results)


def plot(results: Dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(MODELS), figsize=(10, 4))
    for axis, model in zip(axes, MODELS):
        for engine in ("local", "ray, 1 actor", "ray, 2 actors"):
            points = sorted((run["batch_size"], run["rows_per_second"]) for run in results["runs"]
                            if run["model"] == model and run["engine"] == engine)
            axis.plot([size for size, _ in points], [rate for _, rate in points], marker="o", label=engine)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(BATCH_SIZES, ["{}k".format(size // 1024) for size in BATCH_SIZES])
        axis.set_xlabel("batch size (rows)")
        axis.set_ylabel("rows per second (whole run)")
        axis.set_title(model)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle("sbif predict --out: local engine vs Ray Data on a 2-node loopback cluster"
                    + (" (quick mode)" if results["quick"] else ""))
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, "ray_batch.png"), dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small datasets and one repeat: check it works")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (their median is kept)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    # the cluster's token, in the environment before Ray is imported (Ray reads it once)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex)
    with tempfile.TemporaryDirectory(prefix="sbif-ray-batch-") as directory:
        results = measure(args.quick, repeats, directory)
    write_report(results)
    print("wrote {}".format(RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
