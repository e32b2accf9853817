"""What `sbif predict --out` costs per row and per run: the local engine (one process) against the Ray engine with
1 and 2 actors, at batch sizes 1k, 16k and 64k, for the PPO2 MLP and the nature CNN (issue #24).

A run costs a fixed part (Ray: the actors' start, each importing SBIF and loading its numba kernels and the policy;
planning; the first blocks' latency) plus a part per row (reading, predicting, returning, writing). Timing whole
runs on one dataset mixes the two, and on a small dataset the fixed part is all one sees. So every configuration
runs on datasets of N and 2N rows, and `time = fixed + rows x per_row` is fitted through the medians at each size:
`per_row` is the marginal cost of a row (what a large job pays), `fixed` what every run pays. The overhead of Ray
is Ray-with-one-actor's marginal cost over the local engine's (equal parallelism: one process predicting; the
issue's target: at most 15% at batch 16k for the MLP). Whole-run rows/s at 2N are kept for the record.

The Ray runs go to a two-node cluster on loopback (tests/ray/conftest.py's, one CPU per node) that the benchmark
joins once, as a notebook would; joining is timed once on its own. Both engines use the numba backend, and their
outputs are checked equal before anything is timed. The components (Parquet decode, the policy, Parquet write, bytes
per row) are timed alone in this process, and the markdown ends with what they imply for a 100-node cluster and a
billion rows.

    .venv/bin/python benchmarks/ray_batch.py            # the measurement (a quiet 2-core machine: about 15 minutes)
    .venv/bin/python benchmarks/ray_batch.py --quick    # small datasets, one repeat: checks that it works

Writes benchmarks/results/ray/ray_batch.json (every run's seconds), ray_batch.md (the tables, the estimate) and
ray_batch.png (marginal rows/s by batch size).
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
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from conformance.models import write_model  # noqa: E402
from sbif.batch import BatchPredictor, BatchSpec, DatasetWriter, dataset_shards, read_batches, run_local  # noqa: E402
from sbif.batch.tables import RowLabels, column_array, to_arrow, with_columns  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results", "ray")
BATCH_SIZES = (1024, 16384, 65536)
ENGINES = ("local", "ray, 1 actor", "ray, 2 actors")
#: the issue's target: Ray with one actor within 15% of the local engine's marginal cost at batch 16k, for the MLP
OVERHEAD_TARGET = 0.15
TARGET_AT = ("ppo2_mlp", 16384)

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
#: N, the smaller dataset's rows (the larger has 2N): (full, --quick). Chosen so that 2N rows take several times
#: Ray's fixed cost, which the fit then separates; the CNN's batches of 16k and 64k rows hold the whole dataset
#: (its 2N rows are about 1,000 frames of 28 KB), which its figures at those sizes say.
ROWS = {"ppo2_mlp": (3_000_000, 150_000), "ppo2_cnn": (1_536, 192)}
OUTPUTS = ("action", "value")

#: the paper cluster of the estimate: its size, each node's CPUs and network, and the dataset
PAPER_NODES = 100
PAPER_CPUS_PER_NODE = 16
PAPER_NETWORK_BYTES = 10e9 / 8  # 10 Gbit/s per node, the driver's included
PAPER_ROWS = 10 ** 9


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


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def fit(sizes: Tuple[int, int], seconds: Dict[int, List[float]]) -> Dict[str, Optional[float]]:
    """`time = fixed + rows x per_row` through the medians at N and 2N rows. When the 2N runs were not slower than
    the N runs (the rows' cost drowned in the fixed part's noise: a busy machine, or N too small), the marginal
    rate and the fixed part are unresolved: None."""
    small, large = sizes
    low, high = statistics.median(seconds[small]), statistics.median(seconds[large])
    if high <= low:
        return {"fixed_seconds": None, "marginal_rows_per_second": None, "whole_rows_per_second": large / high}
    per_row = (high - low) / (large - small)
    return {"fixed_seconds": low - small * per_row, "marginal_rows_per_second": 1.0 / per_row,
            "whole_rows_per_second": large / high}


def cell(value: Optional[float], form: str = "{:,.0f}") -> str:
    """A table cell: the value, or a dash for an unresolved one."""
    return "-" if value is None else form.format(value)


def measure(quick: bool, repeats: int, directory: str) -> Dict[str, Any]:
    import ray

    from sbif.integrations.ray import connect, run_dataset
    from tests.ray.conftest import running_cluster

    configurations: List[Dict[str, Any]] = []
    components: Dict[str, Dict[str, float]] = {}
    load_before = os.getloadavg()[0]
    with running_cluster(os.environ["RAY_AUTH_TOKEN"]) as cluster:
        join_seconds = timed(lambda: connect(cluster.address))
        try:
            for name, model_spec in MODELS.items():
                model = write_model(model_spec, directory)
                small = ROWS[name][1 if quick else 0]
                sizes = (small, 2 * small)
                data = {rows: make_dataset(name, rows, os.path.join(directory, "{}-{}.parquet".format(name, rows)))
                        for rows in sizes}
                spec = BatchSpec(outputs=OUTPUTS, backend="numba")
                engines = {
                    "local": lambda source, out, size: run_local(model, source, out, spec, batch_size=size),
                    "ray, 1 actor": lambda source, out, size: run_dataset(model, source, out, spec, batch_size=size,
                                                                         actors=1),
                    "ray, 2 actors": lambda source, out, size: run_dataset(model, source, out, spec, batch_size=size,
                                                                          actors=2),
                }
                check_agreement(engines, data[small], directory)
                components[name] = measure_components(model, spec, data[sizes[1]], directory)
                for batch_size in BATCH_SIZES:
                    for engine, run in engines.items():
                        seconds: Dict[int, List[float]] = {rows: [] for rows in sizes}
                        for _ in range(repeats):  # sizes interleaved, so that a drifting load hits both alike
                            for rows in sizes:
                                out = os.path.join(directory, "out.parquet")
                                if os.path.exists(out):
                                    os.unlink(out)
                                seconds[rows].append(timed(lambda: run(data[rows], out, batch_size)))
                        result = fit(sizes, seconds)
                        configurations.append({"model": name, "engine": engine, "batch_size": batch_size,
                                               "rows": list(sizes), "seconds": {str(rows): values for rows, values
                                                                                in seconds.items()}, **result})
                        print("{:9} {:14} batch {:6}: marginal {:>12} rows/s, fixed {:>6} s, whole run {:>12} "
                              "rows/s".format(name, engine, batch_size, cell(result["marginal_rows_per_second"]),
                                              cell(result["fixed_seconds"], "{:.2f}"),
                                              cell(result["whole_rows_per_second"])), flush=True)
        finally:
            ray.shutdown()
    return {"host": platform.node(), "cpus": os.cpu_count(), "quick": quick, "repeats": repeats,
            "load_before": load_before, "load_after": os.getloadavg()[0], "join_seconds": join_seconds,
            "configurations": configurations, "overhead": overheads(configurations), "components": components}


def check_agreement(engines: Dict[str, Any], data: str, directory: str) -> None:
    """Every engine writes the same table (the numba backend computes a row alike in any batch)."""
    import pyarrow.parquet as pq

    tables = {}
    for engine, run in engines.items():
        out = os.path.join(directory, "check-{}.parquet".format(len(tables)))
        run(data, out, BATCH_SIZES[1])
        tables[engine] = pq.read_table(out)
        os.unlink(out)
    first = next(iter(tables.values()))
    differing = [engine for engine, table in tables.items() if not table.equals(first)]
    if differing:
        raise SystemExit("the engines disagree: {} differ from local".format(", ".join(differing)))


def measure_components(model: str, spec: BatchSpec, data: str, directory: str) -> Dict[str, float]:
    """The local engine's parts, each alone over the whole dataset at batch 16k: Parquet decode (read_batches and
    the observation column as an array), the policy (`BatchPredictor.compute`, the numba executor on all this
    host's CPUs), Parquet write (the dataset and its outputs); and the bytes a row takes on disk (in, and out with
    the dataset's columns) and on the way back from an actor (the observations, the outputs and the row index, as
    Arrow holds them)."""
    shards = dataset_shards(data)
    rows = sum(shard.rows for shard in shards)
    predictor = BatchPredictor(model, spec)
    batches = list(read_batches(shards, BATCH_SIZES[1]))
    read_seconds = timed(lambda: [column_array(batch.data, "obs", RowLabels(batch.first_row, None))
                                  for batch in read_batches(shards, BATCH_SIZES[1])])
    predictor.compute(batches[0].data, first_row=0)  # the executor's plan, made on first use
    outputs: List[Dict[str, np.ndarray]] = []
    predict_seconds = timed(lambda: outputs.extend(predictor.compute(batch.data, batch.first_row)
                                                   for batch in batches))
    out = os.path.join(directory, "components.parquet")

    def write() -> None:
        with DatasetWriter(out, [data], rows) as writer:
            for batch, values in zip(batches, outputs):
                writer.write(with_columns(batch.data, values), batch.shard)

    write_seconds = timed(write)
    outputs_out = os.path.join(directory, "components-outputs.parquet")

    def write_outputs() -> None:
        with DatasetWriter(outputs_out, [data], rows) as writer:
            for batch, values in zip(batches, outputs):
                writer.write(values, batch.shard)

    write_outputs_seconds = timed(write_outputs)
    os.unlink(outputs_out)
    returned = sum(batch.data.nbytes + sum(values.nbytes for values in output.values())
                   for batch, output in zip(batches, outputs)) + 8 * rows
    result = {"rows": rows, "read_rows_per_second": rows / read_seconds,
              "predict_rows_per_second": rows / predict_seconds, "write_rows_per_second": rows / write_seconds,
              "write_outputs_rows_per_second": rows / write_outputs_seconds,
              "input_bytes_per_row": os.path.getsize(data) / rows, "output_bytes_per_row": os.path.getsize(out) / rows,
              "returned_bytes_per_row": returned / rows,
              "outputs_only_bytes_per_row": sum(values.nbytes for output in outputs for values in output.values())
              / rows + 8}
    os.unlink(out)
    return result


def seconds(value: float) -> str:
    """A duration for the estimate's table: two decimals below 10 s, whole seconds above."""
    return "{:.2f}".format(value) if value < 10 else "{:,.0f}".format(value)


