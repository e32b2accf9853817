"""The reader-refusal check: the malformed-file corpus is what make_corpus.py writes, the reference reader refuses
each file with the class its manifest names, `load` requests travel the protocol, and the check fails a reader that
accepts corrupt files, one that refuses everything and one that skips what it should refuse."""
import io
import json
import os
import re
import subprocess
import sys

import pytest

from conformance.data import MALFORMED_FILES, shipped
from conformance.malformed import MANIFEST, read_manifest
from conformance.malformed.make_corpus import CORPUS_FILE, write_corpus
from conformance.protocol import ERROR_CLASSES, LOADED, Answer, ProcessRuntime, PythonRuntime, load_outcome, serve
from conformance.runner import OracleSource, run_suite
from sbif.errors import DocumentError, SbifError, UnsupportedError
from sbif.format import SbifFile

from .conftest import GOLDEN, NODE, NODE_RUNTIME, ROOT

CORPUS = shipped(MALFORMED_FILES)
ENTRIES = read_manifest(CORPUS)
SPEC = os.path.join(ROOT, "spec", "SPEC.md")


def corpus_path(entry):
    return os.path.join(CORPUS, entry["file"])


def refusal_report(runtime):
    """The reader_refusal check alone (a source without models carries it)."""
    report = run_suite([OracleSource([], PythonRuntime())], runtime, checks=["reader_refusal"])
    (result,) = report.results
    return report, result


# -- the corpus --------------------------------------------------------------------------------------------------------
def test_the_shipped_corpus_is_what_make_corpus_writes(tmp_path):
    written = write_corpus(str(tmp_path))
    shipped_files = sorted(name for name in os.listdir(CORPUS) if CORPUS_FILE.match(name) or name == MANIFEST)
    assert sorted(written) == shipped_files, "rerun: python -m conformance.malformed.make_corpus"
    for name in written:
        with open(os.path.join(CORPUS, name), "rb") as ours, open(str(tmp_path / name), "rb") as fresh:
            assert ours.read() == fresh.read(), "{} differs: rerun python -m conformance.malformed.make_corpus".format(name)


def test_the_manifest_covers_every_class_and_valid_files():
    classes = [entry["error_class"] for entry in ENTRIES]
    assert set(classes) == set(ERROR_CLASSES) | {None}
    assert classes.count(None) >= 2  # so that a reader refusing everything fails
    with open(SPEC, encoding="utf-8") as handle:
        headings = set(re.findall(r"^#+ (\d+(?:\.\d+)?)\.? ", handle.read(), flags=re.MULTILINE))
    for entry in ENTRIES:
        assert entry["section"] in headings, entry
        assert (entry["defect"] is None) == (entry["error_class"] is None) == ("valid" in entry), entry
    size = sum(os.path.getsize(corpus_path(entry)) for entry in ENTRIES)
    # small package data: about 3.4 KiB a file, each a copy of one base file; raised from 256 KiB for the ten files of
    # issue #18's one reader semantics (integer literals, lone surrogates, -0, U+0000 in names: 88 files, 289 KiB), then
    # to 384 KiB for format version 2's seven files and the transpose op's seven (103 files, 341 KiB), then to 448 KiB
    # for the dict observation files and VecNormalize of dict observations (121 files, 405 KiB)
    assert size < 448 * 1024


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry["file"] for entry in ENTRIES])
def test_the_reference_reader_refuses_each_file_with_its_class(entry):
    if entry["error_class"] is None:
        SbifFile.read(corpus_path(entry))
        return
    with pytest.raises(SbifError) as caught:
        SbifFile.read(corpus_path(entry))
    assert type(caught.value).__name__ == entry["error_class"], caught.value


# -- the protocol ------------------------------------------------------------------------------------------------------
def test_load_requests_on_the_wire():
    """`serve` answers `loaded`, or `errored` with the class; an unsupported file is refused, not skipped."""
    valid = next(entry for entry in reversed(ENTRIES) if entry["error_class"] is None)
    lines = [{"id": 1, "type": "load", "model": corpus_path(valid)},
             {"id": 2, "type": "load", "model": os.path.join(CORPUS, "39_unknown_op.sbif")},
             {"id": 3, "type": "load", "model": os.path.join(CORPUS, "01_short_file.sbif")},
             {"id": 4, "type": "load"}]
    out = io.StringIO()
    serve(PythonRuntime(), io.StringIO("".join(json.dumps(line) + "\n" for line in lines)), out)
    loaded, unknown_op, short, malformed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert loaded == {"id": 1, "type": LOADED}
    assert unknown_op["type"] == "errored" and unknown_op["error_class"] == UnsupportedError.__name__
    assert "sparsemax" in unknown_op["message"]
    assert short["error_class"] == "FileFormatError" and "truncated file" in short["message"]
    assert malformed["type"] == "errored" and "error_class" not in malformed and "'model'" in malformed["message"]


