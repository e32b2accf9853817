"""Shared fixtures: valid SBIF files built without TensorFlow (see `tests/factories.py`)."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `from tests.factories import ...` whatever the rootdir / import mode
    sys.path.insert(0, ROOT)

from tests.factories import MATRIX, make_sbif  # noqa: E402

# The package tests pin `sbif.load`'s default to the NumPy reference, which they compare bit for bit with the ops
# and with files written again; the numba backend is checked against it within SPEC section 6 by
# tests/test_numba_runtime.py, which asks for it by name.
os.environ.setdefault("SBIF_BACKEND", "numpy")

#: The model most bad-file tests start from: Box observation with finite bounds (a multi-dim shape, so a
#: flatten node), Box actions (logstd, clip constants) and shared + separate layers.
DEFAULT_MODEL = ("box_finite", "box", "mixed")


#: Tests too slow for the fast loop (`make check` runs `pytest -m "not slow"`), picked by `pytest --durations` in
#: the modern environment: together about 40 of the suite's 95 seconds (2 cores, numba kernels built), while most
#: of the other 1,900 tests take milliseconds. A test id names all its parametrizations; an id with [...] just that
#: one. Files slow as a whole mark themselves (tests/test_wheel.py).
SLOW_TESTS = {
    "tests/test_schema_check.py::test_mutated_documents_get_jsonschemas_verdict",  # 600 Hypothesis documents: 17 s
    # numba's JIT compiles every kernel: 1.3 s from numba's cache, 90 s after a kernel changes
    "tests/test_numba_runtime.py::test_where_the_module_cannot_be_built_numba_jit_runs_the_same_kernels",
    "tests/test_numba_runtime.py::test_every_family_agrees_with_the_reference",  # 2 s
    # TorchScript: scripting and a protocol process, 2-5 s each (the eager module runs the same conversions)
    "tests/convert/test_torch.py::test_every_op_is_implemented[scripted]",
    "tests/convert/test_torch.py::test_every_family_matches_the_reference[scripted]",
    "tests/convert/test_torch.py::test_golden_packs_and_op_vectors[scripted]",
    "tests/convert/test_torch.py::test_saved_files_run_without_sbif",
    "tests/test_roundtrip.py::test_container_round_trips_arbitrary_arrays_and_metadata",  # Hypothesis: 3.4 s
    "tests/conformance/test_suite.py::test_numpy_process_passes_on_every_family",  # 2.6 s
    "tests/conformance/test_generate.py::test_reference_against_itself_finds_nothing",  # a fuzz run: 2.2 s
    # issue #18's budgets and limits: files at and past a limit take seconds to build and read (megabytes each)
    "tests/attacks/test_attacks.py::test_memoised_values_reused_are_refused_by_the_build_budget",  # 15 s
    "tests/attacks/test_attacks.py::test_textual_bounds_with_millions_of_numbers",  # 2 s
    "tests/attacks/test_budgets.py::test_legitimate_export_and_predict_pass_the_same_budget",  # 4 s
    "tests/attacks/test_budgets.py::test_legitimate_protocol_session_passes_the_same_budget",  # 3 s
    "tests/test_container.py::test_the_document_size_limits",  # 14 s
    "tests/runtimes/test_c_runtime.py::test_the_c_reader_applies_the_document_size_limits_as_the_reference",  # 15 s
    "tests/conformance/test_node.py::test_node_applies_the_document_size_limits_as_the_reference",  # 10 s
    # differential fuzzing: the byte-level mutants stay in the fast loop
    "tests/fuzz/test_differential_readers.py::test_structure_aware_mutants",  # 5 s
    "tests/fuzz/test_differential_readers.py::test_mixed_mutants",  # 4 s
}


def pytest_collection_modifyitems(items):
    """Mark SLOW_TESTS `slow`."""
    for item in items:
        if item.nodeid in SLOW_TESTS or item.nodeid.split("[")[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def valid_bytes(tmp_path_factory):
    """The bytes of a valid SBIF file for DEFAULT_MODEL (built once per session)."""
    path = str(tmp_path_factory.mktemp("valid") / "valid.sbif")
    make_sbif(*DEFAULT_MODEL, seed=7).write(path)
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def valid_path(tmp_path, valid_bytes):
    """A fresh copy of the valid file for DEFAULT_MODEL, safe to edit."""
    path = str(tmp_path / "valid.sbif")
    with open(path, "wb") as handle:
        handle.write(valid_bytes)
    return path


@pytest.fixture
def make_file(tmp_path):
    """Factory: make_file(observation, action, arch, seed=0, algorithm='PPO2', activation=None) -> path."""
    counter = [0]

    def make(observation="box_inf", action="box", arch="mixed", seed=0, algorithm="PPO2", activation=None):
        counter[0] += 1
        path = str(tmp_path / "model{}.sbif".format(counter[0]))
        make_sbif(observation, action, arch, seed, algorithm, activation).write(path)
        return path

    return make


@pytest.fixture(params=MATRIX, ids=["-".join(case) for case in MATRIX])
def matrix_case(request):
    """Every (observation kind, action kind, net_arch kind) the factory builds."""
    return request.param
