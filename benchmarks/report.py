"""Turn a run's raw samples into medians and ratios, check the issue's targets, and render the markdown table.

Ratios are taken inside one run: for latency and throughput, per round (the runtimes of a round are measured
seconds apart), then the median over rounds; for cold start, per run of the alternating fresh processes.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from catalog import KERNEL_MODEL
from host import size_text, summary as host_summary

RUNTIME_LABELS = {"sb2": "SB2 `predict`", "numpy": "SBIF numpy", "numba": "SBIF numba", "c": "SBIF C",
                  "onnxruntime": "onnxruntime", "torch": "torch"}
SBIF_BACKENDS = ("numpy", "numba")
#: target thresholds from the issue (#7)
SINGLE_VS_SB2 = 50.0
BATCH_VS_ORT = {"mlp": 1.0, "cnn": 0.8, "lstm": 0.8}
KERNEL_VS_FLOP_BOUND = 2.0
NUMPY_COLD_SECONDS, NUMPY_PEAK_MIB = 0.15, 60.0
NUMBA_COLD_SECONDS = 0.5
#: target thresholds from issue #22 (kernels sized by the host, the C runtime)
NUMBA_BATCH_VS_ORT = 1.0
NUMBA_SINGLE_VS_ORT = 2.0
KERNEL_VS_READ_BOUND = 1.3
C_SINGLE_VS_ORT = 1.0
C_VS_NUMBA_KERNEL = 1.5
C_BATCH_VS_ORT = 0.7
#: issue #22's "more with threads": split between as many threads as onnxruntime's default uses, at least its rate
C_THREADS_BATCH_VS_ORT = 1.0


# -- statistics --------------------------------------------------------------------------------------------------------
def stats(values: Iterable[float]) -> Dict[str, float]:
    values = np.asarray(list(values), dtype=np.float64)
    p25, median, p75 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "p25": float(p25), "p75": float(p75), "n": int(values.size)}


def round_ratio(reference: List[float], measured: List[float]) -> Optional[float]:
    """Median over rounds of reference time / measured time (>1: `measured` is faster)."""
    ratios = [a / b for a, b in zip(reference, measured)]
    return float(np.median(ratios)) if ratios else None


def summarize(results: Dict[str, Any]) -> None:
    """Replace every record's raw samples by statistics, per-round medians and ratios vs SB2 and onnxruntime."""
    for entry in results["models"].values():
        records = entry["runtimes"]
        for record in records.values():
            if "single_us" in record:
                rounds = record.pop("single_us")
                record["single_us"] = dict(stats(np.concatenate(rounds)), round_medians=[
                    float(np.median(r)) for r in rounds])
            for raw, key in (("batch_s", "batch"), ("batch_threads_s", "batch_threads"),
                             ("batch_one_thread_s", "batch_one_thread")):
                if raw in record:
                    record[key] = {}
                    for size, rounds in record.pop(raw).items():
                        seconds = stats(np.concatenate(rounds))
                        record[key][size] = {
                            "obs_per_s": int(size) / seconds["median"], "p25": int(size) / seconds["p75"],
                            "p75": int(size) / seconds["p25"], "n": seconds["n"],
                            "round_median_s": [float(np.median(r)) for r in rounds]}
            for key in ("predict_us", "kernel_us"):
                if key in record:
                    rounds = record.pop(key)
                    record[key] = dict(stats(np.concatenate(rounds)),
                                       round_medians=[float(np.median(r)) for r in rounds])
            if "weight_read_us" in record:
                record["weight_read_us"] = stats(np.concatenate(record["weight_read_us"]))
            if "cold" in record:
                runs = record.pop("cold")
                record["cold"] = {"wall_s": stats(run["wall_s"] for run in runs),
                                  "peak_mib": stats(run["peak_mib"] for run in runs), "runs": runs}
        for record in records.values():
            if record.get("status") == "ok":
                record["ratios"] = ratios(record, records)