def test_a_missing_file_is_a_file_format_error():
    answer = PythonRuntime().load(os.path.join(CORPUS, "no-such-file.sbif"))
    assert answer.status == "errored" and answer.error_class == "FileFormatError" and "cannot open" in answer.message


@pytest.mark.parametrize("status, message", [("skipped", "format version 2"), ("errored", "out of memory")])
def test_a_load_answer_without_a_class_is_a_failure(status, message):
    outcome = load_outcome(Answer(status, message=message))
    assert outcome.status == "errored" and status in outcome.message and message in outcome.message


# -- the check ---------------------------------------------------------------------------------------------------------
def test_the_reference_passes():
    report, result = refusal_report(PythonRuntime())
    assert result.status == "pass" and result.probes == len(ENTRIES), report.render()


def test_a_reader_that_accepts_corrupt_files_fails():
    report, result = refusal_report(PythonRuntime(load=lambda path: object()))
    assert result.status == "fail" and "expected FileFormatError, got loaded" in result.worst["detail"], report.render()


def test_a_refusal_failure_replays_from_its_case_file(tmp_path):
    """The case file of a reader that accepts a corrupt file carries that file: replayed, the reference passes it
    and the broken reader still fails it."""
    from conformance.cases import read_case, replay

    accepting = PythonRuntime(load=lambda path: object())
    run_suite([OracleSource([], PythonRuntime())], accepting, checks=["reader_refusal"], cases_dir=str(tmp_path))
    [case] = [read_case(str(path)) for path in tmp_path.iterdir()]
    assert replay(case, PythonRuntime()).ok
    failed = replay(case, accepting)
    assert not failed.ok and "got loaded" in failed.lines[0]


def test_a_reader_that_refuses_everything_fails():
    def refuse(path):
        raise DocumentError("refused")

    report, result = refusal_report(PythonRuntime(load=refuse))
    assert result.status == "fail", report.render()


def test_a_reader_that_skips_unsupported_files_fails():
    """Answering a newer format version `skipped` (as for a run) instead of refusing it by class."""
    class Skipping(PythonRuntime):
        def request(self, request):
            answer = super().request(request)
            if answer.error_class == UnsupportedError.__name__:
                return Answer("skipped", message=answer.message)
            return answer

    report, result = refusal_report(Skipping())
    assert result.status == "fail" and "answered skipped" in result.worst["detail"], report.render()


def test_a_runtime_without_the_feature_is_skipped():
    report, result = refusal_report(PythonRuntime(features=("run",)))
    assert result.status == "skip" and "'load'" in result.message and report.ok


def test_the_numpy_adapter_process_passes():
    runtime = ProcessRuntime([sys.executable, "-m", "conformance.adapters.sbif_numpy"], cwd=ROOT)
    try:
        report, result = refusal_report(runtime)
    finally:
        runtime.close()
    assert result.status == "pass", report.render()


def test_the_torch_adapter_passes():
    pytest.importorskip("torch")
    from conformance.adapters.torch_module import TorchRuntime

    for scripted in (False, True):
        report, result = refusal_report(TorchRuntime(scripted=scripted))
        assert result.status == "pass", report.render()


def test_the_onnx_adapter_passes():
    pytest.importorskip("onnxruntime")
    from conformance.adapters.onnx_runtime import OnnxRuntime

    report, result = refusal_report(OnnxRuntime())
    assert result.status == "pass", report.render()


def test_cli_runs_the_check_on_the_node_runtime():
    if NODE is None:
        pytest.skip("node is not installed")
    done = subprocess.run([sys.executable, "-m", "sbif", "conformance", "run", "--runtime", " ".join(NODE_RUNTIME),
                           "--golden", GOLDEN, "--checks", "reader_refusal"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\(malformed files\)\s+reader_refusal\s+pass\s+{}".format(len(ENTRIES)), done.stdout), done.stdout


@pytest.mark.parametrize("name, error_class", [("77_value_over_the_size_limit.sbif", "DocumentError"),
                                               ("78_valid_value_at_the_size_limit.sbif", None)])
def test_the_size_limit_files_are_decided_without_allocating_the_value(name, error_class):
    """SPEC section 3.5: a value of 2^28 bytes at batch 1 is the largest a file may declare. Deciding costs no memory
    proportional to it (the reference reads either file within a few MiB)."""
    import tracemalloc

    (entry,) = [entry for entry in ENTRIES if entry["file"] == name]
    assert entry["error_class"] == error_class and entry["section"] == "3.5"
    tracemalloc.start()
    try:
        if error_class is None:
            SbifFile.read(corpus_path(entry))
        else:
            with pytest.raises(DocumentError, match="above the limit of 268435456 bytes"):
                SbifFile.read(corpus_path(entry))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024
