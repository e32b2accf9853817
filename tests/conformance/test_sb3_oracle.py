"""The SB3 oracle (`conformance/adapters/sb3_live.py`, `--oracle sb3-live`): the NumPy runtime passes against SB3's
own answers on every SB3 policy family, the oracle's numbers are SB3's (a runtime or a file that disagrees with
SB3 fails), every family the exporter builds has a forward in the oracle, and where SB3 cannot be imported the
checks are skipped with the reason."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from conformance.adapters.sb3_live import FAMILIES, Sb3Runtime, UnavailableOracle, sb3_oracle_or_unavailable
from conformance.checks import MODEL_CHECKS, Config
from conformance.mutants import MUTANTS
from conformance.protocol import PythonRuntime
from conformance.runner import OracleSource, run_suite

from .conftest import ROOT

pytest.importorskip("stable_baselines3")  # the modern environment's; the SB2 environment skips this file
pytest.importorskip("sb3_contrib")

SMALL = Config(batches=[1, 6], envs=[2], steps=4)
#: one model per SB3 policy family (tests/sb3_models.py's spaces, by name), with what its checks exercise: a
#: categorical and ε-greedy sampling, MultiDiscrete observations and actions, Bernoulli actions, quantiles, the
#: squashed Gaussian and its gSDE variant, CrossQ's batch renormalization, a deterministic actor, ARS, masks and
#: recurrent state in lock-step
FAMILY_MODELS = {
    "ppo_discrete": ("PPO", "MlpPolicy", "box", "discrete", {"net_arch": [8]}, {}),
    "a2c_multidiscrete": ("A2C", "MlpPolicy", "multidiscrete", "multidiscrete", {"net_arch": [6]}, {}),
    "trpo_multibinary": ("TRPO", "MlpPolicy", "box2d", "multibinary", {"net_arch": [6]}, {}),
    "dqn": ("DQN", "MlpPolicy", "box", "discrete", {"net_arch": [8]},
            {"exploration_initial_eps": 0.6, "exploration_final_eps": 0.3}),
    "qrdqn": ("QRDQN", "MlpPolicy", "multibinary", "discrete", {"net_arch": [8], "n_quantiles": 3}, {}),
    "sac": ("SAC", "MlpPolicy", "box", "box2d", {"net_arch": [8]}, {}),
    "tqc_gsde": ("TQC", "MlpPolicy", "box", "box", {"net_arch": [8]}, {"use_sde": True}),
    "crossq": ("CrossQ", "MlpPolicy", "box", "box", {"net_arch": [8]}, {}),
    "td3": ("TD3", "MlpPolicy", "box2d", "box", {"net_arch": [8]}, {}),
    "ars": ("ARS", "LinearPolicy", "box", "discrete", {}, {}),
    "maskableppo": ("MaskablePPO", "MlpPolicy", "box", "discrete", {"net_arch": [8]}, {}),
    "recurrentppo": ("RecurrentPPO", "MlpLstmPolicy", "box", "multidiscrete",
                     {"net_arch": [6], "lstm_hidden_size": 3}, {}),
}


def exported(directory, name: str, seed: int = 0) -> str:
    """The FAMILY_MODELS entry saved by SB3 in `directory` and exported there with the live loader."""
    from sbif.export import export
    from tests.conformance.sb3_pack_models import save_case

    algorithm, policy, observation, action, policy_kwargs, algorithm_kwargs = FAMILY_MODELS[name]
    source = save_case(str(directory), name, algorithm, policy, observation, action, policy_kwargs, seed,
                       **algorithm_kwargs)
    target = os.path.join(str(directory), name + ".sbif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export(source, loader="live", verify=False).file.write(target)
    return target


@pytest.fixture(scope="module")
def family_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sb3-oracle")
    return {name: exported(directory, name) for name in FAMILY_MODELS}


def test_every_family_the_exporter_builds_has_a_forward_in_the_oracle():
    from sbif.export.sb3.families import FAMILIES as BUILDERS
    from sbif.export.sb3.policy_classes import POLICY_CLASSES

    assert set(BUILDERS) <= set(FAMILIES)
    assert {known.family for known in POLICY_CLASSES.values()} <= set(FAMILIES)



def test_the_numpy_runtime_passes_against_sb3_on_every_family(family_files):
    report = run_suite([OracleSource(sorted(family_files.values()), Sb3Runtime())], PythonRuntime(),
                       MODEL_CHECKS, SMALL)
    failing = [r.as_dict() for r in report.results if r.status not in ("pass", "skip")]
    assert not failing, report.render()
    passed = {(r.model[:-len(".sbif")], r.check) for r in report.results if r.status == "pass"}
    assert {check for _, check in passed} == set(MODEL_CHECKS)
    assert {name for name, _ in passed} == set(FAMILY_MODELS)
    for name in ("ppo_discrete", "dqn", "sac", "maskableppo", "recurrentppo", "a2c_multidiscrete"):
        assert (name, "sampling") in passed
    assert ("recurrentppo", "recurrent_sequence") in passed


def test_a_pack_recorded_from_sb3_says_so_and_replays(tmp_path, family_files):
    """`conformance.record` with the SB3 oracle: the pack's recorded_by names SB3, sb3-contrib and torch, and the
    NumPy runtime passes it with no SB3 involved."""
    from conformance.golden import GoldenPack, GoldenSource
    from conformance.record import oracle_for, record

    source = os.path.splitext(family_files["dqn"])[0] + ".zip"
    oracle = oracle_for(source, family_files["dqn"])
    assert isinstance(oracle, Sb3Runtime)
    pack, skipped = record(family_files["dqn"], oracle, str(tmp_path / "dqn.golden"), ["deterministic", "sampling"],
                           SMALL)
    recorded_by = GoldenPack(pack).manifest["recorded_by"]
    assert recorded_by["oracle"].startswith("stable-baselines3 ") and "sb3-contrib" in recorded_by["oracle_language"]
    assert not skipped
    report = run_suite([GoldenSource([pack])], PythonRuntime(), ["deterministic", "sampling"])
    assert [r.status for r in report.results] == ["pass", "pass"], report.render()


def test_the_oracle_answers_from_sb3_not_from_the_file(tmp_path, family_files):
    """Pointed at another SB3 save of the same policy (other random weights), the oracle's answers are that save's:
    the file fails against them."""
    other = exported(tmp_path, "ppo_discrete", seed=1)
    oracle = Sb3Runtime()
    oracle.add(family_files["ppo_discrete"], os.path.splitext(other)[0] + ".zip")
    report = run_suite([OracleSource([family_files["ppo_discrete"]], oracle)], PythonRuntime(), ["deterministic"],
                       SMALL)
    assert [r.status for r in report.results] == ["fail"], report.render()


def test_a_broken_runtime_fails_against_sb3(family_files):
    mutant = MUTANTS["gumbel_sign_flip"]
    report = run_suite([OracleSource([family_files["ppo_discrete"]], Sb3Runtime())], mutant.runtime(),
                       [mutant.check], SMALL)
    assert [r.status for r in report.results] == ["fail"], report.render()


def test_without_sb3_every_check_is_skipped_with_the_reason(monkeypatch, family_files):
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # `import sb3_contrib` raises ImportError
    oracle = sb3_oracle_or_unavailable()
    assert isinstance(oracle, UnavailableOracle)
    report = run_suite([OracleSource([family_files["sac"]], oracle)], PythonRuntime(), ["deterministic"], SMALL)
    assert [r.status for r in report.results] == ["skip"]
    assert "needs Stable-Baselines3, sb3-contrib and torch" in report.results[0].message


def test_cli_oracle_sb3_live(family_files):
    """`sbif conformance run --oracle sb3-live --models FILE`: the save found beside the file by its sha256."""
    done = subprocess.run([sys.executable, "-m", "sbif", "conformance", "run", "--oracle", "sb3-live", "--models",
                           family_files["dqn"], "--checks", "deterministic", "sampling", "--batches", "1", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "oracle:  stable-baselines3 2.9.2" in done.stdout
    rows = [line.split()[1:3] for line in done.stdout.splitlines() if line.startswith("dqn.sbif")]
    assert rows == [["deterministic", "pass"], ["sampling", "pass"]], done.stdout
