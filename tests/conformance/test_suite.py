"""The NumPy runtime passes the suite (TF-free: against itself as a process, and against the shipped golden
packs recorded from SB2 and SB3); the runner, the report, known failures, case files and the CLI behave as
documented."""
import importlib.util
import json
import os
import subprocess
import sys

from conformance.checks import CHECKS, Config
from conformance.golden import GoldenPack, GoldenSource, find_packs
from conformance.mutants import MUTANTS
from conformance.protocol import PythonRuntime
from conformance.runner import KnownFailures, OracleSource, run_suite, selected

from .conftest import GOLDEN, KNOWN_FAILURES, NUMPY_RUNTIME, ROOT

SMALL = Config(batches=[1, 7], envs=[2], steps=4)


def assert_passes(report):
    bad = [r.as_dict() for r in report.results if r.status not in ("pass", "skip", "known_failure")]
    assert not bad, report.render()


def test_numpy_process_passes_on_every_family(numpy_process, reference, example_models):
    """The protocol process against the in-process reference: every check, every family SBIF builds."""
    report = run_suite([OracleSource(sorted(example_models.values()), reference)], numpy_process, config=SMALL)
    assert_passes(report)
    passed = {(r.model.split("-")[0], r.check) for r in report.results if r.status == "pass"}
    assert ("lstm", "recurrent_sequence") in passed and ("mlp", "predict_api") in passed
    assert {r.check for r in report.results if r.status == "pass"} == set(CHECKS)


def test_shipped_golden_packs_are_current():
    """Every pack matches its model, and was recorded by the framework its name says: SB3 (and sb3-contrib) for the
    `sb3_` ones, SB2 for the others."""
    packs = find_packs([GOLDEN])
    assert len(packs) >= 34 + 17
    for path in packs:
        pack = GoldenPack(path)
        assert pack.stale() is None, path
        sb3 = os.path.basename(path).startswith("sb3_")
        oracle = "stable-baselines3 2.9.2" if sb3 else "stable-baselines 2.10.2"
        assert pack.manifest["recorded_by"]["oracle"].startswith(oracle), path
        assert ("sb3-contrib 2.9.2" in pack.manifest["recorded_by"]["oracle_language"]) == sb3, path


def test_shipped_golden_packs_are_the_regenerated_ones():
    """Each preset of conformance/golden/regenerate.py has its model and pack in the directory, and nothing else is
    shipped there: a preset added without recording, or a pack left behind by a removed one, fails here."""
    spec = importlib.util.spec_from_file_location("regenerate", os.path.join(GOLDEN, "regenerate.py"))
    regenerate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regenerate)
    presets = set(regenerate.presets())
    assert {"ppo2_cnn_uint8_discrete", "acer_cnnlnlstm_uint8_discrete", "dqn_cnn_dueling_uint8", "her_sac_goals",
            "gail_mlp_box", "ppo2_mlp_vecnormalize", "a2c_mlp_zoo_framestack"} <= presets
    assert {name.split("_")[1] for name in presets if name.startswith("zoo_")} == {
        "a2c", "acer", "acktr", "ddpg", "dqn", "her", "ppo2", "sac", "td3", "trpo"}
    for suffix in (".golden", ".sbif"):
        shipped = {name[:-len(suffix)] for name in os.listdir(GOLDEN) if name.endswith(suffix)}
        assert shipped == presets, suffix


def test_numpy_runtime_passes_the_golden_packs(reference):
    """SB2's recorded answers, with no TensorFlow here; the known failures (a TF layer_norm edge) must still fail."""
    report = run_suite([GoldenSource([GOLDEN])], reference, known=KnownFailures.read(KNOWN_FAILURES))
    assert report.ok, report.render()
    counts = report.counts()
    assert counts["pass"] >= 130 and counts["fail"] == 0 and counts["fixed"] == 0
    recorded = {r.check for r in report.results if r.status == "pass"}
    assert recorded == set(CHECKS)


