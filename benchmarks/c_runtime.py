"""The C runtime's benchmark driver: its build, and the worker that runs it (modern environment).

`build()` (the coordinator, once per run, before the workers start) asks runtimes/c's Makefile for its host-tuned
static library, which make rebuilds when the runtime's sources change, then compiles `sbif_bench.c` against it
when the driver is older than the library, its header or its own source. The compiler lines of both are
recorded in `benchmarks/.work/c/build.json`, which the worker and the report read. The driver is built with
sbif_predict where the library has it (SBIF_BENCH_PREDICT), else without, and says which (`features`).

The record also holds this core's float32 FMA peak (`fma_peak`: runtimes/c/bench/fma_peak.c, built with the
library's flags), the ceiling against which the C runtime's GFLOP/s are read.

`CRuntime` answers the harness protocol like the other workers, but the calls it times run inside the driver
(one process per measurement, timed there with the harness's own method), so Python's overhead is not in them.
Batches are timed in one thread and, where the library has threads, split between one thread per CPU.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from typing import Any, Dict, List, Optional

import numpy as np

from catalog import ROOT, WORK, model_file
from harness import BLOCK_SECONDS, MAX_BATCH_CALLS, MAX_BLOCK_CALLS, Unavailable, agreement

C_DIR = os.path.join(ROOT, "runtimes", "c")
#: the Makefile's target: the runtime compiled for this host, with sbif_predict (runtimes/c/Makefile)
LIBRARY_TARGET = "build/libsbif-native.a"
DRIVER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sbif_bench.c")
DRIVER_DIR = os.path.join(WORK, "c")
DRIVER = os.path.join(DRIVER_DIR, "sbif-bench")
BUILD_RECORD = os.path.join(DRIVER_DIR, "build.json")
#: the driver's own flags: the runtime's C dialect and warnings; the speed is the library's
DRIVER_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def compiler() -> List[str]:
    """The C compiler's command, as make takes it (CC, else cc)."""
    return shlex.split(os.environ.get("CC", "cc"))


def first_line(command: List[str]) -> Optional[str]:
    """The first line a command prints, or None where it cannot run."""
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    except OSError:
        return None
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else None


