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


#: Tests too slow for the fast loop (`make check` runs `pytest -m "not slow"`; `make test` runs them all), picked by
#: `pytest --durations` in the modern environment on 2 cores with the numba kernels built. The fast loop keeps the
#: core: the format (reading, writing, damage, limits), the NumPy reference runtime (against the golden packs
#: recorded from SB2), the CLI, the safe loader, and each converter's and runtime's own small tests. What leaves it
#: are sweeps: every golden pack or family through another runtime or a converter, fuzz runs, corpora pushed through
#: child processes, measured memory budgets. Seconds are per test on a quiet machine. A test id names all its
#: parametrizations; an id with [...] just that one. Files slow as a whole mark themselves (tests/test_wheel.py,
#: tests/test_user_path.py).
SLOW_TESTS = {
    "tests/test_schema_check.py::test_mutated_documents_get_jsonschemas_verdict",  # 600 Hypothesis documents: 17 s
    "tests/test_roundtrip.py::test_container_round_trips_arbitrary_arrays_and_metadata",  # Hypothesis: 3.4 s
    # 1.5 million empty tensors, to measure that a header's cost is bounded: 1.6 s (the entry limit's own tests stay)
    "tests/test_container.py::test_a_header_of_many_empty_tensors_costs_a_bounded_amount",
    # numba: its JIT compiles every kernel (1.3 s from numba's cache, 90 s after a kernel changes); the golden packs
    # through the numba backend (1.3 s; the NumPy reference runs them in the fast loop, numba its own agreement tests)
    "tests/test_numba_runtime.py::test_where_the_module_cannot_be_built_numba_jit_runs_the_same_kernels",
    "tests/test_numba_runtime.py::test_every_family_agrees_with_the_reference",  # 2 s
    "tests/test_numba_runtime.py::test_golden_packs_pass",
    # ONNX: every golden pack and op vector through onnxruntime (7.8 s), every family (2.4 s), fuzzed models (1.4 s),
    # the adapter as a protocol process (1.6 s); the per-op, per-family-conversion and zoo-model tests stay
    "tests/convert/test_onnx.py::test_golden_packs_and_op_vectors",
    "tests/convert/test_onnx.py::test_every_family_agrees_with_the_reference",
    "tests/convert/test_onnx.py::test_fuzzed_models_agree_with_the_reference",
    "tests/convert/test_onnx.py::test_runtime_adapter_as_a_process",
    # torch: TorchScript scripting and a protocol process (2-5 s each), and the eager module's sweeps (0.5-0.9 s
    # each); every op and the zoo models stay (eager)
    "tests/convert/test_torch.py::test_every_op_is_implemented[scripted]",
    "tests/convert/test_torch.py::test_every_family_matches_the_reference",
    "tests/convert/test_torch.py::test_golden_packs_and_op_vectors",
    "tests/convert/test_torch.py::test_fuzzing_finds_nothing",
    "tests/convert/test_torch.py::test_saved_files_run_without_sbif",
    # the C runtime: fuzzing against the reference (1.8 s), every family (1.1 s), the golden packs (1.0 s), the
    # sanitized build's run (1.0 s), 1.5 million header entries (0.8 s); op vectors and zoo models stay
    "tests/runtimes/test_c_runtime.py::test_fuzzing_against_the_reference_finds_nothing",
    "tests/runtimes/test_c_runtime.py::test_every_family_matches_the_numpy_reference",
    "tests/runtimes/test_c_runtime.py::test_golden_packs_pass",
    "tests/runtimes/test_c_runtime.py::test_sanitized_runtime_passes_op_vectors_a_golden_pack_and_two_families",
    "tests/runtimes/test_c_runtime.py::test_a_header_of_1_5_million_empty_tensors_is_refused_within_bounded_memory",
    "tests/runtimes/test_c_runtime.py::test_the_c_reader_applies_the_document_size_limits_as_the_reference",  # 15 s
    # sbif_predict on every golden pack with both libraries and on SB3's dict models (SB3 builds them), the kernels
    # against their reference in five builds; the SB2 kinds, masks, resets, refusals and allocation counts stay
    "tests/runtimes/test_c_predict.py::test_golden_pack_files_predict_as_the_reference",
    "tests/runtimes/test_c_predict.py::test_sb3_dict_files_predict_as_the_reference",
    "tests/runtimes/test_c_kernels.py::test_the_kernels_agree_with_the_reference_on_awkward_sizes",
    "tests/runtimes/test_c_kernels.py::test_threaded_workspaces_race_nowhere",  # ThreadSanitizer: 36 s
    "tests/runtimes/test_c_kernels.py::test_a_build_without_threads_runs_in_one_thread_and_refuses_more",  # 11 s
    # the JavaScript runtime in Node: the golden packs (2.1 s), megabyte headers and documents (0.4-1.3 s each), a
    # fuzz run, every family
    "tests/conformance/test_js.py::test_js_passes_the_golden_packs",
    "tests/conformance/test_js.py::test_js_counts_header_entries_as_the_reference",
    "tests/conformance/test_js.py::test_js_applies_the_document_size_limits_as_the_reference",  # 10 s
    "tests/conformance/test_js.py::test_js_refuses_a_document_of_many_nodes_before_parsing_it",
    "tests/conformance/test_js.py::test_fuzzing_js_finds_nothing",
    "tests/conformance/test_js.py::test_js_against_the_reference_on_every_family",
    # the conformance suite run as a command (a child interpreter and a runtime process for each run: 0.8-3.1 s
    # each), every family through a process (2.6 s), fuzz runs (1.2-2.2 s); the suite's in-process runs stay
    "tests/conformance/test_suite.py::test_cli_run_golden_json_and_exit_codes",
    "tests/conformance/test_suite.py::test_cli_run_models_against_the_reference",
    "tests/conformance/test_suite.py::test_cli_lists",
    "tests/conformance/test_suite.py::test_numpy_process_passes_on_every_family",
    "tests/conformance/test_generate.py::test_reference_against_itself_finds_nothing",
    "tests/conformance/test_generate.py::test_a_failure_shrinks_to_a_replayable_case",
    # the SB3 oracle: twelve SB3 models built, saved and exported (5 s) and every check against SB3 (2 s); the
    # `--oracle sb3-live` command (a child interpreter importing torch and SB3: 5 s)
    "tests/conformance/test_sb3_oracle.py::test_the_numpy_runtime_passes_against_sb3_on_every_family",
    "tests/conformance/test_sb3_oracle.py::test_cli_oracle_sb3_live",
    # the reader-refusal corpus through each runtime's process: ONNX (6.3 s: a conversion per file), torch, Node,
    # the NumPy adapter (0.8-1.0 s each); the reference's own refusals, file by file, stay
    "tests/conformance/test_refusal.py::test_the_onnx_adapter_passes",
    "tests/conformance/test_refusal.py::test_the_torch_adapter_passes",
    "tests/conformance/test_refusal.py::test_cli_runs_the_check_on_the_node_runtime",
    "tests/conformance/test_refusal.py::test_the_numpy_adapter_process_passes",
    # issue #18's budgets and limits: files at and past a limit take seconds to build and read (megabytes each),
    # and every hostile input runs in a child process under a measured memory budget (0.3-1.4 s each, 15 s in all)
    "tests/attacks/test_attacks.py::test_memoised_values_reused_are_refused_by_the_build_budget",  # 15 s
    "tests/attacks/test_attacks.py::test_textual_bounds_with_millions_of_numbers",  # 2 s
    "tests/attacks/test_budgets.py::test_hostile_file_within_budget",
    "tests/attacks/test_budgets.py::test_protocol_stream_within_budget",
    "tests/attacks/test_budgets.py::test_the_budget_catches_an_input_that_exceeds_it",
    "tests/attacks/test_budgets.py::test_legitimate_export_and_predict_pass_the_same_budget",  # 4 s
    "tests/attacks/test_budgets.py::test_legitimate_protocol_session_passes_the_same_budget",  # 3 s
    "tests/test_container.py::test_the_document_size_limits",  # 14 s
    # no internal error from any input: every corpus through the CLI's child interpreters and sbif-check (1-3 s each)
    "tests/attacks/test_no_internal_error.py::test_hostile_inputs",
    "tests/attacks/test_no_internal_error.py::test_reader_refusal_corpus",
    "tests/attacks/test_no_internal_error.py::test_fuzz_corpus",
    "tests/attacks/test_no_internal_error.py::test_attack_corpus",
    # differential fuzzing: Hypothesis's mutants and the committed corpus through Python, C and Node (1-5 s each),
    # and thousands of mutation chains (2.8 s); the safe loader's own fuzzing (tests/attacks/test_fuzz.py) stays
    "tests/fuzz/test_differential_readers.py::test_the_mutators_never_fail",
    "tests/fuzz/test_differential_readers.py::test_byte_level_mutants",
    "tests/fuzz/test_differential_readers.py::test_structure_aware_mutants",  # 5 s
    "tests/fuzz/test_differential_readers.py::test_mixed_mutants",  # 4 s
    "tests/fuzz/test_differential_readers.py::test_the_committed_corpus_is_read_alike",
    # progress lines of two sbif processes running Hypothesis (fuzz, mutants): 3-8 s
    "tests/test_progress.py::test_conformance_fuzz_and_mutants_show_their_progress",
    # the SB3 test models (tests/sb3_models.py), each of the 184 cases built by SB3 twice: saved, loaded and run, and
    # randomized from SB3's initialization (30-100 s each in all, measured while other jobs shared the 2 cores); the
    # enumeration's coverage and SB3's refusals stay
    "tests/test_sb3_models.py::test_every_case_saves_loads_and_predicts",
    "tests/test_sb3_models.py::test_randomization_changes_every_parameter_and_buffer",
    # every SB3 case exported by both loaders and verified against SB3 (90 s), and a VecNormalize model trained (15 s)
    "tests/test_sb3_export.py::test_both_loaders_reproduce_sb3",
    "tests/test_sb3_export.py::test_rl_zoo3_vecnormalize_is_folded_in",
    "tests/test_sb3_export.py::test_vecnormalize_of_dict_observations_normalizes_its_keys",
}


