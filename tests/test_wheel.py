"""The conformance suite installed from a wheel (issue #17, item 5).

The wheel carries the golden packs, their known failures, the op vectors and the malformed-file corpus as package
data (`conformance/data.py`); in a fresh venv outside the checkout, `sbif conformance run` checks a runtime on everything
shipped, and `fuzz` and `mutants` run with the `conformance` extra and, without it, say which extra to install.

Both tests are `slow` (`make check` leaves them out) and `wheel` (the legacy environment leaves them out: the
modern one tests the wheel, with `make test`). The wheel and the venvs are tests/wheel_support.py's.
"""
from __future__ import annotations

import glob
import json
import os
import re
from typing import List

import pytest

from conformance.cli import CONFORMANCE_EXTRA
from conformance.golden import GoldenPack, find_packs
from conformance.malformed import read_manifest
from conformance.mutants import MUTANTS
from conformance.runner import KnownFailures
from tests.wheel_support import ROOT, Venv, succeeded

NUMPY_RUNTIME = "python -m conformance.adapters.sbif_numpy"

pytestmark = [pytest.mark.slow, pytest.mark.wheel]


def shipped_models() -> List[str]:
    """The models of the checkout's golden packs, as the report names them."""
    return sorted(GoldenPack(path).name for path in find_packs([os.path.join(ROOT, "conformance", "golden")]))


def shipped_vector_cases() -> int:
    """How many cases the checkout's op vectors hold."""
    directory = os.path.join(ROOT, "spec", "vectors")
    total = 0
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                total += len(json.load(handle)["cases"])
    return total


def check_ships_the_data(venv: Venv) -> None:
    """Every file of the checkout that pyproject.toml's package-data globs name is installed, beside the package
    the venv imports (not the checkout's)."""
    import tomllib  # Python 3.11, as the modern environment, where these tests run

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        patterns = tomllib.load(handle)["tool"]["setuptools"]["package-data"]["conformance"]
    located = succeeded(venv.run("python", "-c", "import conformance.data; print(conformance.data.PACKAGE_DIR)"))
    installed = located.stdout.strip()
    assert installed.startswith(venv.directory + os.sep)
    source = os.path.join(ROOT, "conformance")
    for pattern in patterns:
        expected = sorted(os.path.relpath(path, source) for path in glob.glob(os.path.join(source, pattern)))
        assert sorted(os.path.relpath(path, installed) for path in glob.glob(os.path.join(installed, pattern))) == \
            expected, pattern


def check_runs_everything_shipped(venv: Venv) -> None:
    """`sbif conformance run` with no source: the installed package's packs and op vectors, all of them, with the
    packs' known failures applied, against the NumPy reference runtime as a protocol process."""
    check_ships_the_data(venv)
    report = json.loads(succeeded(venv.run("sbif", "conformance", "run", "--runtime", NUMPY_RUNTIME,
                                           "--json")).stdout)
    assert report["ok"] and report["summary"]["pass"] > 0
    [vectors] = [r for r in report["results"] if r["check"] == "op_vectors"]
    cases = shipped_vector_cases()
    assert cases > 0 and vectors["status"] == "pass" and vectors["probes"] == cases
    [refusal] = [r for r in report["results"] if r["check"] == "reader_refusal"]
    assert refusal["status"] == "pass" and refusal["probes"] == len(read_manifest(os.path.join(
        ROOT, "conformance", "malformed")))
    models = sorted({r["model"] for r in report["results"] if r["check"] not in ("op_vectors", "reader_refusal")})
    assert models == shipped_models()
    known = KnownFailures.read(os.path.join(ROOT, "conformance", "known-failures.txt"))
    keys = {"{}::{}".format(r["model"], r["check"]): r["status"] for r in report["results"]}
    assert {key for key, status in keys.items() if status == "known_failure"} == {
        key for key, status in keys.items() if known.match(key) and status != "skip"}


def test_the_wheel_without_the_extra_runs_the_packs_and_names_the_extra_hypothesis_needs(wheel, tmp_path):
    venv = Venv(str(tmp_path))
    venv.install(wheel)
    assert venv.run("python", "-c", "import hypothesis").returncode != 0
    check_runs_everything_shipped(venv)
    for command in (["sbif", "conformance", "mutants"], ["sbif", "conformance", "fuzz", "--examples", "1"],
                    ["python", "-m", "conformance", "mutants"]):
        done = venv.run(*command)
        assert done.returncode == 1, done.stderr
        assert CONFORMANCE_EXTRA in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "lstm_gate_order" in succeeded(venv.run("sbif", "conformance", "mutants", "--list")).stdout


def test_the_wheel_with_the_conformance_extra_runs_the_whole_suite(wheel, tmp_path):
    venv = Venv(str(tmp_path))
    venv.install(wheel + "[conformance]")
    check_runs_everything_shipped(venv)
    fuzzed = succeeded(venv.run("sbif", "conformance", "fuzz", "--runtime", NUMPY_RUNTIME, "--examples", "20"))
    examples = re.match(r"(\d+) examples: no failure", fuzzed.stdout)
    assert examples and int(examples.group(1)) > 0, fuzzed.stdout
    rows = json.loads(succeeded(venv.run("sbif", "conformance", "mutants", "--json")).stdout)
    assert sorted(row["mutant"] for row in rows) == sorted(MUTANTS)
    assert all(row["status"] == "caught" for row in rows), rows