def test_known_failures_must_keep_failing(reference, example_models):
    known = KnownFailures(["mlp-*::deterministic", "*::op_vectors"])
    report = run_suite([OracleSource([example_models["mlp"]], reference)], reference,
                       checks=["deterministic", "op_vectors"], config=SMALL, known=known)
    statuses = {r.check: r.status for r in report.results}
    assert statuses == {"deterministic": "fixed", "op_vectors": "fixed"} and not report.ok
    report = run_suite([OracleSource([example_models["mlp"]], reference)], MUTANTS["tanh_float16"].runtime(),
                       checks=["deterministic"], config=SMALL, known=KnownFailures(["mlp-*::deterministic"]))
    assert [r.status for r in report.results] == ["known_failure"] and report.ok


def test_selection():
    assert selected("m.sbif::sampling", ["sampl"], [])
    assert not selected("m.sbif::sampling", ["determ"], [])
    assert selected("m.sbif::sampling", ["m.sbif::*"], [])
    assert not selected("m.sbif::sampling", [], ["*::sampling"])


def test_failures_are_located_and_replayable(tmp_path, reference, example_models):
    mutant = MUTANTS["no_action_clip"].runtime()
    path = example_models["vecnormalize"]  # Box actions in [-1, 1]
    report = run_suite([OracleSource([path], reference)], mutant, checks=["deterministic"], config=SMALL,
                       cases_dir=str(tmp_path))
    [result] = report.results
    assert result.status == "fail" and result.worst["output"] == "action" and result.worst["where"].startswith("[")
    assert "FAIL" in report.render() and "replay" in report.render()
    from conformance.cases import read_case, replay

    case = read_case(result.case_file)
    assert case["check"] == "deterministic" and case["model"]["bytes_base64"]
    assert not replay(case, mutant).ok
    assert replay(case, reference).ok


def test_an_erroring_runtime_fails_and_says_so(reference, example_models):
    class Broken(PythonRuntime):
        def _run(self, request):
            raise RuntimeError("kernel exploded")

    report = run_suite([OracleSource([example_models["mlp"]], reference)], Broken(), checks=["deterministic"],
                       config=SMALL)
    [result] = report.results
    assert result.status == "fail" and result.worst["kind"] == "errored" and "exploded" in result.worst["detail"]


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sbif", "conformance"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)


def test_cli_run_golden_json_and_exit_codes(tmp_path):
    done = cli("run", "--golden", GOLDEN, "--json", "-k", "demo", "--checks", "deterministic", "sampling")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and {r["check"] for r in report["results"]} == {"deterministic", "sampling"}
    assert all(r["model"].startswith("demo") for r in report["results"])
    known = tmp_path / "known.txt"
    known.write_text("demo_ppo2_cartpole.sbif::deterministic  # pretend this was broken\n")
    done = cli("run", "--golden", GOLDEN, "-k", "demo", "--checks", "deterministic", "--known-failures", str(known))
    assert done.returncode == 1 and "FIXED" in done.stdout and "known failure" in done.stdout
    done = cli("run", "--golden", GOLDEN, "--runtime", " ".join(NUMPY_RUNTIME + ["--mutant", "gumbel_sign_flip"]),
               "-k", "ppo2_mlp_box", "--checks", "sampling", "--cases", str(tmp_path / "cases"))
    assert done.returncode == 1 and "FAIL" in done.stdout and "action_sample" in done.stdout
    [case] = os.listdir(str(tmp_path / "cases"))
    replayed = cli("replay", str(tmp_path / "cases" / case))
    assert replayed.returncode == 0 and "passes now" in replayed.stdout
    replayed = cli("replay", str(tmp_path / "cases" / case), "--runtime",
                   " ".join(NUMPY_RUNTIME + ["--mutant", "gumbel_sign_flip"]))
    assert replayed.returncode == 1 and "still fails" in replayed.stdout
    empty = tmp_path / "no-packs"
    empty.mkdir()
    assert cli("run", "--golden", str(empty)).returncode == 1  # a directory without packs is an error


def test_cli_run_models_against_the_reference(example_models):
    done = cli("run", "--models", example_models["lstm"], "--runtime", " ".join(NUMPY_RUNTIME),
               "--batches", "1", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recurrent_sequence  pass" in done.stdout and "op_vectors" in done.stdout


def test_cli_lists():
    assert "recurrent_sequence" in cli("checks").stdout
    listed = cli("mutants", "--list").stdout
    assert all(name in listed for name in MUTANTS)
