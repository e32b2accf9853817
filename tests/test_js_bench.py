"""The JavaScript runtime's benchmark against onnxruntime-web (benchmarks/js_bench.py, benchmarks/js/bench.mjs): a
quick run of the whole pipeline on two small benchmark models, and the agreement check it times only after. No speed
is asserted: the numbers depend on the machine."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCHMARKS)

import js_bench  # noqa: E402
from catalog import model_file  # noqa: E402
from harness import agrees  # noqa: E402

#: a discrete and a continuous policy, both small
MODELS = ("ppo2_mlp", "td3_400_300")


def missing_prerequisite():
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not os.path.isdir(os.path.join(js_bench.BENCH_DIR, "node_modules", "onnxruntime-web")):
        return "onnxruntime-web is not installed (npm ci --prefix benchmarks/js)"
    for model in MODELS:
        if not os.path.exists(model_file(model, "reference.npz")):
            return "the benchmark's models are not built (SB2 makes them: .venv-sb2/bin/python benchmarks/make_models.py)"
    return None


MISSING = missing_prerequisite()
# javascript: the benchmark runs Node, and converts to ONNX (the modern environment's), so it runs there only
pytestmark = [pytest.mark.javascript, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]


def test_a_quick_run_checks_both_runtimes_against_sb2_then_times_them(tmp_path):
    finished = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "js_bench.py"), "--quick", "--reuse-models",
         "--models", ",".join(MODELS), "--out", str(tmp_path), "--work", str(tmp_path / "work")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    results = json.loads((tmp_path / "js-latest.json").read_text())
    for model in MODELS:
        reports = results["models"][model]["agreement"]
        assert set(reports) == {"js", "ort"}
        # a discrete action is checked row by row, a continuous one by its worst ratio to the error scales
        checked = "action_mismatches" if model == "ppo2_mlp" else "action"
        for runtime, report in reports.items():
            assert list(report) == [checked] and agrees(report), (runtime, report)
    timed = results["timings"]["1"]
    assert timed["ort_threads"] == 1
    for model in MODELS:
        for measure in ("single", "batch"):
            summary = timed["models"][model][measure]
            assert summary["js_us"] > 0 and summary["ort_us"] > 0
            assert summary["speed_ratio"] == pytest.approx(summary["ort_us"] / summary["js_us"])
    table = (tmp_path / "js-latest.md").read_text()
    assert table == finished.stdout
    assert "| PPO2 MlpPolicy 64×64 |" in table and "| TD3 400×300 |" in table


def test_actions_that_differ_from_sb2s_fail_the_check():
    reference = np.load(model_file("ppo2_mlp", "reference.npz"))
    assert js_bench.agreement_of("ppo2_mlp", {"action": reference["action"].tolist()})["action_mismatches"] == 0
    flipped = (1 - reference["action"]).tolist()  # Discrete(2): every action the other one
    assert js_bench.agreement_of("ppo2_mlp", {"action": flipped})["action_mismatches"] > 0
    actions = np.load(model_file("td3_400_300", "reference.npz"))["action"]
    assert js_bench.agreement_of("td3_400_300", {"action": (actions * 1.01).tolist()})["action"] > 1.0
