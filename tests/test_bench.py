"""The benchmark's host probing (benchmarks/host.py) and its targets (benchmarks/report.py), on made-up machines and
made-up measurements: what `make bench` records and judges, without running it."""
import json
import os
import re
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import c_runtime  # noqa: E402
import host  # noqa: E402
import report  # noqa: E402
from sbif.format import SbifFile  # noqa: E402
from sbif.runtime.error_scales import ErrorScales, result_agreement  # noqa: E402
from tests.factories import write_sbif  # noqa: E402

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile

processor\t: 1
model name\t: some other name
flags\t\t: fpu
"""
ZEN3_FLAGS = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2"
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve sve2
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""


# -- host probing ------------------------------------------------------------------------------------------------------
def test_the_cpu_and_its_kernel_extensions_come_from_the_first_processor_in_a_fixed_order():
    assert host.cpu_model(X86_CPUINFO) == "Intel(R) Xeon(R) Platinum 8480+"
    assert host.kernel_extensions(host.cpu_flags(X86_CPUINFO)) == [
        "SSE4.2", "AVX", "AVX2", "FMA", "AVX-512F", "AVX-512BW", "AVX-512VL", "AVX-512VNNI", "AVX-512BF16", "AMX"]
    assert host.kernel_extensions(ZEN3_FLAGS.split()) == ["SSE4.2", "AVX", "AVX2", "FMA"]


def test_arm_names_its_vector_extensions_and_its_part():
    assert host.cpu_model(ARM_CPUINFO) == "ARM implementer 0x41 part 0xd4f"
    assert host.kernel_extensions(host.cpu_flags(ARM_CPUINFO)) == ["NEON", "SVE", "SVE2"]
    assert host.kernel_extensions(["half", "thumb", "neon", "vfpv4"]) == ["NEON"]  # 32-bit ARM's name for it


def write_cache(cpu_dir, index, level, kind, size, shared):
    directory = cpu_dir / "cache" / "index{}".format(index)
    directory.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
        (directory / name).write_text(str(value) + "\n")


def fake_sysfs(root, cores, threads_per_core, l2_shared):
    """A sysfs cpu directory: `cores` cores of `threads_per_core` SMT threads (CPU n is core n % cores), 48K L1d,
    a 2048K L2 shared by `l2_shared` and a 32M L3 shared by all."""
    cpus = cores * threads_per_core
    for cpu in range(cpus):
        topology = root / "cpu{}".format(cpu) / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text("{}\n".format(cpu % cores))
        (topology / "thread_siblings_list").write_text(
            ",".join(str(c) for c in range(cpus) if c % cores == cpu % cores) + "\n")
    cpu0 = root / "cpu0"
    write_cache(cpu0, 0, 1, "Data", "48K", ",".join(str(c) for c in range(0, cpus, cores)))
    write_cache(cpu0, 2, 2, "Unified", "2048K", l2_shared)
    write_cache(cpu0, 3, 3, "Unified", "32M", "0-{}".format(cpus - 1))
    write_cache(cpu0, 4, 4, "Unified", "unknown", "0")  # a size sysfs does not give: left out
    (root / "cpufreq").mkdir()  # not a CPU
    return root


def test_caches_say_whether_a_core_has_its_own_and_smt_threads_count_as_one_core(tmp_path):
    root = fake_sysfs(tmp_path, cores=4, threads_per_core=2, l2_shared="0,4")
    found = host.caches(str(root / "cpu0"))
    assert [(c["name"], c["bytes"], c["cpus_sharing"], c["per_core"]) for c in found] == [
        ("L1d", 48 << 10, 2, True), ("L2", 2 << 20, 2, True), ("L3", 32 << 20, 8, False)]
    assert host.l2_per_core_bytes(found) == 2 << 20
    assert host.core_count(str(root)) == 4
    assert "L2 2 MiB per core, L3 32 MiB shared by 8 CPUs" in host.summary(
        dict(host.describe(str(tmp_path / "no-cpuinfo"), str(root)), cpu="x"))


def test_an_l2_shared_by_a_cluster_gives_each_core_its_share(tmp_path):
    root = fake_sysfs(tmp_path, cores=4, threads_per_core=1, l2_shared="0-3")
    found = host.caches(str(root / "cpu0"))
    assert found[1]["per_core"] is False
    assert host.l2_per_core_bytes(found) == (2 << 20) // 4


def test_a_machine_without_proc_or_sysfs_is_described_quietly(tmp_path):
    described = host.describe(str(tmp_path / "cpuinfo"), str(tmp_path / "cpu"))
    assert described["caches"] == [] and described["isa_extensions"] == []
    assert described["cores"] is None and described["l2_per_core_bytes"] is None
    assert described["cpu"]  # platform's answer, or "unknown"
    line = host.summary(described)
    assert "ISA extensions unknown" in line and "cache sizes unknown" in line


def test_cpu_lists():
    assert host.parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}


def test_this_process_names_the_blas_numpy_loaded():
    np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)
    text = host.blas_text(host.blas_libraries())
    assert text != "unknown"
    assert host.blas_text([{"library": "openblas", "version": "0.3.31", "architecture": "Haswell"}]) == \
        "OpenBLAS 0.3.31 Haswell"
    assert host.blas_text([]) == "unknown"


# -- the C driver's output ---------------------------------------------------------------------------------------------
def test_the_drivers_values_are_read_exactly_and_a_short_line_is_an_error():
    found = c_runtime.parse_values("action int64 2 1 0\nlogits float32 2 0.100000001 -3.40282347e+38\n"
                                   "action int64 1 1\n")
    assert [a.tolist() for a in found["action"]] == [[1, 0], [1]]
    assert found["logits"][0].dtype == np.float32
    assert found["logits"][0].tolist() == np.array([0.1, -3.4028234663852886e38], np.float32).tolist()
    with pytest.raises(RuntimeError, match="printed 1 values of 2"):
        c_runtime.parse_values("logits float32 2 0.5\n")


@pytest.mark.slow  # builds the C runtime's host-tuned library when it is not up to date
def test_the_driver_computes_the_references_outputs_and_times_what_it_is_asked(tmp_path, monkeypatch):
    for name, path in (("DRIVER_DIR", ""), ("DRIVER", "sbif-bench"), ("BUILD_RECORD", "build.json")):
        monkeypatch.setattr(c_runtime, name, str(tmp_path / path))
    build = c_runtime.build()
    assert "error" not in build, build
    model = write_sbif(tmp_path / "model.sbif", "box_image", "discrete")  # uint8 observations, a discrete action
    sbif_file = SbifFile.read(model)
    action, scores = sbif_file.document["predict"]["deterministic_action"], "logits"
    obs = np.random.default_rng(0).integers(0, 256, (8, 4, 4, 3)).astype(np.uint8)
    obs.tofile(str(tmp_path / "obs.bin"))
    printed = c_runtime.parse_values(c_runtime.drive("check", model, str(tmp_path / "obs.bin"), "-", scores))
    values, scales = ErrorScales(sbif_file).run({"obs": obs}, [action, scores])
    assert printed[action][0].tolist() == values[action].tolist()
    assert result_agreement(values[scores], printed[scores][0].reshape(8, -1), scales[scores]) <= 1
    if build["predict"]:
        assert np.concatenate(printed["predict"]).tolist() == values[action].tolist()
    timed = c_runtime.drive("single", model, str(tmp_path / "obs.bin"), "5", "1", "2e-05", "16")
    assert len(json.loads(timed)["us"]) >= 1
    timed = json.loads(c_runtime.drive("batch", model, str(tmp_path / "obs.bin"), "8", "0", "3", "500"))["s"]
    assert len(timed) == 3 and all(seconds > 0 for seconds in timed)
    with pytest.raises(RuntimeError, match="fewer observations than the batch"):
        c_runtime.drive("batch", model, str(tmp_path / "obs.bin"), "9", "0", "1", "500")
    with pytest.raises(RuntimeError, match="not whole observations"):
        (tmp_path / "short.bin").write_bytes(obs.tobytes()[:-1])
        c_runtime.drive("single", model, str(tmp_path / "short.bin"), "5", "1", "2e-05", "16")


def test_without_a_compiler_the_c_runtime_is_not_available_and_says_why(tmp_path, monkeypatch):
    for name, path in (("DRIVER_DIR", ""), ("DRIVER", "sbif-bench"), ("BUILD_RECORD", "build.json")):
        monkeypatch.setattr(c_runtime, name, str(tmp_path / path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    record = c_runtime.build()
    assert "no-such-cc" in record["error"] or "failed" in record["error"]
    assert "\n" not in record["error"]
    with pytest.raises(c_runtime.Unavailable, match=re.escape(record["error"])):
        c_runtime.CRuntime().load("ppo2_mlp")


# -- targets -----------------------------------------------------------------------------------------------------------
RUNTIMES = ("sb2", "numpy", "numba", "c", "onnxruntime", "torch")


def measured(single_us, batch_s, **extra):
    """A record as the coordinator keeps it before `summarize`: two rounds of identical samples."""
    return dict({"status": "ok", "single_us": [[single_us] * 3] * 2,
                 "batch_s": {"256": [[batch_s / 16] * 3] * 2, "4096": [[batch_s] * 3] * 2}}, **extra)


def made_up_results(kind="mlp", model="td3_400_300", l2_bytes=2 << 20, weight_bytes=512 << 10, c_predict=True,
                    c_status="ok", c_threads=True):
    """onnxruntime 10 µs / 1 s per 4096 (2 s in one thread); numba 4 µs (2.5×), 1.25 s (0.8×), kernel 2.5 µs, read-bound 2 µs
    (1.25×); C: workspace run 3 µs (1.2× the kernel), sbif_predict 5 µs (2×), 1.25 s (0.8×), split between
    threads 0.8 s (1.25×)."""
    records = {runtime: measured(50.0, 2.0) for runtime in RUNTIMES}
    records["onnxruntime"] = measured(10.0, 1.0, batch_one_thread_s={"4096": [[2.0] * 3] * 2})
    records["numba"] = measured(4.0, 1.25, kernel_us=[[2.5] * 3] * 2, weight_read_us=[[2.0] * 3] * 2,
                                weight_bytes=weight_bytes)
    records["c"] = measured(3.0, 1.25, **({"predict_us": [[5.0] * 3] * 2} if c_predict else {}))
    if c_threads:
        records["c"]["batch_threads_s"] = {"256": [[0.05] * 3] * 2, "4096": [[0.8] * 3] * 2}
    if c_status != "ok":
        records["c"] = {"status": c_status}
    results = {"models": {model: {"title": model, "kind": kind, "flops_per_obs": 1000, "flop_bound_us": 1.0,
                                  "runtimes": records}},
               "machine": {"host": {"l2_per_core_bytes": l2_bytes}}, "batch_sizes": [256, 4096]}
    report.summarize(results)
    return results


def judged(results):
    return {check["target"]: check for check in report.evaluate_host_targets(results)}


def test_issue_22s_targets_are_judged_from_the_ratios_of_one_run():
    checks = judged(made_up_results())
    assert checks["numba_b4096"]["measured"] == pytest.approx(0.8) and checks["numba_b4096"]["pass"] is False
    assert checks["numba_single"]["measured"] == pytest.approx(2.5) and checks["numba_single"]["pass"] is True
    assert checks["read_bound"]["measured"] == pytest.approx(1.25) and checks["read_bound"]["pass"] is True
    assert checks["c_single"]["measured"] == pytest.approx(2.0) and "sbif_predict" in checks["c_single"]["shown"]
    assert checks["c_vs_kernel"]["measured"] == pytest.approx(1.2) and checks["c_vs_kernel"]["pass"] is True
    assert checks["c_b4096"]["measured"] == pytest.approx(0.8) and checks["c_b4096"]["pass"] is True
    c_ratios = made_up_results()["models"]["td3_400_300"]["runtimes"]["c"]["ratios"]
    assert c_ratios["b4096_vs_onnxruntime_one_thread"] == pytest.approx(1.6)  # core for core: 2 s against 1.25 s
    assert checks["c_b4096_threads"]["measured"] == pytest.approx(1.25) and checks["c_b4096_threads"]["pass"] is True
    assert checks["agreement"]["pass"] is True


def test_a_c_library_without_threads_has_its_threaded_target_unjudged():
    check = judged(made_up_results(c_threads=False))["c_b4096_threads"]
    assert check["pass"] is None and check["note"] == "the C library has no threads"


def test_without_sbif_predict_the_c_target_takes_the_workspace_run():
    check = judged(made_up_results(c_predict=False))["c_single"]
    assert check["measured"] == pytest.approx(10 / 3) and "workspace run" in check["shown"]


def test_the_read_bound_is_judged_only_where_the_weights_fit_a_cores_l2():
    too_big = judged(made_up_results(l2_bytes=256 << 10))["read_bound"]
    assert too_big["pass"] is None and "do not fit a core's L2 (256 KiB)" in too_big["note"]
    unknown = judged(made_up_results(l2_bytes=None))["read_bound"]
    assert unknown["pass"] is None and "unknown" in unknown["note"]
    slow = made_up_results()
    slow["models"]["td3_400_300"]["runtimes"]["numba"]["kernel_us"]["median"] = 2.7  # 1.35x the read-bound
    assert judged(slow)["read_bound"]["pass"] is False


def test_the_c_batch_target_shows_the_ratio_one_core_at_its_fma_peak_would_reach():
    results = made_up_results()
    assert "FMA peak" not in judged(results)["c_b4096"]["shown"]  # no peak measured: no ceiling
    # at 2.048 MFLOP/s, 1000 FLOPs per observation are 2048 obs/s; onnxruntime runs 4096 obs/s
    results["c_build"] = {"fma_peak": {"gflops": 2.048e-3}}
    check = judged(results)["c_b4096"]
    assert check["shown"] == "0.8× (FMA peak: 0.5×)" and check["pass"] is True
    results["c_build"]["fma_peak"]["gflops"] = 4.096e-3
    assert judged(results)["c_b4096"]["shown"] == "0.8× (FMA peak: 1×)"


def test_mlp_targets_skip_other_kinds_and_the_400x300_target_other_models():
    checks = judged(made_up_results(kind="cnn", model="ppo2_cnn"))
    assert set(checks) == {"numba_b4096", "c_b4096", "c_b4096_threads", "agreement"}


def test_a_c_runtime_that_could_not_run_is_not_judged_and_says_why():
    checks = judged(made_up_results(c_status="n/a: make -C runtimes/c build/libsbif-native.a failed"))
    for key in ("c_single", "c_vs_kernel", "c_b4096", "c_b4096_threads"):
        assert checks[key]["pass"] is None and checks[key]["note"].startswith("SBIF C: n/a: make")


def test_a_disagreeing_c_runtime_fails_agreement_in_both_tables():
    results = made_up_results(c_status="disagrees")
    assert judged(results)["agreement"]["pass"] is False
    assert [c["pass"] for c in report.evaluate_targets(results) if c["target"] == "agreement"] == [False]


def test_the_markdown_opens_with_the_host_and_shows_both_target_tables_and_the_c_build(tmp_path):
    results = made_up_results()
    results["machine"] = dict(results["machine"], host=dict(
        host.describe(str(tmp_path / "cpuinfo"), str(tmp_path / "cpu")), cpu="Made-up CPU", l2_per_core_bytes=2 << 20),
        peak_gflops_1_core=100.0, versions={}, openblas_env={}, python="3.11", platform="Linux")
    results.update(created="2026-01-01T00:00:00+00:00", quick=False, load_average_before=0.5,
                   settings={"single_calls": 2100, "batch_seconds": 0.4, "rounds": 7, "cold_runs": 5},
                   c_build={"compiler": "cc 12", "make_target": "build/libsbif-native.a", "predict": True,
                            "library_commands": ["cc -O3 -march=native -c sbif.c"], "driver_command": "cc -O2 x.c"})
    results["targets"] = report.evaluate_targets(results)
    results["host_targets"] = report.evaluate_host_targets(results)
    markdown = report.render(results)
    assert "· Made-up CPU (" in markdown.splitlines()[2]
    assert "## Targets (issue #22" in markdown and "A core's L2 here: 2 MiB." in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| batch 4096: SBIF numba"))
    assert "✗ 0.8×" in row
    assert "- `make -C runtimes/c build/libsbif-native.a`: `cc -O3 -march=native -c sbif.c`" in markdown
    c_row = next(line for line in markdown.splitlines() if line.startswith("| td3_400_300 |") and "1.2×" in line)
    assert "5 ±0%" in c_row  # sbif_predict's median beside the workspace run's
    assert " 1.6× |" in c_row  # against onnxruntime's one thread
    assert " 0.0033 |" in c_row  # 3277 obs/s of 1000 FLOPs, in GFLOP/s (no FMA peak measured: no share)
    results["machine"]["cold_floors_s"] = {"numpy": 0.1}
    readme = report.readme_section(results)
    assert "on Made-up CPU (" in readme and "SBIF C `sbif_predict`, 1 obs" in readme
    assert [cell.strip() for cell in readme.splitlines()[-1].split("|")[6:8]] == ["5 µs", "2×"]  # predict, ÷ ORT
