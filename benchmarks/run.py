"""Benchmark SBIF against SB2, onnxruntime and torch on the same models and observations, in one run.

    python benchmarks/run.py [--quick] [--models ppo2_mlp,td3_400_300] [--json]

Builds (or reuses) the SB2 models and their SBIF files (benchmarks/make_models.py, in .venv-sb2), checks every
runtime's outputs against SB2's, then measures, interleaving runtimes round by round: single-observation latency
through each runtime's public call, throughput at batch 256 and 4096, the numba kernel alone against the
FLOP-bound limit, and cold start (spawn to first action, fresh processes) with peak memory. Prints medians and
ratios with the issue's targets checked, and writes benchmarks/results/latest.json and latest.md.
A runtime whose outputs disagree with SB2 gets no numbers, and the run exits with status 1.
On a terminal, a progress line says which step of the run is going (model k/N, its round, the runtime).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from sbif.progress import Progress, echo, silence

import c_runtime
import host
from catalog import (BATCH_SIZES, HERE, MODELS, NUMBA_CACHE, RESULTS, ROOT, SB2_PYTHON, WORK, model_file,
                     parse_models)
from harness import agrees
from report import evaluate_host_targets, evaluate_targets, render, summarize

#: the runtimes in table order; SB2 is the reference every ratio is taken against
RUNTIMES = ("sb2", "numpy", "numba", "c", "onnxruntime", "torch")
#: the runtimes whose cold start (a fresh process to its first action) is measured: those loaded by Python
COLD_START_RUNTIMES = ("sb2", "numpy", "numba", "onnxruntime", "torch")
#: after one runtime's measurements, let its thread pool stop spinning before the next one starts
SETTLE_SECONDS = 0.2
#: the runtimes without a thread pool to settle (the C runtime runs on the driver's one thread)
SINGLE_THREADED_RUNTIMES = ("c",)


@dataclass
class Settings:
    rounds: int
    single_calls: int  # per runtime and model, over all rounds
    warmup: int  # single-observation warm-up calls in the first round (a quarter in later rounds)
    batch_seconds: float  # time budget per batch size, runtime and round
    batch_min_calls: int
    cold_runs: int  # counted cold starts per runtime and model (after one uncounted warm-up)


FULL = Settings(rounds=7, single_calls=2100, warmup=200, batch_seconds=0.4, batch_min_calls=3, cold_runs=5)
QUICK = Settings(rounds=1, single_calls=300, warmup=50, batch_seconds=0.05, batch_min_calls=1, cold_runs=1)


def log(message: str) -> None:
    """A line of the run's log on stderr (above the progress line)."""
    echo(message)


def child_environment() -> Dict[str, str]:
    """Every child's environment: TensorFlow and MPI quiet and allowed to run as root, numba's cache under
    benchmarks/.work, no progress line of its own (the run's is on the same terminal), and no PYTHONPATH (it
    would leak one environment's packages into the other)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", SBIF_CACHE_DIR=NUMBA_CACHE, SBIF_PROGRESS="0")
    env.pop("PYTHONPATH", None)
    return env


def command_for(runtime: str, *arguments: str) -> List[str]:
    """The command line of a worker or cold-start child of `runtime`, in its environment's Python."""
    if runtime == "sb2":
        return [SB2_PYTHON, os.path.join(HERE, "sb2_side.py")] + list(arguments)
    if arguments[0] == "serve":
        return [sys.executable, os.path.join(HERE, "runtimes.py"), "serve", runtime]
    return [sys.executable, os.path.join(HERE, "cold_start.py"), runtime] + list(arguments[1:])


class WorkerError(Exception):
    """A worker raised or died: a bug to fix, never a benchmark result."""