def first_error(output: str) -> str:
    """The line of a compiler's or make's output that says what failed first."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower() or "undefined reference" in line),
                lines[-1] if lines else "no output")


#: the Makefile's FMA-peak probe (runtimes/c/bench/README.md)
FMA_PEAK_TARGET = "build/fma-peak"


def fma_peak() -> Dict[str, Any]:
    """This core's float32 FMA peak as the probe measures it: {"gflops", "clock_ghz" (x86-64 only), "lanes"}, or
    {"error": why}."""
    made = subprocess.run(["make", "--no-print-directory", "-C", C_DIR, FMA_PEAK_TARGET], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    if made.returncode != 0:
        return {"error": "make -C runtimes/c {} failed: {}".format(FMA_PEAK_TARGET, first_error(made.stdout))}
    probe = subprocess.run([os.path.join(C_DIR, FMA_PEAK_TARGET)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
    if probe.returncode != 0:
        return {"error": "{} exited with status {}".format(FMA_PEAK_TARGET, probe.returncode)}
    printed = probe.stdout.split()
    peak = {"gflops": float(printed[printed.index("peak") + 1]), "lanes": int(printed[printed.index("vectors") + 2])}
    if "clock" in printed:
        peak["clock_ghz"] = float(printed[printed.index("clock") + 1])
    return peak


def library_commands() -> List[str]:
    """The compiler lines make runs for the library (a dry run of a forced rebuild: nothing is built)."""
    done = subprocess.run(["make", "--no-print-directory", "-n", "-B", "-C", C_DIR, LIBRARY_TARGET],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    return [line.strip() for line in done.stdout.splitlines() if " -c " in line]


def link_flags() -> List[str]:
    """What the library links with (the Makefile's LIBS: libm, and -pthread where it has threads)."""
    done = subprocess.run(["make", "--no-print-directory", "-s", "-C", C_DIR, "link-flags"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, universal_newlines=True)
    return done.stdout.split() if done.returncode == 0 else ["-lm"]


def driver_command(predict: bool) -> List[str]:
    return (compiler() + DRIVER_FLAGS + (["-DSBIF_BENCH_PREDICT"] if predict else []) +
            ["-I", C_DIR, "-o", DRIVER, DRIVER_SOURCE, os.path.join(C_DIR, LIBRARY_TARGET)] + link_flags())


def batch_threads() -> int:
    """The threads the C runtime's threaded batches run on: one per CPU this process may use, as onnxruntime's
    default."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def stale(target: str, sources: List[str]) -> bool:
    return not os.path.exists(target) or any(os.path.getmtime(s) > os.path.getmtime(target) for s in sources)


def build() -> Dict[str, Any]:
    """Build (or reuse) the library and the driver; returns what was built and how, or {"error": why}. Written
    to BUILD_RECORD either way, for the worker."""
    os.makedirs(DRIVER_DIR, exist_ok=True)
    try:
        record = build_record()
    except OSError as exc:  # no make or no compiler on this machine
        record = {"error": "cannot run {}: {}".format(exc.filename, exc.strerror)}
    with open(BUILD_RECORD, "w") as handle:
        json.dump(record, handle, indent=1)
    return record


def build_record() -> Dict[str, Any]:
    made = subprocess.run(["make", "--no-print-directory", "-C", C_DIR, LIBRARY_TARGET], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    if made.returncode != 0:
        return {"error": "make -C runtimes/c {} failed: {}".format(LIBRARY_TARGET, first_error(made.stdout))}
    library = os.path.join(C_DIR, LIBRARY_TARGET)
    if stale(DRIVER, [library, os.path.join(C_DIR, "sbif.h"), DRIVER_SOURCE]):
        for predict in (True, False):  # without sbif_predict where this library lacks it
            linked = subprocess.run(driver_command(predict), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    universal_newlines=True)
            if linked.returncode == 0:
                break
        else:
            return {"error": "the C driver does not build: " + first_error(linked.stdout)}
    features = subprocess.run([DRIVER, "features"], stdout=subprocess.PIPE, universal_newlines=True,
                              check=True).stdout.split()
    return {"compiler": first_line(compiler() + ["--version"]), "make_target": LIBRARY_TARGET,
            "library_commands": library_commands(),
            "driver_command": " ".join(shlex.quote(os.path.relpath(part, ROOT) if part.startswith(ROOT) else part)
                                       for part in driver_command("predict" in features)),
            "predict": "predict" in features, "threads": batch_threads() if "threads" in features else None,
            "fma_peak": fma_peak()}


def read_build() -> Dict[str, Any]:
    try:
        with open(BUILD_RECORD) as handle:
            return json.load(handle)
    except OSError:
        return {"error": "the C driver was not built (run.py builds it before starting the workers)"}


# -- the worker --------------------------------------------------------------------------------------------------------
def drive(*arguments: str) -> str:
    """The driver's stdout; its one-line error (stderr) raised as an exception, which the worker reports."""
    done = subprocess.run([DRIVER] + list(arguments), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or "sbif-bench exited with status {}".format(done.returncode))
    return done.stdout


def parse_values(text: str) -> Dict[str, List[np.ndarray]]:
    """The driver's `check` lines, "NAME DTYPE COUNT VALUES...", as arrays per name in the order printed."""
    found: Dict[str, List[np.ndarray]] = {}
    for line in text.splitlines():
        name, dtype, count, *values = line.split()
        if len(values) != int(count):
            raise RuntimeError("sbif-bench printed {} values of {} for {}".format(len(values), count, name))
        found.setdefault(name, []).append(np.array(values, dtype=np.float64).astype(dtype))
    return found


def model_input(document: Dict[str, Any], kind: str) -> Optional[Dict[str, Any]]:
    return next((entry for entry in document["inputs"] if entry["kind"] == kind), None)


class CRuntime:
    """SBIF's C runtime, through the driver: a workspace run of the deterministic action (the state carried),
    and sbif_predict where the library has it."""

    def __init__(self):
        self.build = read_build()
        self.files: Dict[str, Dict[str, str]] = {}
        self.predict_sections: Dict[str, Dict[str, Any]] = {}

    def load(self, model: str) -> dict:
        from sbif.format import SbifFile

        if "error" in self.build:
            raise Unavailable(self.build["error"])
        document = SbifFile.read(model_file(model, "model.sbif")).document
        observation, mask = model_input(document, "observation"), model_input(document, "mask")
        reference = dict(np.load(model_file(model, "reference.npz")))
        files = {"model": model_file(model, "model.sbif"), "observations": model_file(model, "observations.c.bin"),
                 "reference": model_file(model, "reference-obs.c.bin"), "mask": "-"}
        np.load(model_file(model, "observations.npy")).astype(observation["dtype"]).tofile(files["observations"])
        reference["obs"].astype(observation["dtype"]).tofile(files["reference"])
        if mask is not None:
            files["mask"] = model_file(model, "reference-mask.c.bin")
            reference["mask"].astype(mask["dtype"]).tofile(files["mask"])
        self.files[model], self.predict_sections[model] = files, document["predict"]
        return {"versions": "sbif C runtime (make -C runtimes/c {}, {}){}".format(
            self.build["make_target"], self.build["compiler"], "" if self.build["predict"] else ", no sbif_predict")}

    def check(self, model: str) -> dict:
        """Agreement with SB2 of the workspace run and, where built, of sbif_predict: each output's worse one."""
        expected = dict(np.load(model_file(model, "reference.npz")))
        files = self.files[model]
        scores = [name for name in ("logits", "q_values") if name in expected]
        printed = parse_values(drive("check", files["model"], files["reference"], files["mask"], *scores))
        document_predict = self.predict_sections[model]
        names = dict({"action": document_predict["deterministic_action"]}, **{s: s for s in scores})
        if "state" in expected:
            names["state"] = document_predict["recurrent"]["state_output"]
        found = {key: np.concatenate(printed[name]).reshape(expected[key].shape) for key, name in names.items()}
        report = agreement(model, expected, found)
        if "predict" in printed:
            predicted = np.stack(printed["predict"]).reshape(expected["action"].shape)
            through_predict = agreement(model, expected, dict(found, action=predicted.astype(expected["action"].dtype)))
            report = {key: max(value, through_predict[key]) for key, value in report.items()}
        return report

    def single(self, model: str, calls: int, warmup: int) -> list:
        return self._samples("single", model, calls, warmup)

    def predict(self, model: str, calls: int, warmup: int) -> list:
        if not self.build["predict"]:
            raise Unavailable("the C library has no sbif_predict")
        return self._samples("predict", model, calls, warmup)

    def _samples(self, mode: str, model: str, calls: int, warmup: int) -> list:
        files = self.files[model]
        return json.loads(drive(mode, files["model"], files["observations"], str(calls), str(warmup),
                                repr(BLOCK_SECONDS), str(MAX_BLOCK_CALLS)))["us"]

    def batch(self, model: str, size: int, budget: float, min_calls: int, threads: int = 1) -> list:
        files = self.files[model]
        return json.loads(drive("batch", files["model"], files["observations"], str(size), repr(budget),
                                str(min_calls), str(MAX_BATCH_CALLS), str(threads)))["s"]

    def batch_threads(self, model: str, size: int, budget: float, min_calls: int) -> list:
        """As `batch`, the workspace split between the build's threads (one per CPU)."""
        if not self.build.get("threads"):
            raise Unavailable("the C library has no threads")
        return self.batch(model, size, budget, min_calls, self.build["threads"])
