"""SBIF's JavaScript runtime (runtimes/js) against onnxruntime-web's WASM backend, in Node, on the benchmark's models.

    python benchmarks/js_bench.py [--quick] [--models ppo2_mlp,td3_400_300] [--reuse-models] [--json]

Needs Node >= 18 and `npm ci --prefix benchmarks/js` (onnxruntime-web, pinned by benchmarks/js/package-lock.json).
For each model: SBIF's ONNX converter writes the file onnxruntime-web runs, cut down to the deterministic action (and
the next state for the LSTM) as benchmarks/runtimes.py's onnxruntime session is; both runtimes' actions on SB2's
reference observations are checked with SPEC section 6's rule (harness.agreement) before any timing, and a model
on which either disagrees gets no numbers (exit status 1). Then benchmarks/js/bench.mjs times, alternating the two
runtimes round by round in one Node process: one observation per call (JS: `createPolicy(model).predict(obs,
{deterministic: true})`; onnxruntime-web: `session.run` on a one-row tensor; the LSTM carries its state) and
batches of 256. onnxruntime-web runs with one thread, and in a second process with its default when that differs
here. Writes benchmarks/results/js-latest.json and js-latest.md; the ratios are JS's speed over onnxruntime-web's.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

import host
from catalog import HERE, MODELS, RESULTS, WORK, model_file, parse_models
from harness import agreement, agrees, observations

BENCH_DIR = os.path.join(HERE, "js")
BENCH_SCRIPT = os.path.join(BENCH_DIR, "bench.mjs")
JS_WORK = os.path.join(WORK, "js")
BATCH = 256
#: the issue's targets (#23): JS speed / onnxruntime-web speed, by model kind and measurement
TARGETS = {("mlp", "single"): 1.0, ("mlp", "batch"): 0.5, ("cnn", "single"): 0.5, ("cnn", "batch"): 0.5,
           ("lstm", "batch"): 0.5}
#: values fed to noise inputs a pruned graph might keep (only sampled actions read them)
NOISE_FILL = {"uniform": 0.5, "normal": 0.0}

FULL = {"rounds": 7, "single_calls": 300, "warmup": 200, "batch_seconds": 0.4, "batch_min_calls": 3,
        "batch_max_calls": 500}
QUICK = {"rounds": 1, "single_calls": 50, "warmup": 20, "batch_seconds": 0.02, "batch_min_calls": 1,
         "batch_max_calls": 5}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- preparing the plan --------------------------------------------------------------------------------------------
def write_raw(path: str, array: np.ndarray) -> str:
    """`array` as the raw little-endian bytes bench.mjs reads into a typed array."""
    np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tofile(path)
    return path


def prepare(model: str, work: str) -> Dict[str, Any]:
    """The ONNX file and observation files of one model, written under `work`, and what bench.mjs needs to feed
    both runtimes."""
    from runtimes import Graph, pruned_to, read_document
    from sbif.convert.onnx import to_onnx

    directory = os.path.join(work, model)
    os.makedirs(directory, exist_ok=True)
    document = read_document(model)
    graph = Graph(document)
    pruned = pruned_to(to_onnx(model_file(model, "model.sbif")), graph.fetch)
    onnx_path = os.path.join(directory, "actions.onnx")
    with open(onnx_path, "wb") as handle:
        handle.write(pruned.SerializeToString())
    declared = {entry["name"]: entry for entry in document["inputs"]}
    ort_inputs = []
    for onnx_input in pruned.graph.input:
        entry = declared[onnx_input.name]
        kind = entry["kind"]
        if kind == "observation":
            ort_inputs.append({"name": entry["name"], "role": "observation"})
        elif kind == "state":
            ort_inputs.append({"name": entry["name"], "role": "state", "width": entry["shape"][1]})
        elif kind == "mask":
            ort_inputs.append({"name": entry["name"], "role": "mask"})
        elif kind == "noise":
            ort_inputs.append({"name": entry["name"], "role": "noise", "shape": entry["shape"],
                               "fill": NOISE_FILL[entry["distribution"]]})
        else:
            raise SystemExit("{}: the ONNX file keeps an input bench.mjs cannot feed: {} ({})".format(
                model, entry["name"], kind))
    observation_entry = next(entry for entry in document["inputs"] if entry["kind"] == "observation")
    batch = observations(model, BATCH)
    reference = np.load(model_file(model, "reference.npz"))
    recurrent = graph.state_input is not None
    return {
        "name": model,
        "sbif": model_file(model, "model.sbif"),
        "onnx": onnx_path,
        "onnx_nodes": len(pruned.graph.node),
        "observation": {"dtype": observation_entry["dtype"], "shape": observation_entry["shape"][1:]},
        "single_file": write_raw(os.path.join(directory, "single.bin"), batch[:1]),
        "batch_file": write_raw(os.path.join(directory, "batch.bin"), batch),
        "batch_rows": BATCH,
        "reference": {
            "obs_file": write_raw(os.path.join(directory, "reference-obs.bin"), reference["obs"]),
            "rows": len(reference["obs"]),
            "mask_file": (write_raw(os.path.join(directory, "reference-mask.bin"),
                                    reference["mask"].astype(np.uint8)) if recurrent else None),
        },
        "ort_inputs": ort_inputs,
        "action": graph.action,
        "state_input": graph.state_input,
        "state_output": graph.state_output,
        "mask_input": graph.mask_input,
    }


# -- running bench.mjs ---------------------------------------------------------------------------------------------
def node(*arguments: str) -> Dict[str, Any]:
    """One bench.mjs command's JSON answer (its progress goes to our stderr)."""
    command = ["node", "--expose-gc", BENCH_SCRIPT] + list(arguments)
    finished = subprocess.run(command, cwd=BENCH_DIR, stdout=subprocess.PIPE, universal_newlines=True)
    if finished.returncode != 0:
        raise SystemExit("{} failed (exit status {}): see above".format(" ".join(command), finished.returncode))
    return json.loads(finished.stdout)


