"""Fixtures for the runtimes in other languages: the C runtime built with make, its protocol executables, the
NumPy reference as oracle, and one model file per family of `conformance.models.EXAMPLES`."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile

import pytest

from conformance.models import EXAMPLES, family_status, write_model
from conformance.protocol import ProcessRuntime, PythonRuntime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
C_DIR = os.path.join(ROOT, "runtimes", "c")
BUILD = os.path.join(C_DIR, "build")
PROTOCOL = os.path.join(BUILD, "sbif-protocol")
PROTOCOL_ASAN = os.path.join(BUILD, "sbif-protocol-asan")
CHECK = os.path.join(BUILD, "sbif-check")
GOLDEN = os.path.join(ROOT, "conformance", "golden")
KNOWN_FAILURES = os.path.join(ROOT, "conformance", "known-failures.txt")


@pytest.fixture(scope="session")
def c_build():
    """Build runtimes/c with make (skipped only where no C toolchain exists, and never on CI)."""
    missing = [tool for tool in ("make", os.environ.get("CC", "cc")) if shutil.which(tool) is None]
    if missing:
        reason = "{} not found: the C runtime (runtimes/c) cannot be built".format(" and ".join(missing))
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI must have a C toolchain)")
        pytest.skip(reason)
    with open(os.path.join(tempfile.gettempdir(), "sbif-runtimes-c-make.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers build one at a time; the later ones find it done
        result = subprocess.run(["make", "-C", C_DIR], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True)
    assert result.returncode == 0, "make -C runtimes/c failed:\n" + result.stdout
    return BUILD


@pytest.fixture(scope="session")
def c_runtime(c_build):
    runtime = ProcessRuntime([PROTOCOL], cwd=ROOT)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def reference():
    """The NumPy reference runtime itself (not a compiled backend `sbif.load` may pick), in-process."""
    from sbif.format import SbifFile
    from sbif.runtime.policy import Policy

    return PythonRuntime(load=lambda path: Policy(SbifFile.read(path), backend="numpy"))


@pytest.fixture(scope="session")
def example_models(tmp_path_factory):
    """One model file per family SBIF can build, by family."""
    directory = str(tmp_path_factory.mktemp("models"))
    status = family_status()
    return {family: write_model(spec, directory) for family, spec in EXAMPLES.items() if status.get(family) is None}
