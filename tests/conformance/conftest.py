"""Fixtures of the conformance suite's own tests: runtimes (in-process, as processes, the JavaScript runtime) and
models built without TensorFlow (`conformance.models`). Nothing here needs Stable-Baselines."""
from __future__ import annotations

import os
import shutil
import sys

import pytest

from conformance.models import EXAMPLES, family_status, write_model
from conformance.protocol import ProcessRuntime, PythonRuntime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "conformance", "golden")
KNOWN_FAILURES = os.path.join(ROOT, "conformance", "known-failures.txt")
NODE = shutil.which("node")
NODE_RUNTIME = [NODE or "node", os.path.join(ROOT, "runtimes", "js", "bin", "sbif-protocol.js")]
NUMPY_RUNTIME = [sys.executable, "-m", "conformance.adapters.sbif_numpy"]


@pytest.fixture(scope="session")
def reference():
    """The NumPy reference runtime, in-process: the oracle of TF-free runs."""
    return PythonRuntime()


@pytest.fixture(scope="session")
def numpy_process():
    runtime = ProcessRuntime(NUMPY_RUNTIME, cwd=ROOT)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def node_runtime():
    """The JavaScript runtime (runtimes/js) as a Node.js protocol process."""
    if NODE is None:
        pytest.skip("node is not installed: the JavaScript runtime cannot run")
    runtime = ProcessRuntime(NODE_RUNTIME, cwd=ROOT)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def buildable_families():
    """Family -> None (SBIF builds it) or the exporter's reason."""
    return family_status()


@pytest.fixture(scope="session")
def example_models(tmp_path_factory, buildable_families):
    """One model file per family SBIF can build (conformance.models.EXAMPLES), by family."""
    directory = str(tmp_path_factory.mktemp("models"))
    return {family: write_model(spec, directory) for family, spec in EXAMPLES.items()
            if buildable_families.get(family) is None}