#: Tests sharing a costly resource run on one pytest-xdist worker (the Makefile runs the suites with `-n 2 --dist
#: loadgroup`), which then sets it up once, not once per worker: xdist group -> the session fixture that holds it.
GROUPS_BY_FIXTURE = {
    # a two-node Ray cluster: four processes that take seconds to start; two clusters at once would crowd 2 cores
    "ray": "ray_cluster",
    # the sbif wheel, built from a copy of the sources
    "wheel": "wheel",
}
#: xdist group -> the test file whose tests share it: headless Chromium, which one worker drives at a time (the
#: browser bridge, and the page tests' own), so that two never share the 2 cores under the page tests' timeouts
GROUPS_BY_FILE = {"chromium": "tests/conformance/test_js_browser.py"}

#: Test files whose subject is not Python code, so that what they check is the same under any Python and numpy: they
#: are marked `python_independent`, and `make test-legacy` leaves them to the modern environment (the SB2 one reruns
#: the core under Python 3.7 and numpy 1.18, and its live differential tests, not these). Their NumPy oracle runs
#: there all the same, in the tests of the reference itself (the golden packs, the op vectors).
PYTHON_INDEPENDENT_FILES = {
    # the C runtime: its builds, and those under AddressSanitizer, UndefinedBehaviorSanitizer and ThreadSanitizer
    "tests/runtimes/test_c_runtime.py",
    "tests/runtimes/test_c_predict.py",
    "tests/runtimes/test_c_kernels.py",
    # Hypothesis's mutants through the C and Node readers, against the Python reader (whose own refusals, file by
    # file, tests/test_container.py, tests/test_roundtrip.py and tests/attacks/test_fuzz.py check under each Python)
    "tests/fuzz/test_differential_readers.py",
}