def ratios(record: Dict[str, Any], records: Dict[str, Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """How many times faster than SB2 and than onnxruntime, per measurement (> 1: this runtime is faster)."""
    found: Dict[str, Optional[float]] = {}
    for other in ("sb2", "onnxruntime"):
        reference = records[other]
        if reference.get("status") != "ok":
            continue
        found["single_vs_" + other] = round_ratio(reference["single_us"]["round_medians"],
                                                  record["single_us"]["round_medians"])
        if "predict_us" in record:
            found["predict_vs_" + other] = round_ratio(reference["single_us"]["round_medians"],
                                                       record["predict_us"]["round_medians"])
        for size, batch in record["batch"].items():
            found["b{}_vs_{}".format(size, other)] = round_ratio(reference["batch"][size]["round_median_s"],
                                                                batch["round_median_s"])
        for size, batch in record.get("batch_threads", {}).items():
            found["b{}_threads_vs_{}".format(size, other)] = round_ratio(reference["batch"][size]["round_median_s"],
                                                                        batch["round_median_s"])
        for size, one_thread in reference.get("batch_one_thread", {}).items():
            if size in record["batch"]:  # this runtime's batch against the reference's in one thread
                found["b{}_vs_{}_one_thread".format(size, other)] = round_ratio(
                    one_thread["round_median_s"], record["batch"][size]["round_median_s"])
        if "cold" in record and "cold" in reference:
            runs = zip(reference["cold"]["runs"], record["cold"]["runs"])
            found["cold_vs_" + other] = float(np.median([a["wall_s"] / b["wall_s"] for a, b in runs]))
    return found


# -- targets -----------------------------------------------------------------------------------------------------------
#: (key, what is checked, the requirement as shown): the issue's targets, in table order
TARGETS = [
    ("single_vs_sb2", "single obs: SBIF `predict` vs SB2 `predict` (MLPs)", "≥ {:g}×".format(SINGLE_VS_SB2)),
    ("single_vs_onnxruntime", "single obs: SBIF `predict` vs onnxruntime `run`, 1 thread (MLPs)", "≥ 1×"),
    ("kernel", "numba kernel alone vs the FLOP-bound limit (400×300)", "≤ {:g}×".format(KERNEL_VS_FLOP_BOUND)),
    ("b4096_vs_onnxruntime", "batch 4096: SBIF vs onnxruntime, default threads",
     "≥ {:g}× MLP, ≥ {:g}× CNN/LSTM".format(BATCH_VS_ORT["mlp"], BATCH_VS_ORT["cnn"])),
    ("numpy_cold", "cold start, SBIF numpy", "≤ {:g} s".format(NUMPY_COLD_SECONDS)),
    ("numpy_peak", "peak memory of that cold start", "≤ {:g} MiB".format(NUMPY_PEAK_MIB)),
    ("numba_cold", "cold start, SBIF numba, warm cache", "≤ {:g} s".format(NUMBA_COLD_SECONDS)),
    ("agreement", "every runtime agrees with SB2 (SPEC §6)", "all"),
]


def check(key: str, model: str, runtime: str, measured: Optional[float], passed: Optional[bool], shown: str,
          note: str = "") -> Dict[str, Any]:
    """One target on one model; `passed` None means it could not be measured here (`note` says why)."""
    return {"target": key, "model": model, "runtime": runtime, "measured": measured, "pass": passed,
            "shown": shown, "note": note}


def best_sbif(records: Dict[str, Dict[str, Any]], key: str) -> Optional[str]:
    """The SBIF backend with the highest ratio `key` (what `backend="auto"` should pick), or None."""
    candidates = [b for b in SBIF_BACKENDS if records[b].get("ratios", {}).get(key) is not None]
    return max(candidates, key=lambda b: records[b]["ratios"][key]) if candidates else None


def evaluate_targets(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    checks = []
    for model, entry in results["models"].items():
        records, kind = entry["runtimes"], entry["kind"]

        def ratio_check(key: str, required: float) -> None:
            backend = best_sbif(records, key)
            if backend is None:
                reference = key.split("_vs_")[1]
                status = records[reference].get("status", "")
                why = status if status != "ok" else "no SBIF backend measured"
                checks.append(check(key, model, "SBIF", None, None, "n/a", "{}: {}".format(reference, why)))
                return
            ratio = records[backend]["ratios"][key]
            checks.append(check(key, model, backend, ratio, ratio >= required,
                                "{} {}".format(fmt_ratio(ratio), backend)))

        def limit_check(key: str, runtime: str, measured: Optional[float], limit: float, unit: str) -> None:
            if measured is None:
                checks.append(check(key, model, runtime, None, None, "n/a", records[runtime].get("status", "")))
            else:
                checks.append(check(key, model, runtime, measured, measured <= limit,
                                    "{} {}".format(fmt_number(measured), unit)))

        if kind == "mlp":
            ratio_check("single_vs_sb2", SINGLE_VS_SB2)
            ratio_check("single_vs_onnxruntime", 1.0)
        ratio_check("b4096_vs_onnxruntime", BATCH_VS_ORT[kind])
        if model == KERNEL_MODEL:
            kernel = records["numba"].get("kernel_us")
            if kernel is None:
                checks.append(check("kernel", model, "numba", None, None, "n/a", records["numba"].get("status", "")))
            else:
                times = kernel["median"] / entry["flop_bound_us"]
                checks.append(check("kernel", model, "numba", times, times <= KERNEL_VS_FLOP_BOUND,
                                    "{}× ({} µs)".format(fmt_number(times), fmt_number(kernel["median"]))))
        numpy_cold, numba_cold = records["numpy"].get("cold"), records["numba"].get("cold")
        limit_check("numpy_cold", "numpy", numpy_cold and numpy_cold["wall_s"]["median"], NUMPY_COLD_SECONDS, "s")
        limit_check("numpy_peak", "numpy", numpy_cold and numpy_cold["peak_mib"]["median"], NUMPY_PEAK_MIB, "MiB")
        limit_check("numba_cold", "numba", numba_cold and numba_cold["wall_s"]["median"], NUMBA_COLD_SECONDS, "s")
        checks.append(agreement_check(model, records))
    return checks


def agreement_check(model: str, records: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Every runtime of `model` agrees with SB2 (a target of both issues)."""
    disagreeing = [r for r, record in records.items() if record.get("status", "").startswith("disagrees")]
    return check("agreement", model, ", ".join(disagreeing) or "all", float(len(disagreeing)), not disagreeing,
                 "{} disagree".format(", ".join(disagreeing)) if disagreeing else "all")


#: issue #22's targets, in table order (same shape as TARGETS)
HOST_TARGETS = [
    ("numba_b4096", "batch 4096: SBIF numba vs onnxruntime, default threads (every model)",
     "≥ {:g}×".format(NUMBA_BATCH_VS_ORT)),
    ("numba_single", "single obs: SBIF numba `predict` vs onnxruntime `run`, 1 thread (MLPs)",
     "≥ {:g}×".format(NUMBA_SINGLE_VS_ORT)),
    ("read_bound", "numba kernel alone vs its read-bound, where the weights fit a core's L2 (400×300)",
     "≤ {:g}×".format(KERNEL_VS_READ_BOUND)),
    ("c_single", "single obs: SBIF C vs onnxruntime `run`, 1 thread (MLPs)", "≥ {:g}×".format(C_SINGLE_VS_ORT)),
    ("c_vs_kernel", "single obs: SBIF C workspace run ÷ the numba kernel (MLPs)",
     "≤ {:g}×".format(C_VS_NUMBA_KERNEL)),
    ("c_b4096", "batch 4096: SBIF C (1 thread) vs onnxruntime, default threads", "≥ {:g}×".format(C_BATCH_VS_ORT)),
    ("c_b4096_threads", "batch 4096: SBIF C (one thread per CPU) vs onnxruntime, default threads",
     "≥ {:g}×".format(C_THREADS_BATCH_VS_ORT)),
    ("agreement", "every runtime agrees with SB2 (SPEC §6)", "all"),
]


def unmeasured(records: Dict[str, Dict[str, Any]], *runtimes: str) -> Optional[str]:
    """Why a target over `runtimes` has no figure (the first runtime not measured and its status), or None."""
    for runtime in runtimes:
        status = records[runtime].get("status", "not run")
        if status != "ok":
            return "{}: {}".format(RUNTIME_LABELS[runtime], status)
    return None


def versus_onnxruntime(key: str, model: str, runtime: str, records: Dict[str, Dict[str, Any]], ratio_key: str,
                       required: float, label: str = "") -> Dict[str, Any]:
    """A `runtime` ÷ onnxruntime speed ratio (> 1: `runtime` is faster) held to at least `required`."""
    why = unmeasured(records, runtime, "onnxruntime")
    ratio = records[runtime].get("ratios", {}).get(ratio_key)
    if why or ratio is None:
        return check(key, model, runtime, None, None, "n/a", why or "no {} ratio".format(ratio_key))
    return check(key, model, runtime, ratio, ratio >= required, fmt_ratio(ratio) + label)


def read_bound_check(model: str, records: Dict[str, Dict[str, Any]], l2_bytes: Optional[int]) -> Dict[str, Any]:
    """The numba kernel ÷ the time to read its weights once: held to KERNEL_VS_READ_BOUND only where the weights
    fit a core's L2 (beyond it the read-bound is L3's or memory's, and the ratio is shown without a verdict)."""
    record = records["numba"]
    kernel, read = record.get("kernel_us"), record.get("weight_read_us")
    if kernel is None or read is None:
        return check("read_bound", model, "numba", None, None, "n/a",
                     unmeasured(records, "numba") or "no single-observation kernel")
    times, weights = kernel["median"] / read["median"], record["weight_bytes"]
    shown = "{} ({} KiB of weights)".format(fmt_ratio(times), weights // 1024)
    if l2_bytes is None:
        return check("read_bound", model, "numba", times, None, shown, "this host's L2 size is unknown")
    if weights > l2_bytes:
        return check("read_bound", model, "numba", times, None, shown, "the weights ({} KiB) do not fit a core's "
                     "L2 ({} KiB): the kernel reads them from L3 or memory".format(weights // 1024, l2_bytes // 1024))
    return check("read_bound", model, "numba", times, times <= KERNEL_VS_READ_BOUND, shown)


def c_versus_kernel(model: str, records: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The C workspace run of one observation ÷ the numba kernel on it, median of per-round ratios (≤ 1: C is
    as fast); both are the compiled code without a Python call around it."""
    why = unmeasured(records, "c", "numba")
    kernel = records["numba"].get("kernel_us")
    if why or kernel is None:
        return check("c_vs_kernel", model, "c", None, None, "n/a", why or "no numba kernel measured")
    times = round_ratio(records["c"]["single_us"]["round_medians"], kernel["round_medians"])
    return check("c_vs_kernel", model, "c", times, times <= C_VS_NUMBA_KERNEL, "{} ({} µs vs {} µs)".format(
        fmt_ratio(times), fmt_number(records["c"]["single_us"]["median"]), fmt_number(kernel["median"])))


def fma_peak(results: Dict[str, Any]) -> Dict[str, Any]:
    """This core's float32 FMA peak as the C build recorded it ({"gflops", "clock_ghz", "lanes"}), or {}."""
    return results.get("c_build", {}).get("fma_peak") or {}


def fma_peak_ceiling(results: Dict[str, Any], entry: Dict[str, Any]) -> Optional[float]:
    """What the C batch target's ratio would be if one core ran the model's products at its float32 FMA peak:
    the most that ratio can be on this host (the element-wise work left out, so the true bound is lower). Where it
    is below C_BATCH_VS_ORT, onnxruntime's threads run faster than any one core can, and the target is out of
    reach here whatever the code. None where the peak or onnxruntime's batch was not measured."""
    peak = fma_peak(results).get("gflops")
    batch = entry["runtimes"]["onnxruntime"].get("batch", {}).get(str(max(results["batch_sizes"])))
    if not peak or not batch or not entry.get("flops_per_obs"):
        return None
    return peak * 1e9 / entry["flops_per_obs"] / batch["obs_per_s"]


def evaluate_host_targets(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Issue #22's targets on every model: the numba backend's and the C runtime's."""
    checks = []
    l2_bytes = results["machine"]["host"]["l2_per_core_bytes"]
    for model, entry in results["models"].items():
        records = entry["runtimes"]
        checks.append(versus_onnxruntime("numba_b4096", model, "numba", records, "b4096_vs_onnxruntime",
                                         NUMBA_BATCH_VS_ORT))
        if entry["kind"] == "mlp":
            checks.append(versus_onnxruntime("numba_single", model, "numba", records, "single_vs_onnxruntime",
                                             NUMBA_SINGLE_VS_ORT))
        if model == KERNEL_MODEL:
            checks.append(read_bound_check(model, records, l2_bytes))
        if entry["kind"] == "mlp":
            through_predict = "predict_vs_onnxruntime" in records["c"].get("ratios", {})
            checks.append(versus_onnxruntime(
                "c_single", model, "c", records, "predict_vs_onnxruntime" if through_predict else
                "single_vs_onnxruntime", C_SINGLE_VS_ORT, " sbif_predict" if through_predict else " workspace run"))
            checks.append(c_versus_kernel(model, records))
        ceiling = fma_peak_ceiling(results, entry)
        checks.append(versus_onnxruntime("c_b4096", model, "c", records, "b4096_vs_onnxruntime", C_BATCH_VS_ORT,
                                         "" if ceiling is None else " (FMA peak: {})".format(fmt_ratio(ceiling))))
        if records["c"].get("status") == "ok" and "batch_threads" not in records["c"]:
            checks.append(check("c_b4096_threads", model, "c", None, None, "n/a", "the C library has no threads"))
        else:
            checks.append(versus_onnxruntime("c_b4096_threads", model, "c", records, "b4096_threads_vs_onnxruntime",
                                             C_THREADS_BATCH_VS_ORT))
        checks.append(agreement_check(model, records))
    return checks


# -- rendering ---------------------------------------------------------------------------------------------------------
def fmt_number(value: float) -> str:
    """Three significant figures, with k/M suffixes for large values."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return fmt_number(value / limit) + suffix
    if abs(value) >= 100:
        return "{:.0f}".format(value)
    return "{:.3g}".format(value) if abs(value) >= 1 else "{:.2g}".format(value)


def fmt_ratio(value: Optional[float]) -> str:
    return "" if value is None else fmt_number(value) + "×"


def fmt_spread(summary: Dict[str, float], value: float) -> str:
    """A median with half its interquartile range as a percentage: '6.21 ±2%'."""
    spread = abs(summary["p75"] - summary["p25"]) / 2 / value * 100 if value else 0.0
    return "{} ±{:.0f}%".format(fmt_number(value), spread)


def agreement_cell(record: Dict[str, Any]) -> str:
    report = record.get("agreement")
    if report is None:
        return ""
    floats = [v for k, v in report.items() if k != "action_mismatches"]
    parts = []
    if "action_mismatches" in report:
        parts.append("{} action diffs".format(int(report["action_mismatches"])))
    if floats:
        parts.append("{:.2g} of the limit".format(max(floats)))
    return ("✓ " if record.get("status") == "ok" else "✗ ") + ", ".join(parts)


def table(header: List[str], rows: List[List[str]], align: str) -> List[str]:
    """A markdown table padded to aligned columns (readable as plain text too); `align` is l/r per column."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: List[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) if a == "l" else str(c).rjust(w)
                                 for c, w, a in zip(cells, widths, align)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, align)) + "|"
    return [line(header), rule] + [line(row) for row in rows]


def result_rows(results: Dict[str, Any], notes: List[str]) -> List[List[str]]:
    rows = []
    sizes = [str(size) for size in results["batch_sizes"]]
    for model, entry in results["models"].items():
        for runtime, record in entry["runtimes"].items():
            status = record.get("status", "not run")
            label = RUNTIME_LABELS[runtime]
            if status != "ok":
                notes.append("{} / {}: {}".format(model, label, status))
                rows.append([model, label, status.split(":")[0]] + [""] * (5 + 3 * len(sizes)) +
                            [agreement_cell(record)])
                continue
            r = record["ratios"]
            single = record["single_us"]
            row = [model, label, fmt_spread(single, single["median"]), fmt_ratio(r.get("single_vs_sb2")),
                   fmt_ratio(r.get("single_vs_onnxruntime"))]
            for size in sizes:
                batch = record["batch"][size]
                row += [fmt_spread(batch, batch["obs_per_s"]), fmt_ratio(r.get("b{}_vs_sb2".format(size))),
                        fmt_ratio(r.get("b{}_vs_onnxruntime".format(size)))]
            cold = record.get("cold")
            row += [fmt_spread(cold["wall_s"], cold["wall_s"]["median"]) if cold else "",
                    fmt_ratio(r.get("cold_vs_sb2")), fmt_number(cold["peak_mib"]["median"]) if cold else "",
                    "reference" if runtime == "sb2" else agreement_cell(record)]
            rows.append(row)
    return rows


def target_rows(targets: List[Any], checks: List[Dict[str, Any]], models: List[str]) -> List[List[str]]:
    """One row per target, one column per model: '✓ 94× numba', '✗ 0.21 s', '– n/a' (blank: not applicable)."""
    found = {(c["target"], c["model"]): c for c in checks}
    rows = []
    for key, text, required in targets:
        cells = []
        for model in models:
            item = found.get((key, model))
            if item is None:
                cells.append("")
            else:
                mark = "–" if item["pass"] is None else "✓" if item["pass"] else "✗"
                cells.append(mark + " " + item["shown"])
        if any(cells):
            rows.append([text, required] + cells)
    return rows


def flop_rows(results: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for model, entry in results["models"].items():
        record = entry["runtimes"]["numba"]
        kernel, read = record.get("kernel_us"), record.get("weight_read_us")
        rows.append([model, "{:,}".format(entry["flops_per_obs"]), fmt_number(entry["flop_bound_us"]),
                     "{:,}".format(record["weight_bytes"] // 1024) if read else "",
                     fmt_number(read["median"]) if read else "",
                     fmt_spread(kernel, kernel["median"]) if kernel else "",
                     fmt_ratio(kernel["median"] / entry["flop_bound_us"]) if kernel else "",
                     fmt_ratio(kernel["median"] / read["median"]) if kernel and read else ""])
    return rows


def target_section(title: str, targets: List[Any], checks: List[Dict[str, Any]], models: List[str],
                   caption: str) -> List[str]:
    """A targets table with its caption and, per target not measurable here, why."""
    lines = ["## " + title, ""]
    lines += table(["target", "required"] + models, target_rows(targets, checks, models), "ll" + "l" * len(models))
    titles = {key: text for key, text, _ in targets}
    missing = ["- {} / {}: {}".format(c["model"], titles[c["target"]], c["note"]) for c in checks
               if c["pass"] is None]
    return lines + ["", caption + (" Not judged here (–):" if missing else "")] + missing


def products_rate(obs_per_s: float, flops_per_obs: int, peak_gflops: Optional[float]) -> str:
    """The GFLOP/s of a batch's products, and their share of this core's FMA peak where it was measured."""
    gflops = obs_per_s * flops_per_obs / 1e9
    return fmt_number(gflops) + (" ({:.0f}%)".format(gflops / peak_gflops * 100) if peak_gflops else "")


def c_rows(results: Dict[str, Any]) -> List[List[str]]:
    rows = []
    peak = fma_peak(results).get("gflops")
    for model, entry in results["models"].items():
        records = entry["runtimes"]
        record, kernel = records["c"], records["numba"].get("kernel_us")
        if record.get("status") != "ok":
            rows.append([model, record.get("status", "not run").split(":")[0]] + [""] * 11)
            continue
        single, predict, r = record["single_us"], record.get("predict_us"), record["ratios"]
        batch = record["batch"][str(max(results["batch_sizes"]))]
        threaded = record.get("batch_threads", {}).get(str(max(results["batch_sizes"])))
        rows.append([model, fmt_spread(single, single["median"]), fmt_ratio(r.get("single_vs_onnxruntime")),
                     fmt_spread(predict, predict["median"]) if predict else "",
                     fmt_ratio(r.get("predict_vs_onnxruntime")),
                     fmt_number(kernel["median"]) if kernel else "",
                     fmt_ratio(round_ratio(single["round_medians"], kernel["round_medians"])) if kernel else "",
                     fmt_spread(batch, batch["obs_per_s"]),
                     products_rate(batch["obs_per_s"], entry["flops_per_obs"], peak),
                     fmt_ratio(r.get("b{}_vs_onnxruntime".format(max(results["batch_sizes"])))),
                     fmt_ratio(r.get("b{}_vs_onnxruntime_one_thread".format(max(results["batch_sizes"])))),
                     fmt_spread(threaded, threaded["obs_per_s"]) if threaded else "",
                     fmt_ratio(r.get("b{}_threads_vs_onnxruntime".format(max(results["batch_sizes"])))),
                     ])
    return rows


def c_section(results: Dict[str, Any]) -> List[str]:
    """The C runtime's single-observation figures side by side with the numba kernel's, and how it was built."""
    largest = max(results["batch_sizes"])
    lines = table(["model", "workspace run µs", "× ORT", "sbif_predict µs", "× ORT", "numba kernel µs",
                   "run ÷ kernel", "b{} obs/s (1 thread)".format(largest), "GFLOP/s (of FMA peak)", "× ORT",
                   "× ORT 1 thread",
                   "b{} obs/s ({} threads)".format(largest, results.get("c_build", {}).get("threads") or "no"),
                   "× ORT"], c_rows(results), "lrrrrrrrrrrrr")
    build = results.get("c_build", {})
    lines += ["", "Timed inside the driver (`benchmarks/sbif_bench.c`) with the harness's method: a workspace run of "
              "the deterministic action on one observation (the LSTM's state carried), sbif_predict on the same "
              "observation, and workspace runs of each batch, in one thread and split between one thread per CPU "
              "(sbif_workspace_set_threads); × ORT as above (1 thread for single observations, default threads "
              "for batches); × ORT 1 thread: against onnxruntime's batch in one intra-op thread, core for core. "
              "GFLOP/s: the one-thread batch's products (FLOPs/obs below) per second, and their share of this "
              "core's FMA peak; the C batch target's \"FMA peak\" is the ratio that peak would give, the most one "
              "thread can reach on this host."]
    if "error" in build:
        return lines + ["", "Not built: " + build["error"]]
    lines += ["", "Built with {}{}:".format(build["compiler"], "" if build["predict"] else
                                             " (the library has no sbif_predict)"), ""]
    lines += ["- `make -C runtimes/c {}`: ".format(build["make_target"]) +
              ", ".join("`{}`".format(command) for command in build["library_commands"])]
    return lines + ["- the driver: `{}`".format(build["driver_command"])]


def render(results: Dict[str, Any]) -> str:
    machine, settings = results["machine"], results["settings"]
    l2_bytes = machine["host"]["l2_per_core_bytes"]
    sizes = results["batch_sizes"]
    lines = ["# SBIF benchmark: SB2 vs SBIF (NumPy, numba, C), onnxruntime and torch", ""]
    if results["quick"]:
        lines += ["**Quick run (`--quick`): one round and few repetitions — a smoke test, not numbers to quote.**",
                  ""]
    peak = fma_peak(results)
    fma = " · 1-core float32 FMA peak {:.0f} GFLOP/s{}".format(
        peak["gflops"], " at {:.2f} GHz".format(peak["clock_ghz"]) if "clock_ghz" in peak else "") \
        if "gflops" in peak else ""
    lines += ["{} · {} · 1-core float32 GEMM {:.0f} GFLOP/s{} · load average {:.2f} before".format(
        results["created"], host_summary(machine["host"]), machine["peak_gflops_1_core"], fma,
        results["load_average_before"]), ""]
    lines += ["Per runtime and model: {} single-observation calls and batches for ≥ {:g} s per size, in {} "
              "interleaved round(s); {} cold start(s). Method and how to read this: `benchmarks/README.md`.".format(
                  settings["single_calls"], settings["batch_seconds"] * settings["rounds"], settings["rounds"],
                  settings["cold_runs"]), ""]
    lines += target_section("Targets (issue #7)", TARGETS, results["targets"], list(results["models"]),
                            "SBIF's ratios are its faster backend's (named).")
    lines += [""] + target_section(
        "Targets (issue #22: kernels sized by the host, the C runtime)", HOST_TARGETS, results["host_targets"],
        list(results["models"]), "SBIF C single observation: through sbif_predict where the library has it (what a "
        "deployer calls), else a workspace run; the workspace run is held against the numba kernel. A core's L2 "
        "here: {}.".format(size_text(l2_bytes) if l2_bytes else "unknown"))
    floors = results["machine"].get("cold_floors_s")
    if floors:
        lines += ["", "Cold-start floors measured in this run (a fresh process that only imports the module, same "
                  "timing): " + ", ".join("`import {}` {} s".format(module, fmt_number(seconds))
                                          for module, seconds in floors.items()) + "."]
    lines += ["", "## Medians and ratios", ""]
    header = ["model", "runtime", "1-obs µs", "× SB2", "× ORT"]
    for size in sizes:
        header += ["b{} obs/s".format(size), "× SB2", "× ORT"]
    header += ["cold start s", "× SB2", "peak MiB", "agreement with SB2"]
    notes: List[str] = []
    lines += table(header, result_rows(results, notes), "ll" + "rrr" * (1 + len(sizes)) + "rrrl")
    lines += ["", "× = how many times faster than SB2's `predict` / than onnxruntime (1 intra-op thread for single "
              "observations, default threads for batches), median of per-round ratios; SBIF C's figures are "
              "workspace runs timed inside its driver (sbif_predict's: below); ±: half the interquartile "
              "range. Agreement: discrete action differences (near-ties excluded) and the worst float difference "
              "as a fraction of what float32 rounding allows there (SPEC §6: 8 error scales; must be ≤ 1)."]
    if notes:
        lines += [""] + ["- " + note for note in notes]
    lines += ["", "## The C runtime", ""] + c_section(results)
    lines += ["", "## FLOP-bound and read-bound limits", ""]
    lines += table(["model", "FLOPs/obs", "FLOP-bound µs (1 core)", "weights KiB", "read-bound µs",
                    "numba kernel µs", "÷ FLOP-bound", "÷ read-bound"], flop_rows(results), "lrrrrrrr")
    lines += ["", "FLOPs: 2 × multiply-adds of the deterministic action path (linear, matmul, conv2d; element-wise "
              "work excluded). FLOP-bound µs = FLOPs ÷ the single-core rate of a 2048×2048 float32 `np.matmul` "
              "with one OpenBLAS thread. numba kernel: the compiled code alone on one observation (feed-forward: the "
              "single-observation path's one call; LSTM: `executor.run(feeds, [action, state])` with the inputs "
              "prepared once). Read-bound µs: the time to read as many bytes as the weights the kernel's program "
              "reads (one contiguous float32 array summed by a vectorised numba loop, timed as the kernel): one "
              "observation uses each weight once, so a net whose weights do not fit a core's L2 cache "
              "is bound by this, not by FLOPs.",
              ""]
    lines += ["## Versions", ""] + ["- {}: {}".format(RUNTIME_LABELS[r], v) for r, v in machine["versions"].items()]
    openblas = ", ".join("{}={}".format(k, v) for k, v in sorted(machine["openblas_env"].items())) or "none set"
    lines += ["- Python {} (coordinator), {}; OpenBLAS environment: {}".format(
        machine["python"], machine["platform"], openblas), ""]
    return "\n".join(lines)


# -- the project README's table ----------------------------------------------------------------------------------------
def readme_section(results: Dict[str, Any]) -> str:
    """The project README's speed table from a full run's results, with the host it came from: computed from
    results/latest.json (`python benchmarks/report.py`), never copied by hand."""
    cells = []
    through_predict = any("predict_us" in entry["runtimes"]["c"] for entry in results["models"].values())
    for entry in results["models"].values():
        records = entry["runtimes"]
        numba, c = records["numba"], records["c"]
        c_single = c.get("predict_us") or c.get("single_us")
        cold = records["numpy"].get("cold") and " / ".join(
            fmt_number(records[r]["cold"]["wall_s"]["median"]) for r in ("numpy", "numba", "sb2")) + " s"
        cells.append([entry["title"], fmt_number(records["sb2"]["single_us"]["median"]) + " µs",
                      fmt_number(numba["single_us"]["median"]) + " µs", fmt_ratio(numba["ratios"]["single_vs_sb2"]),
                      fmt_ratio(numba["ratios"]["single_vs_onnxruntime"]),
                      fmt_number(c_single["median"]) + " µs" if c_single else "n/a",
                      fmt_ratio(c.get("ratios", {}).get("predict_vs_onnxruntime" if "predict_us" in c else
                                                        "single_vs_onnxruntime")),
                      fmt_ratio(numba["ratios"]["b4096_vs_sb2"]), fmt_ratio(numba["ratios"]["b4096_vs_onnxruntime"]),
                      fmt_ratio(c.get("ratios", {}).get("b4096_vs_onnxruntime")),
                      fmt_ratio(c.get("ratios", {}).get("b4096_threads_vs_onnxruntime")), cold or ""])
    machine = results["machine"]
    lines = ["Medians of {} interleaved rounds on {}; 1-core float32 GEMM {:.0f} GFLOP/s, load average {:.2f} before "
             "the run, `import numpy` {} s (results/latest.md, {}); \"×\" is how many times faster, as a median of "
             "per-round ratios:".format(results["settings"]["rounds"], host_summary(machine["host"]),
                                        machine["peak_gflops_1_core"], results["load_average_before"],
                                        fmt_number(machine["cold_floors_s"]["numpy"]), results["created"][:10]), ""]
    header = ["model", "SB2 `predict`, 1 obs", "SBIF numba, 1 obs", "× SB2", "× onnxruntime (1 thread)",
              "SBIF C {}, 1 obs".format("`sbif_predict`" if through_predict else "workspace run"),
              "× onnxruntime (1 thread)", "batch 4096: numba × SB2", "× onnxruntime",
              "C (1 thread) × onnxruntime", "C ({} threads) × onnxruntime".format(
                  results.get("c_build", {}).get("threads") or "no"), "cold start: SBIF numpy / numba / SB2"]
    return "\n".join(lines + table(header, cells, "l" + "r" * 10 + "l")) + "\n"


if __name__ == "__main__":
    import argparse
    import json
    import os

    parser = argparse.ArgumentParser(description="Print the project README's speed table from a run's results.")
    parser.add_argument("results", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                   "results", "latest.json"))
    arguments = parser.parse_args()
    with open(arguments.results) as handle:
        print(readme_section(json.load(handle)), end="")