def check_installed() -> None:
    if shutil.which("node") is None:
        raise SystemExit("node is not on PATH: the JavaScript benchmark runs in Node >= 18")
    if not os.path.isdir(os.path.join(BENCH_DIR, "node_modules", "onnxruntime-web")):
        raise SystemExit("onnxruntime-web is not installed: run `npm ci --prefix benchmarks/js`")


def agreement_of(model: str, found: Dict[str, List[Any]]) -> Dict[str, float]:
    """SPEC section 6's verdict on one runtime's deterministic actions (and LSTM states) on SB2's reference
    observations: the reference's decision scores excuse discrete near-ties; floats within 8 error scales."""
    reference = dict(np.load(model_file(model, "reference.npz")))
    compared = {key: reference[key] for key in ("obs", "mask", "action", "state") if key in reference}
    actual = {key: np.asarray(values, dtype=reference[key].dtype).reshape(reference[key].shape)
              for key, values in found.items()}
    return agreement(model, compared, actual)


def summarize(rounds: Dict[str, Dict[str, List[float]]]) -> Dict[str, Dict[str, float]]:
    """Medians of the round medians, in µs per call, with observations per second and JS's speed ratio."""
    summary = {}
    for measure, rows in (("single", 1), ("batch", BATCH)):
        js_us = statistics.median(rounds[measure]["js"])
        ort_us = statistics.median(rounds[measure]["ort"])
        summary[measure] = {"js_us": js_us, "ort_us": ort_us, "js_obs_per_s": rows / js_us * 1e6,
                            "ort_obs_per_s": rows / ort_us * 1e6, "speed_ratio": ort_us / js_us,
                            "rounds": rounds[measure]}
    return summary


def run(models: List[str], settings: Dict[str, Any], work: str) -> Tuple[Dict[str, Any], bool]:
    os.makedirs(work, exist_ok=True)
    entries = []
    for model in models:
        log("== {}: the ONNX file and observations".format(model))
        entries.append(prepare(model, work))
    plan_path = os.path.join(work, "plan.json")
    with open(plan_path, "w") as handle:
        json.dump({"models": entries, "settings": settings}, handle, indent=1)

    log("== agreement with SB2 (both runtimes' actions on the reference observations)")
    checked = node("check", plan_path)
    found = checked["models"]
    checks: Dict[str, Dict[str, Dict[str, float]]] = {}
    agreeing = []
    for model in models:
        checks[model] = {runtime: agreement_of(model, found[model][runtime]) for runtime in ("js", "ort")}
        verdicts = {runtime: agrees(report) for runtime, report in checks[model].items()}
        log("  {}: JS {}, onnxruntime-web {}".format(model, *("agrees" if verdicts[r] else "DISAGREES: {}".format(
            checks[model][r]) for r in ("js", "ort"))))
        if all(verdicts.values()):
            agreeing.append(model)
    configurations = ["1"] + (["default"] if checked["ort_default_threads"] != 1 else [])
    timings: Dict[str, Any] = {}
    if agreeing:
        with open(plan_path, "w") as handle:
            json.dump({"models": [entry for entry in entries if entry["name"] in agreeing], "settings": settings},
                      handle, indent=1)
        for threads in configurations:
            log("== timing, onnxruntime-web with {} thread(s)".format(threads))
            timed = node("time", plan_path, "--ort-threads", threads)
            timings[threads] = {"ort_threads": timed["ort_threads"],
                                "models": {model: summarize(rounds) for model, rounds in timed["models"].items()}}
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {key: checked[key] for key in ("node", "onnxruntime_web", "sbif_runtime")},
        "ort_default_threads": checked["ort_default_threads"],
        "settings": settings,
        "models": {model: {"title": MODELS[model]["title"], "kind": MODELS[model]["kind"],
                           "agreement": checks[model]} for model in models},
        "timings": timings,
    }
    return results, len(agreeing) == len(models)