# first: with --dist loadgroup, pytest-xdist's own hook appends each test's group to its node id, which SLOW_TESTS's
# matching must not see, and it must see the groups given here
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark SLOW_TESTS `slow` and PYTHON_INDEPENDENT_FILES `python_independent`, and put the tests of
    GROUPS_BY_FIXTURE and GROUPS_BY_FILE in their xdist group."""
    for item in items:
        path = item.nodeid.split("::")[0]
        if item.nodeid in SLOW_TESTS or item.nodeid.split("[")[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if path in PYTHON_INDEPENDENT_FILES:
            item.add_marker(pytest.mark.python_independent)
        groups = [group for group, fixture in GROUPS_BY_FIXTURE.items() if fixture in getattr(item, "fixturenames", ())]
        groups += [group for group, file in GROUPS_BY_FILE.items() if file == path]
        if groups:  # one group a test (pytest-xdist < 3.3, the SB2 environment's, reads one mark)
            item.add_marker(pytest.mark.xdist_group(groups[0]))


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> str:
    """The sbif wheel, built once for every test that installs it (tests/wheel_support.py)."""
    from tests.wheel_support import build_wheel

    return build_wheel(str(tmp_path_factory.mktemp("sources")), str(tmp_path_factory.mktemp("dist")))


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
