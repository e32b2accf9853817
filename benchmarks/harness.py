"""What both sides of the benchmark share (Python 3.7 + numpy 1.18 and the modern environment): the timing
loops, the agreement check against SB2's reference outputs, peak memory, and the worker protocol.

A worker is one process per runtime, so that thread pools (OpenBLAS, onnxruntime, OpenMP, TensorFlow) never
compete inside a process. It reads one JSON request per line on stdin, `{"op": NAME, ...arguments}`, calls
`runtime.NAME(**arguments)` and answers one line: `{"ok": result}`, `{"na": reason}` when the runtime cannot
run this model here (a missing extra, an unsupported op), or `{"error": message}`.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from typing import Any, Dict, List, Tuple

import numpy as np

from catalog import model_file

#: a single-observation call is timed in blocks of back-to-back calls lasting at least this long
BLOCK_SECONDS = 20e-6
MAX_BLOCK_CALLS = 16
#: a batch size's calls per round stop here even when the time budget is not spent (small, fast batches)
MAX_BATCH_CALLS = 500


class Unavailable(Exception):
    """This runtime cannot run this model here; the message says why (shown as "n/a: <message>")."""


# -- timing ----------------------------------------------------------------------------------------------------------
def time_single(call, calls: int, warmup: int) -> list:
    """Per-call latency in µs: after `warmup` calls, at least `calls` calls in blocks of k back-to-back calls
    (k such that a block lasts >= 20 µs, at most 16), one sample per block (the block's mean), GC disabled.

    Blocks keep the timer's own cost (~0.04 µs) out of 1 µs calls; slow calls (k = 1) are timed one by one.
    """
    clock = time.perf_counter
    for _ in range(warmup):
        call()
    started = clock()
    for _ in range(8):
        call()
    per_call = (clock() - started) / 8
    block = max(1, min(MAX_BLOCK_CALLS, int(BLOCK_SECONDS / max(per_call, 1e-9))))
    samples = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(max(1, -(-calls // block))):
            started = clock()
            for _ in range(block):
                call()
            samples.append((clock() - started) / block * 1e6)
    finally:
        if enabled:
            gc.enable()
    return samples


def time_batch(call, budget_seconds: float, min_calls: int, max_calls: int = MAX_BATCH_CALLS) -> list:
    """Seconds per call: one warm-up call, then calls until `budget_seconds` are spent (at least `min_calls`)."""
    clock = time.perf_counter
    call()
    samples = []
    spent = 0.0
    while len(samples) < max_calls and (len(samples) < min_calls or spent < budget_seconds):
        started = clock()
        call()
        samples.append(clock() - started)
        spent += samples[-1]
    return samples


def observations(model: str, rows: int) -> np.ndarray:
    """The first `rows` benchmark observations, in memory (the file is mapped read-only)."""
    return np.array(np.load(model_file(model, "observations.npy"), mmap_mode="r")[:rows])


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM), in KiB. Unlike getrusage's ru_maxrss it starts afresh at exec,
    so a child spawned by a large parent does not report the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def report_first_action() -> None:
    """A cold-start child's last word: the monotonic time of its first action (CLOCK_MONOTONIC is system-wide,
    so the parent subtracts its own spawn time) and its peak memory, as one JSON line on stdout."""
    print(json.dumps({"first_action": time.monotonic(), "peak_rss_kib": peak_rss_kib()}), flush=True)


# -- agreement with SB2 ------------------------------------------------------------------------------------------------
#: reference.npz entries that are inputs, not outputs to compare
REFERENCE_INPUTS = ("obs", "mask")
#: distributions whose deterministic action is a discrete choice (compared row by row, near-ties excepted)
DISCRETE_DISTRIBUTIONS = ("categorical", "multi_categorical", "bernoulli")


def agreement(model: str, reference: dict, actual: dict) -> dict:
    """How a runtime's outputs agree with SB2's recorded ones in `reference` (spec/SPEC.md section 6, through
    `sbif.compare`): discrete actions as the count of rows that differ outside a near-tie, every float output
    (continuous actions, logits, Q-values, LSTM states) as its worst |SB2 - runtime| / (8 error scales), so <= 1
    agrees. The scales are the NumPy reference's, on the model's recorded inputs (`reference_scales`). An output
    SB2 recorded that the runtime did not return is an error (inf)."""
    from sbif.compare import discrete_disagreements
    from sbif.runtime.error_scales import decision_scores
    from sbif.format import SbifFile
    from sbif.runtime.error_scales import result_agreement

    sbif_file = SbifFile.read(model_file(model, "model.sbif"))
    predict = sbif_file.document["predict"]
    distribution = predict.get("distribution")
    discrete = distribution is not None and distribution["kind"] in DISCRETE_DISTRIBUTIONS
    outputs = {key: graph_output(predict, key) for key in reference if key not in REFERENCE_INPUTS}
    wanted = sorted(set(outputs.values()) | (set(distribution["parameters"].values()) if discrete else set()))
    values, scales = reference_scales(sbif_file, dict(np.load(model_file(model, "reference.npz"))), wanted)
    report = {}
    for key, name in outputs.items():
        if key not in actual:
            report["missing " + key] = float("inf")
        elif key == "action" and discrete:
            scores, score_scales = decision_scores(distribution, values, scales)
            report["action_mismatches"] = discrete_disagreements(reference[key], actual[key], scores, score_scales)
        else:
            report[key] = result_agreement(reference[key], actual[key], scales[name])
    return report


def graph_output(predict: dict, key: str) -> str:
    """The graph output a reference.npz entry records: `action` the deterministic action, `state` the recurrent
    state, the others (logits, q_values) under their own names."""
    if key == "action":
        return predict["deterministic_action"]
    if key == "state":
        return predict["recurrent"]["state_output"]
    return key


def reference_scales(sbif_file: Any, recorded: Dict[str, np.ndarray],
                     outputs: List[str]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """The NumPy reference's values and error scales of `outputs` on the recorded inputs: the whole batch at once,
    or a recurrent rollout step by step, each step from SB2's recorded state (the state input at step t is SB2's
    output at t - 1, zeros at the start; the mask resets inside the graph). A runtime that carries its own state
    is held to one step's scales, though it also carries the rounding of earlier steps: stricter than the rule."""
    from sbif.runtime.error_scales import ErrorScales

    reference = ErrorScales(sbif_file)
    recurrent = sbif_file.document["predict"].get("recurrent")
    if recurrent is None:
        return reference.run({"obs": recorded["obs"]}, outputs)
    state = np.zeros((1,) + recorded["state"].shape[1:], np.float32)
    values: Dict[str, List[np.ndarray]] = {name: [] for name in outputs}
    scales: Dict[str, List[np.ndarray]] = {name: [] for name in outputs}
    for t, (obs, mask) in enumerate(zip(recorded["obs"], recorded["mask"])):
        if t:
            state = recorded["state"][t - 1][None]
        step_values, step_scales = reference.run({"obs": obs[None], recurrent["state_input"]: state,
                                                  recurrent["mask_input"]: np.array([mask], np.float32)}, outputs)
        for name in outputs:
            values[name].append(step_values[name])
            scales[name].append(step_scales[name])
    return ({name: np.concatenate(parts) for name, parts in values.items()},
            {name: np.concatenate(parts) for name, parts in scales.items()})


def agrees(report: dict) -> bool:
    """SPEC section 6 holds: no discrete action differs outside a near-tie, every float ratio <= 1 (NaN fails)."""
    return all(value == 0 if key == "action_mismatches" else value <= 1.0 for key, value in report.items())


# -- the worker protocol -----------------------------------------------------------------------------------------------
def serve(runtime) -> None:
    """Answer requests on stdin until EOF or {"op": "quit"}. Anything the runtime's libraries print goes to
    stderr: the protocol keeps the real stdout to itself."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        try:
            answer = {"ok": getattr(runtime, op)(**request)}
        except Unavailable as exc:
            answer = {"na": str(exc)}
        except Exception as exc:  # reported to the coordinator, which fails loudly
            answer = {"error": "{}: {}".format(type(exc).__name__, exc), "traceback": traceback.format_exc()}
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()