def overheads(configurations: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Ray with one actor against the local engine, per model and batch size: the ratio of their marginal costs
    per row, less one."""
    rate = {(entry["model"], entry["engine"], entry["batch_size"]): entry["marginal_rows_per_second"]
            for entry in configurations}
    return [{"model": model, "batch_size": size,
             "overhead": rate[(model, "local", size)] / rate[(model, "ray, 1 actor", size)] - 1
             if rate[(model, "local", size)] and rate[(model, "ray, 1 actor", size)] else None}
            for model in MODELS for size in BATCH_SIZES if (model, "ray, 1 actor", size) in rate]


def paper_estimate(results: Dict[str, Any]) -> List[str]:
    """Markdown: what PAPER_NODES nodes would do with PAPER_ROWS rows, from this host's figures, and where the time
    goes. Per CPU, the cluster's nodes read and predict at this host's rates (the policy's measured on all its CPUs,
    divided by their number); the driver receives every row over one network link and writes it at this host's
    rate; the fixed part is Ray's, as fitted here (one actor), plus the join."""
    cpus = PAPER_NODES * PAPER_CPUS_PER_NODE
    host_cpus = results["cpus"]
    fixed = {entry["model"]: entry["fixed_seconds"] for entry in results["configurations"]
             if entry["engine"] == "ray, 1 actor" and entry["batch_size"] == TARGET_AT[1]
             and entry["fixed_seconds"] is not None}
    lines = ["", "## On paper: {} nodes, {:,} rows".format(PAPER_NODES, PAPER_ROWS), "",
             "Each node {} CPUs and {:.0f} Gbit/s; per CPU, the rates measured here (the policy's on this host's {} "
             "CPUs, divided by {}). Seconds for the whole dataset:".format(
                 PAPER_CPUS_PER_NODE, PAPER_NETWORK_BYTES * 8 / 1e9, host_cpus, host_cpus), "",
             "| model | decode Parquet (cluster) | policy (cluster) | storage read per node | driver receives "
             "(with the dataset / outputs only) | driver writes Parquet (with the dataset / outputs only) | fixed "
             "(Ray + join) |", "|---|---:|---:|---:|---:|---:|---:|"]
    bottlenecks = []
    # both models write the same outputs (OUTPUTS): their rate is the one measured on most rows, the MLP's (the
    # CNN's few rows time mostly the writer's start)
    outputs_write_rate = max(part["write_outputs_rows_per_second"] for part in results["components"].values())
    for model, part in results["components"].items():
        decode = PAPER_ROWS / (part["read_rows_per_second"] * cpus)
        policy = PAPER_ROWS / (part["predict_rows_per_second"] / host_cpus * cpus)
        per_node_bytes = PAPER_ROWS * part["input_bytes_per_row"] / PAPER_NODES
        storage = per_node_bytes / PAPER_NETWORK_BYTES
        receive = PAPER_ROWS * part["returned_bytes_per_row"] / PAPER_NETWORK_BYTES
        receive_outputs = PAPER_ROWS * part["outputs_only_bytes_per_row"] / PAPER_NETWORK_BYTES
        write = PAPER_ROWS / part["write_rows_per_second"]
        write_outputs = PAPER_ROWS / outputs_write_rate
        lines.append("| {} | {} | {} | {} ({:.1f} GB at {:,.0f} MB/s) | {} / {} | {} / {} | {} |".format(
            model, seconds(decode), seconds(policy), seconds(storage), per_node_bytes / 1e9,
            PAPER_NETWORK_BYTES / 1e6, seconds(receive), seconds(receive_outputs), seconds(write),
            seconds(write_outputs), seconds(fixed[model] + results["join_seconds"]) if model in fixed else cell(None)))
        for mode, driver in (("with the dataset written back", {"the driver receiving": receive,
                                                                "the driver writing": write}),
                             ("outputs only", {"the driver receiving": receive_outputs,
                                               "the driver writing": write_outputs})):
            parts = dict(driver, **{"decoding and the policy on the workers": decode + policy,
                                    "reading storage": storage})
            slowest = max(parts, key=parts.get)
            bottlenecks.append("- {}, {}: {} ({} s of the parts above; the workers' decoding and policy "
                               "{} s)".format(model, mode, slowest, seconds(parts[slowest]), seconds(decode + policy)))
    lines += ["", "Bytes per row: " + "; ".join(
        "{}: {:,.0f} in Parquet, {:,.0f} written with the dataset, {:,.0f} returned to the driver ({:,.0f} outputs "
        "only)".format(model, part["input_bytes_per_row"], part["output_bytes_per_row"], part["returned_bytes_per_row"],
                       part["outputs_only_bytes_per_row"]) for model, part in results["components"].items()) + ".",
              "", "Where the time goes (the parts overlap: a job takes about its slowest part, plus the fixed one):",
              ""] + bottlenecks + [
              "", "The workers' side (decode, policy, storage) shrinks with the cluster; the driver's does not: "
              "`sbif predict` funnels every row through one process, which receives and writes it in dataset order "
              "(one file, renamed into place at the end). Beyond one machine's worth of output, write from the "
              "workers (Ray Data's write_parquet to shared storage, a file per block), giving up the single ordered "
              "file and the all-or-nothing rename, or write the outputs only (--outputs-only), which cuts what the "
              "driver receives and writes to the outputs and the row index."]
    return lines


def write_report(results: Dict[str, Any]) -> None:
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "ray_batch.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    by_key = {(entry["model"], entry["engine"], entry["batch_size"]): entry for entry in results["configurations"]}
    sizes = " | ".join("{}k".format(size // 1024) for size in BATCH_SIZES)
    lines = ["# sbif predict --out: local engine vs Ray Data", "",
             "Marginal rows/s (the fitted cost of one more row), the fixed seconds every run pays, and whole runs "
             "of 2N rows, by batch size {} (a dash: unresolved, the 2N runs were not slower than the N "
             "runs).".format(sizes.replace(" | ", ", ")), "",
             "| model | engine | marginal rows/s | fixed s | whole run rows/s (2N) |", "|---|---|---|---|---|"]
    for model in MODELS:
        for engine in ENGINES:
            entries = [by_key[(model, engine, size)] for size in BATCH_SIZES if (model, engine, size) in by_key]
            if not entries:
                continue
            lines.append("| {} | {} | {} | {} | {} |".format(
                model, engine, " / ".join(cell(entry["marginal_rows_per_second"]) for entry in entries),
                " / ".join(cell(entry["fixed_seconds"], "{:.2f}") for entry in entries),
                " / ".join(cell(entry["whole_rows_per_second"]) for entry in entries)))
    lines.append("")
    for entry in results["overhead"]:
        target = " (target <= {:.0%})".format(OVERHEAD_TARGET) if (entry["model"], entry["batch_size"]) == TARGET_AT \
            else ""
        lines.append("- Ray (1 actor) over local, marginal cost per row, {} at batch {}: {}{}".format(
            entry["model"], entry["batch_size"], cell(entry["overhead"], "{:+.0%}"), target))
    lines.append("- joining the cluster (once per `sbif predict --engine ray`; not in the fixed seconds above): "
                 "{:.2f} s".format(results["join_seconds"]))
    rows = {model: by_key[(model, "local", BATCH_SIZES[0])]["rows"] for model in MODELS if (model, "local",
                                                                                          BATCH_SIZES[0]) in by_key}
    note = "quick mode: small datasets, one repeat; not a measurement" if results["quick"] else \
        "medians of {} runs at each size".format(results["repeats"])
    lines += ["", "N and 2N: {} rows ({}; {} CPUs, load {:.2f} before, {:.2f} after).".format(
        ", ".join("{} {:,} and {:,}".format(model, *pair) for model, pair in rows.items()), note, results["cpus"],
        results["load_before"], results["load_after"]), "", "## Components (local, batch 16k, 2N rows)", "",
        "| model | Parquet decode rows/s | policy rows/s | Parquet write rows/s |", "|---|---:|---:|---:|"]
    for model, part in results["components"].items():
        lines.append("| {} | {:,.0f} | {:,.0f} | {:,.0f} |".format(
            model, part["read_rows_per_second"], part["predict_rows_per_second"], part["write_rows_per_second"]))
    lines += paper_estimate(results)
    with open(os.path.join(RESULTS, "ray_batch.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    plot(results)


def plot(results: Dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(MODELS), figsize=(10, 4))
    for axis, model in zip(axes, MODELS):
        for engine in ENGINES:
            entries = sorted((entry["batch_size"], entry["marginal_rows_per_second"], entry["fixed_seconds"])
                             for entry in results["configurations"] if entry["model"] == model
                             and entry["engine"] == engine and entry["marginal_rows_per_second"] is not None)
            if not entries:
                continue
            label = "{} (fixed {} s at 16k)".format(engine, cell(dict((size, fixed) for size, _, fixed in entries)
                                                                   .get(TARGET_AT[1]), "{:.1f}"))
            axis.plot([size for size, _, _ in entries], [rate for _, rate, _ in entries], marker="o", label=label)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(BATCH_SIZES, ["{}k".format(size // 1024) for size in BATCH_SIZES])
        axis.set_xlabel("batch size (rows)")
        axis.set_ylabel("marginal rows per second")
        axis.set_title(model)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle("sbif predict --out, marginal rate: local engine vs Ray Data on a 2-node loopback cluster"
                    + (" (quick mode)" if results["quick"] else ""), fontsize="medium")
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, "ray_batch.png"), dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small datasets and one repeat: check it works")
    parser.add_argument("--repeats", type=int, default=3, help="runs per dataset size (their median is fitted)")
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