class Worker:
    """One runtime's process, answering the harness protocol."""

    def __init__(self, runtime: str):
        self.runtime = runtime
        self.process = subprocess.Popen(command_for(runtime, "serve"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=child_environment(), universal_newlines=True)

    def request(self, op: str, **arguments: Any) -> Tuple[bool, Any]:
        """(True, result) or (False, the reason the runtime cannot run this model); WorkerError otherwise."""
        try:
            self.process.stdin.write(json.dumps(dict(arguments, op=op)) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise WorkerError("the {} worker died (exit status {})".format(self.runtime, self.process.poll()))
        answer = json.loads(line)
        if "error" in answer:
            log(answer.get("traceback", ""))
            raise WorkerError("{} {}: {}".format(self.runtime, op, answer["error"]))
        return ("ok" in answer), answer.get("ok", answer.get("na"))

    def measure(self, op: str, **arguments: Any) -> List[float]:
        """Samples of a measurement the runtime has already shown it can make (it loaded the model)."""
        ok, result = self.request(op, **arguments)
        if not ok:
            raise WorkerError("{} {}: n/a after a successful load: {}".format(self.runtime, op, result))
        return result

    def close(self) -> None:
        try:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.process.wait(timeout=60)


# -- the run -----------------------------------------------------------------------------------------------------------
def make_models(models: List[str]) -> None:
    if not os.path.exists(SB2_PYTHON):
        raise SystemExit("the SB2 environment is missing ({}): run `make envs` first; every benchmark is checked "
                         "against SB2".format(SB2_PYTHON))
    log("== models (SB2 builds them, the live exporter writes the SBIF files)")
    built = subprocess.run([SB2_PYTHON, os.path.join(HERE, "make_models.py"), "--models", ",".join(models)],
                           env=child_environment(), stdout=sys.stderr)
    if built.returncode != 0:
        raise SystemExit("benchmarks/make_models.py failed (exit status {}): see above".format(built.returncode))


def prepare(workers: Dict[str, Worker], model: str, entry: Dict[str, Any], step: "Steps") -> List[str]:
    """Load `model` in every runtime and check its outputs against SB2; returns the runtimes to time."""
    ready = []
    for runtime, worker in workers.items():
        step.doing(runtime)
        record = entry["runtimes"][runtime]
        try:
            ok, info = worker.request("load", model=model)
            if ok:
                report = worker.request("check", model=model)[1]
        except WorkerError as exc:
            record["status"] = "error: {}".format(exc)
            log("   {:12s} ERROR: {}".format(runtime, exc))
            continue
        if not ok:
            record["status"] = "n/a: " + info
            log("   {:12s} n/a: {}".format(runtime, info))
            continue
        record["info"], record["agreement"] = info, report
        if agrees(report):
            record["status"] = "ok"
            ready.append(runtime)
            log("   {:12s} agrees with SB2 {}".format(runtime, _brief(report)))
        else:
            record["status"] = "disagrees"
            log("   {:12s} DISAGREES WITH SB2 {}: no numbers for it".format(runtime, _brief(report)))
    return ready


def _brief(report: Dict[str, float]) -> str:
    return "(" + ", ".join("{} {:.2g}".format(key, value) for key, value in sorted(report.items())) + ")"


def measure(workers: Dict[str, Worker], model: str, runtimes: List[str], settings: Settings,
            entry: Dict[str, Any], step: "Steps") -> None:
    """Rounds of single / batch (/ kernel) measurements, each round visiting the runtimes in a rotated order."""
    per_round = -(-settings.single_calls // settings.rounds)
    for round_index in range(settings.rounds):
        order = runtimes[round_index % len(runtimes):] + runtimes[:round_index % len(runtimes)]
        warmup = settings.warmup if round_index == 0 else max(1, settings.warmup // 4)
        for runtime in order:
            step.doing("round {}/{}, {}".format(round_index + 1, settings.rounds, runtime))
            try:
                measure_round(workers[runtime], model, entry["runtimes"][runtime], settings, per_round, warmup)
            except WorkerError as exc:
                entry["runtimes"][runtime]["status"] = "error: {}".format(exc)
                log("   {:12s} ERROR: {}".format(runtime, exc))
                runtimes.remove(runtime)
            if runtime not in SINGLE_THREADED_RUNTIMES:
                time.sleep(SETTLE_SECONDS)
        log("   round {}/{} done".format(round_index + 1, settings.rounds))
        step.done()


def measure_round(worker: Worker, model: str, record: Dict[str, Any], settings: Settings, calls: int,
                  warmup: int) -> None:
    """One round of one runtime: single observation (for C, also through sbif_predict where built), each batch
    size (for C, also split between one thread per CPU where built; for onnxruntime the largest also in one
    thread, beside C's one thread), and for numba its executor alone. Raw samples are kept per round
    (`report.summarize` turns them into medians and per-round ratios)."""
    record.setdefault("single_us", []).append(worker.measure("single", model=model, calls=calls, warmup=warmup))
    if worker.runtime == "c":
        ok, samples = worker.request("predict", model=model, calls=calls, warmup=warmup)
        if ok:  # (n/a where the library has no sbif_predict)
            record.setdefault("predict_us", []).append(samples)
    for size in BATCH_SIZES:
        record.setdefault("batch_s", {}).setdefault(str(size), []).append(worker.measure(
            "batch", model=model, size=size, budget=settings.batch_seconds, min_calls=settings.batch_min_calls))
        if worker.runtime == "c":
            ok, samples = worker.request("batch_threads", model=model, size=size, budget=settings.batch_seconds,
                                         min_calls=settings.batch_min_calls)
            if ok:  # (n/a where the library has no threads)
                record.setdefault("batch_threads_s", {}).setdefault(str(size), []).append(samples)
        if worker.runtime == "onnxruntime" and size == max(BATCH_SIZES):
            record.setdefault("batch_one_thread_s", {}).setdefault(str(size), []).append(worker.measure(
                "batch_one_thread", model=model, size=size, budget=settings.batch_seconds,
                min_calls=settings.batch_min_calls))
    if worker.runtime == "numba":
        record.setdefault("kernel_us", []).append(worker.measure("kernel", model=model, calls=calls, warmup=warmup))
        ok, read = worker.request("weight_read", model=model, calls=calls, warmup=warmup)
        if ok:  # (n/a for the models without a single-observation kernel)
            record["weight_bytes"] = read["bytes"]
            record.setdefault("weight_read_us", []).append(read["us"])


def cold_starts(model: str, runtimes: List[str], settings: Settings, entry: Dict[str, Any],
                step: "Steps") -> None:
    """Fresh processes, runtimes alternating, one uncounted warm-up round (page cache, numba's disk cache)."""
    for run in range(settings.cold_runs + 1):
        for runtime in list(runtimes):
            step.doing("run {}/{}, {}".format(run + 1, settings.cold_runs + 1, runtime))
            record = entry["runtimes"][runtime]
            try:
                measured = cold_start(runtime, model)
            except WorkerError as exc:
                record["status"] = "error: {}".format(exc)
                log("   {:12s} ERROR: {}".format(runtime, exc))
                runtimes.remove(runtime)
                continue
            if run:
                record.setdefault("cold", []).append(measured)


def compile_bytecode() -> None:
    """sbif's modules compiled to bytecode, as pip does when it installs a package: in an editable install (under
    PYTHONDONTWRITEBYTECODE, or after an edit) every cold-start child would otherwise compile them again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "sbif")], check=True,
                   stdout=subprocess.DEVNULL, env=child_environment())


def cold_start(runtime: str, model: str) -> Dict[str, float]:
    """Seconds from spawning the child to its first action, and the child's peak memory in MiB."""
    started = time.monotonic()
    finished = subprocess.run(command_for(runtime, "cold", model), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=child_environment(), universal_newlines=True)
    if finished.returncode != 0 or not finished.stdout.strip():
        raise WorkerError("cold start failed (exit status {}):\n{}".format(finished.returncode,
                                                                          finished.stderr[-3000:]))
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    return {"wall_s": report["first_action"] - started, "peak_mib": report["peak_rss_kib"] / 1024}


def cold_floor(module: str, runs: int) -> float:
    """Median seconds of a fresh modern-environment process that only imports `module` (after one uncounted run):
    what no runtime built on it can go below on this machine."""
    times = []
    for run in range(runs + 1):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import " + module], check=True, env=child_environment())
        if run:
            times.append(time.monotonic() - started)
    return float(np.median(times))


def flops_per_observation(model: str) -> int:
    """Multiply-adds x 2 of the deterministic action path (and a recurrent state): linear, matmul and conv2d
    nodes; element-wise work is left out, so the FLOP-bound time is a lower bound."""
    from sbif.format import SbifFile

    sbif_file = SbifFile.read(model_file(model, "model.sbif"))
    document, specs = sbif_file.document, sbif_file.specs
    recurrent = document["predict"].get("recurrent")
    needed = {document["predict"]["deterministic_action"]} | ({recurrent["state_output"]} if recurrent else set())
    flops = 0
    for node in reversed(document["graph"]):
        if not needed.intersection(node["outputs"]):
            continue
        needed.update(node["inputs"])
        if node["op"] in ("linear", "matmul"):
            rows, columns = specs[node["inputs"][1]].shape
            flops += 2 * rows * columns
        elif node["op"] == "conv2d":
            kh, kw, channels, filters = specs[node["inputs"][1]].shape
            _, height, width, _ = specs[node["outputs"][0]].shape
            flops += 2 * kh * kw * channels * filters * height * width
    return flops


def machine(workers_info: Dict[str, str]) -> Dict[str, Any]:
    """What the numbers depend on: the host (CPU, ISA extensions, caches, cores, BLAS kernel: host.py), the
    single-core GEMM rate, versions."""
    peak = subprocess.run([sys.executable, os.path.join(HERE, "runtimes.py"), "peak"], check=True,
                          stdout=subprocess.PIPE, universal_newlines=True,
                          env=dict(child_environment(), OPENBLAS_NUM_THREADS="1")).stdout
    return {"host": host.describe(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__,
            "openblas_env": {key: value for key, value in os.environ.items() if key.startswith("OPENBLAS")},
            "peak_gflops_1_core": float(peak),
            "versions": workers_info}


class Steps:
    """The run's progress line: steps done of all (per model: loading and checking, each round; then each model's
    cold starts; then the machine), and which one is going: "ppo2_mlp (2/5): measuring: round 3/7, numba"."""

    def __init__(self, models: List[str], settings: Settings):
        self.line = Progress("make bench", total=len(models) * (settings.rounds + 2) + 1, unit="steps")
        self.models = models
        self.part = ""

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.line.close()

    def start(self, part: str, model: Optional[str] = None) -> None:
        """A part of the run begins (on `model`, when it is one model's)."""
        self.part = part if model is None else "{} ({}/{}): {}".format(
            model, self.models.index(model) + 1, len(self.models), part)
        self.line.doing(self.part)

    def doing(self, detail: str) -> None:
        self.line.doing("{}: {}".format(self.part, detail) if self.part else detail)

    def done(self) -> None:
        self.line.advance()


def run(models: List[str], settings: Settings, quick: bool) -> Tuple[Dict[str, Any], bool]:
    results: Dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_before": os.getloadavg()[0], "quick": quick, "settings": asdict(settings),
        "batch_sizes": list(BATCH_SIZES), "models": {}}
    make_models(models)
    log("== the C runtime's driver (make -C runtimes/c {}, then benchmarks/sbif_bench.c)".format(
        c_runtime.LIBRARY_TARGET))
    results["c_build"] = c_runtime.build()
    log("   " + results["c_build"].get("error", results["c_build"].get("driver_command", "")))
    with Steps(models, settings) as step:
        step.start("starting the runtimes' workers")
        workers = {runtime: Worker(runtime) for runtime in RUNTIMES}
        versions: Dict[str, str] = {}
        timed: Dict[str, List[str]] = {}
        try:
            for model in models:
                log("== {} ({})".format(model, MODELS[model]["title"]))
                step.start("loading and checking against SB2", model)
                entry = results["models"][model] = {
                    "title": MODELS[model]["title"], "kind": MODELS[model]["kind"],
                    "flops_per_obs": flops_per_observation(model), "runtimes": {r: {} for r in RUNTIMES}}
                timed[model] = prepare(workers, model, entry, step)
                step.done()
                if "sb2" not in timed[model]:
                    raise SystemExit("SB2 itself cannot run {}: {}".format(model,
                                                                          entry["runtimes"]["sb2"]["status"]))
                versions.update((r, entry["runtimes"][r]["info"]["versions"]) for r in timed[model])
                step.start("measuring", model)
                measure(workers, model, timed[model], settings, entry, step)
        finally:
            for worker in workers.values():
                worker.close()
        log("== cold starts (fresh processes, {} counted per runtime and model)".format(settings.cold_runs))
        step.start("compiling sbif to bytecode")
        compile_bytecode()
        for model in models:
            step.start("cold starts", model)
            cold_starts(model, [r for r in timed[model] if r in COLD_START_RUNTIMES], settings,
                        results["models"][model], step)
            step.done()
            log("   {} done".format(model))
        step.start("the machine: single-core GEMM peak, cold-start floors")
        results["machine"] = machine(versions)
        results["machine"]["cold_floors_s"] = {module: cold_floor(module, settings.cold_runs)
                                               for module in ("numpy", "numba")}
        step.done()
    for entry in results["models"].values():
        entry["flop_bound_us"] = entry["flops_per_obs"] / (results["machine"]["peak_gflops_1_core"] * 1e3)
    summarize(results)
    results["targets"] = evaluate_targets(results)
    results["host_targets"] = evaluate_host_targets(results)
    sound = all(not record["status"].startswith(("error", "disagrees"))
                for entry in results["models"].values() for record in entry["runtimes"].values())
    return results, sound


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Results: benchmarks/results/latest.json and latest.md. Method and how "
                                            "to read the table: benchmarks/README.md.")
    parser.add_argument("--quick", action="store_true", help="one round, few repetitions: a smoke run, not numbers")
    parser.add_argument("--models", default="", help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    if args.json:
        silence()  # as sbif's --json commands: output for programs, no progress line
    models = parse_models(args.models)
    os.makedirs(WORK, exist_ok=True)
    results, sound = run(models, QUICK if args.quick else FULL, args.quick)
    markdown = render(results)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.json"), "w") as handle:
        json.dump(results, handle, indent=1)
        handle.write("\n")
    with open(os.path.join(RESULTS, "latest.md"), "w") as handle:
        handle.write(markdown)
    print(json.dumps(results, indent=1) if args.json else markdown)
    if not sound:
        log("FAILED: a runtime disagrees with SB2 or raised an error (see its status); it has no numbers")
    return 0 if sound else 1


if __name__ == "__main__":
    sys.exit(main())