def machine() -> Dict[str, Any]:
    """The CPU the numbers depend on (onnxruntime-web's kernels are WASM SIMD; the JS runtime's are scalar)."""
    cpuinfo = host.read_text(host.CPUINFO)
    return {"cpu": host.cpu_model(cpuinfo), "isa_extensions": host.kernel_extensions(host.cpu_flags(cpuinfo)),
            "cores": host.core_count(host.SYSFS_CPU), "logical_cpus": os.cpu_count(),
            "platform": platform.platform()}


# -- the report ------------------------------------------------------------------------------------------------------
def target_text(kind: str, measure: str, ratio: float) -> str:
    target = TARGETS.get((kind, measure))
    if target is None:
        return "{:.2f}×".format(ratio)
    return "{:.2f}× {} (≥ {:g}×)".format(ratio, "✓" if ratio >= target else "✗", target)


def render(results: Dict[str, Any]) -> str:
    versions = results["versions"]
    lines = [
        "# SBIF's JavaScript runtime vs onnxruntime-web (WASM), in Node",
        "",
        "{}; Node {}, onnxruntime-web {}, sbif-runtime {}; {} ({} cores, {} logical CPUs; {}); {}.".format(
            results["date"], versions["node"], versions["onnxruntime_web"], versions["sbif_runtime"],
            results["machine"]["cpu"], results["machine"]["cores"], results["machine"]["logical_cpus"],
            " ".join(results["machine"]["isa_extensions"]) or "ISA extensions unknown",
            results["machine"]["platform"]),
        "",
        "Median of {rounds} rounds' medians. Single observation: µs per call (one `predict`, or one `session.run` on a "
        "one-row tensor). Batch: {batch} observations per call, µs per call and observations per second. Ratio: JS's "
        "speed over onnxruntime-web's (onnxruntime-web µs / JS µs; > 1: JS is faster), with #23's target.".format(
            batch=BATCH, **results["settings"]),
        "",
    ]
    for threads, timed in results["timings"].items():
        lines += ["## onnxruntime-web with {} thread(s){}".format(
            timed["ort_threads"], " (its default here)" if threads == "default" else ""), "",
            "| model | JS 1 obs (µs) | ORT-web 1 obs (µs) | ratio 1 obs | JS batch {b} (µs) | ORT-web batch {b} (µs) "
            "| JS obs/s | ORT-web obs/s | ratio batch |".format(b=BATCH),
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for model, summary in timed["models"].items():
            kind = results["models"][model]["kind"]
            single, batch = summary["single"], summary["batch"]
            lines.append("| {} | {:.1f} | {:.1f} | {} | {:.0f} | {:.0f} | {:,.0f} | {:,.0f} | {} |".format(
                results["models"][model]["title"], single["js_us"], single["ort_us"],
                target_text(kind, "single", single["speed_ratio"]), batch["js_us"], batch["ort_us"],
                batch["js_obs_per_s"], batch["ort_obs_per_s"], target_text(kind, "batch", batch["speed_ratio"])))
        lines.append("")
    if results["ort_default_threads"] == 1:
        lines += ["onnxruntime-web's default is one thread on this machine (it takes min(4, ⌈CPUs / 2⌉)), so the "
                  "one-thread run is also the default's.", ""]
    disagreeing = [model for model, entry in results["models"].items()
                   if not all(agrees(report) for report in entry["agreement"].values())]
    if disagreeing:
        lines += ["Not timed (a runtime's actions disagree with SB2's): {}.".format(", ".join(disagreeing)), ""]
    return "\n".join(lines)  # ends with one newline: the last line is empty


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated model names (default: all six)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short round")
    parser.add_argument("--reuse-models", action="store_true",
                        help="use the models benchmarks/.work holds without asking make_models.py to check them")
    parser.add_argument("--json", action="store_true", help="print the JSON results instead of the table")
    parser.add_argument("--out", default=RESULTS, help="where js-latest.json and js-latest.md go")
    parser.add_argument("--work", default=JS_WORK, help="where the ONNX files, observations and plan are written")
    args = parser.parse_args(argv)
    models = parse_models(args.models)
    check_installed()
    if args.reuse_models:
        missing = [model for model in models if not all(
            os.path.exists(model_file(model, name)) for name in ("model.sbif", "observations.npy", "reference.npz"))]
        if missing:
            raise SystemExit("no benchmark model for {} in {}: run without --reuse-models (SB2 builds them)".format(
                ", ".join(missing), os.path.dirname(model_file(missing[0], ""))))
    else:
        from run import make_models

        make_models(models)
    results, all_agree = run(models, QUICK if args.quick else FULL, args.work)
    os.makedirs(args.out, exist_ok=True)
    table = render(results)
    with open(os.path.join(args.out, "js-latest.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    with open(os.path.join(args.out, "js-latest.md"), "w") as handle:
        handle.write(table)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(table, end="")
    return 0 if all_agree else 1


if __name__ == "__main__":
    sys.exit(main())
