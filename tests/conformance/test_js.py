"""The JavaScript runtime (runtimes/js, run by Node through bin/sbif-protocol.js): every op, every check, every family."""
import os

import numpy as np
import pytest

from conformance.checks import Config
from conformance.data import MALFORMED_FILES, shipped
from conformance.generate import fuzz
from conformance.golden import GoldenSource
from conformance.malformed import read_manifest
from conformance.malformed.size_limits import SIZE_LIMIT_CASES, size_limit_file, with_many_nodes
from conformance.models import ModelInfo
from conformance.runner import KnownFailures, OracleSource, run_suite

from tests.runtimes.test_c_runtime import (READER_SEMANTICS, VERSION_2, assert_runs_as_version_1, masked_logits_file,
                                           version_2_copy)

from .conftest import GOLDEN, KNOWN_FAILURES

#: what they check is JavaScript in Node, the same under either Python: the modern environment runs them, once
pytestmark = pytest.mark.javascript


def test_hello_claims_every_op(node_runtime):
    from sbif.ops import REGISTRY

    assert node_runtime.hello["runtime"]["name"] == "sbif-js"
    assert set(node_runtime.features) == {"run", "predict", "op", "recurrent", "sampling", "load"}
    assert set(node_runtime.ops) == set(REGISTRY)


def test_js_passes_the_golden_packs(node_runtime):
    """Against SB2's and SB3's recorded answers, CNN packs, every op vector and the predict interface included: only
    what a pack did not record is skipped."""
    report = run_suite([GoldenSource([GOLDEN])], node_runtime, known=KnownFailures.read(KNOWN_FAILURES))
    assert report.ok, report.render()
    skipped = {r.key: r.message for r in report.results if r.status == "skip"}
    assert all("not recorded" in m for m in skipped.values()), skipped
    assert sum(r.check == "predict_api" and r.status == "pass" for r in report.results) == len(
        [name for name in os.listdir(GOLDEN) if name.endswith(".sbif")]), report.render()
    (ops,) = [r for r in report.results if r.check == "op_vectors"]
    assert ops.status == "pass" and "skipped" not in ops.message, ops.message
    assert any("cnn" in r.model and r.status == "pass" for r in report.results), report.render()


def test_js_refuses_every_malformed_file_with_its_class(node_runtime, reference):
    """The reader-refusal corpus: every malformed file refused with the class SPEC section 7 requires (container,
    document, unsupported), the valid ones loaded."""
    report = run_suite([OracleSource([], reference)], node_runtime, checks=["reader_refusal"])
    (result,) = report.results
    assert result.status == "pass" and result.probes == len(read_manifest(shipped(MALFORMED_FILES))), report.render()


def test_js_against_the_reference_on_every_family(node_runtime, reference, example_models):
    report = run_suite([OracleSource(sorted(example_models.values()), reference)], node_runtime,
                       checks=["deterministic", "sampling", "edge_observations", "recurrent_sequence"],
                       config=Config(batches=[1, 6], envs=[2], steps=4))
    assert report.ok, report.render()
    assert all(r.status == "pass" or "not applicable" in r.message for r in report.results), report.render()
    by_family = {}
    for result in report.results:
        by_family.setdefault(result.model.split("-")[0], {})[result.check] = result
    for family, check in [("cnn", "deterministic"), ("cnn", "sampling"), ("dqn", "sampling"),
                          ("lstm", "recurrent_sequence")]:
        if family in by_family:
            assert by_family[family][check].status == "pass", by_family[family][check]


def test_fuzzing_js_finds_nothing(node_runtime, reference, buildable_families):
    families = [f for f in ("mlp", "lstm", "cnn", "vecnormalize", "ops") if f == "ops" or buildable_families.get(f) is None]
    result = fuzz(node_runtime, reference, families, ["deterministic", "sampling", "recurrent_sequence"],
                  max_examples=25, shrink=False)
    assert not result.caught, result.failure


@pytest.mark.parametrize("kwargs, error_class", [
    ('{"k": {"a": 1}, "j": {"a": 1}, "s": "\\"a\\": 1"}', None),
    ('{"s": "' + "[{" * 600 + '\\"\\\\"}', None),
    ('{"a" \n\t : 1, "a": 2}', "DocumentError"),
    ('{"a": 1, "\\u0061": 2}', "DocumentError"),
    ('{"k": [{"b": 1, "c": {"b": 2}, "b": 3}]}', "DocumentError"),
], ids=["same-key-in-two-objects", "brackets-in-a-string", "space-before-colon", "escaped-duplicate", "nested"])
def test_js_and_the_reference_read_duplicate_keys_alike(node_runtime, tmp_path, kwargs, error_class):
    """JSON.parse keeps the last of two equal keys; parseStrict finds them in the raw text, which must tell a key from
    a string value and compare keys as decoded (provenance.policy_kwargs is free-form, so only the JSON decides)."""
    from conformance.malformed.make_corpus import build_base
    from conformance.protocol import PythonRuntime

    path = str(tmp_path / "kwargs.sbif")
    substitution = ('"policy_class":', '"policy_kwargs":' + kwargs + ',"policy_class":')
    with open(path, "wb") as handle:
        handle.write(build_base().with_document_text(substitution))
    ours, reference = node_runtime.load(path), PythonRuntime().load(path)
    assert (ours.status, ours.error_class) == (reference.status, reference.error_class), (ours, reference)
    assert reference.error_class == error_class, reference


# -- sizes and exact integers (issue #18) -------------------------------------------------------------------------
@pytest.mark.parametrize("tensors, error_class", [(16385, "FileFormatError"), (1500000, "FileFormatError"),
                                                  (16384, "DocumentError")], ids=["limit+1", "1.5M", "limit"])
def test_js_counts_header_entries_as_the_reference(node_runtime, tmp_path, tensors, error_class):
    """SPEC section 2: at most 16384 tensors, counted before JSON.parse builds an object per entry (1.5 M empty
    entries, 87 MB, are refused in about a second)."""
    from conformance.protocol import PythonRuntime
    from tests.runtimes.test_c_runtime import many_entries_file

    path, _ = many_entries_file(tmp_path / "entries.sbif", tensors)
    ours, reference = node_runtime.load(path), PythonRuntime().load(path)
    assert (ours.status, ours.error_class) == (reference.status, reference.error_class) == ("errored", error_class)
    assert ours.seconds < 5, ours


def test_js_refuses_a_batch_over_the_run_time_limit(node_runtime, tmp_path):
    from tests.test_runtime import wide_output_file

    answer = node_runtime.run(wide_output_file(tmp_path), {"obs": np.zeros((33, 4), np.float32)}, ["wide"])
    assert answer.status == "errored" and "a batch of 33 rows would make \"wide\"" in answer.message, answer
    assert "use batches of at most 32 rows" in answer.message


@pytest.mark.parametrize("to", ["int8", "int16", "int32", "int64", "uint8", "uint16"])
def test_js_casts_nan_inf_and_out_of_range_floats_as_the_reference(node_runtime, reference, to):
    """spec/ops.md cast: through int64 or int32, the lowest value where the truncation does not fit, then wrapped
    (a plain JavaScript conversion gives 0 for NaN and wraps 1e10 modulo 2^32)."""
    edges = np.array([np.nan, np.inf, -np.inf, 1e10, 3e9, 300.7, -1.9, -2147483648.9, 2.0 ** 63, -2.0 ** 63])
    for x in (edges, edges.astype(np.float32)):
        ours, expected = (runtime.op("cast", [x], {"to": to}) for runtime in (node_runtime, reference))
        assert ours.ok and expected.ok, (ours, expected)
        assert np.array_equal(ours.outputs["0"], expected.outputs["0"]), (x.dtype, ours.outputs, expected.outputs)


def assert_loads_as_the_reference(runtime, path, error_class):
    """A `load` of `path` ends as the NumPy reference's does (loaded, or refused with the same class), and the
    reference's class is `error_class` (None: loaded)."""
    from conformance.protocol import PythonRuntime

    ours, reference = runtime.load(path), PythonRuntime().load(path)
    assert (ours.status, ours.error_class) == (reference.status, reference.error_class), (ours, reference)
    assert reference.error_class == error_class, reference


# -- one reader semantics (issue #18) -----------------------------------------------------------------------------
@pytest.mark.parametrize("make, error_class", [case[1:] for case in READER_SEMANTICS],
                         ids=[case[0] for case in READER_SEMANTICS])
def test_js_reads_integers_strings_and_names_as_the_reference(node_runtime, tmp_path, make, error_class):
    """JSON.parse reads 3.0 as 3 and keeps lone surrogates: parseStrict records the integral numbers written with a
    fraction or exponent, so that only integer literals are integers (SPEC section 1), and refuses lone surrogates
    before the document's version is read; names hold no U+0000 (SPEC sections 2 and 3)."""
    from conformance.malformed.make_corpus import build_base

    path = str(tmp_path / "case.sbif")
    with open(path, "wb") as handle:
        handle.write(make(build_base()))
    assert_loads_as_the_reference(node_runtime, path, error_class)


# -- the document's size (issue #18): 2^20 JSON values, counted before JSON.parse, and 2^14 graph nodes -------------
@pytest.mark.parametrize("case_id, error_class", [case[::2] for case in SIZE_LIMIT_CASES],
                         ids=[case[0] for case in SIZE_LIMIT_CASES])
def test_js_applies_the_document_size_limits_as_the_reference(node_runtime, tmp_path, case_id, error_class):
    """SPEC section 3, at each limit and one beyond: the same decision and class as the reference (and C)."""
    assert_loads_as_the_reference(node_runtime, size_limit_file(str(tmp_path), case_id), error_class)


def test_js_refuses_a_document_of_many_nodes_before_parsing_it(node_runtime, tmp_path):
    """Issue #18: 200,000 tiny nodes (12 MB) are refused from the count of values on the text, in well under the time
    JSON.parse and the schema would take."""
    from conformance.malformed.make_corpus import build_base

    path = str(tmp_path / "nodes.sbif")
    with open(path, "wb") as handle:
        handle.write(with_many_nodes(200000)(build_base()))
    answer = node_runtime.load(path)
    assert answer.error_class == "DocumentError" and "more than 1048576 JSON values" in answer.message, answer
    assert answer.seconds < 5, answer


def test_js_answers_are_unicode_text_even_when_its_messages_split_a_character(node_runtime, tmp_path):
    """V8's JSON.parse names an unexpected astral character by its first UTF-16 unit alone; quoted in a message,
    that lone surrogate made the answer line something strict JSON refuses (found by differential fuzzing, where
    the harness counted it a crash). Answers carry U+FFFD in its place."""
    import struct

    header = '{"a":\U00040000}'.encode("utf-8")
    path = tmp_path / "astral.sbif"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    answer = node_runtime.load(str(path))
    assert (answer.status, answer.error_class) == ("errored", "FileFormatError"), answer


@pytest.mark.parametrize("shape, error_class", [([0, 2 ** 62], "FileFormatError"), ([0, 2 ** 40], "DocumentError")])
def test_js_refuses_an_empty_tensor_no_runtime_can_index(node_runtime, tmp_path, shape, error_class):
    """SPEC section 2: nonzero dimensions times the item size above 2^63 - 1 are refused even for an empty tensor
    (NumPy cannot describe it; C cannot index it); a smaller one is read, then refused for not being listed."""
    from conformance.protocol import PythonRuntime
    from tests.factories import raw_bytes, read_raw, write_sbif

    header, data = read_raw(write_sbif(str(tmp_path / "source.sbif"), "box_inf", "discrete"))
    header["extra"] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data)]}
    path = tmp_path / "empty.sbif"
    path.write_bytes(raw_bytes(header, data))
    ours, reference = node_runtime.load(str(path)), PythonRuntime().load(str(path))
    assert (ours.status, ours.error_class) == (reference.status, reference.error_class) == ("errored", error_class)


# -- format version 2 (SPEC sections 3, 3.1, 3.2, 3.4, 5.9) ---------------------------------------------------------
@pytest.mark.parametrize("make, error_class", [case[1:] for case in VERSION_2], ids=[case[0] for case in VERSION_2])
def test_js_reads_version_2_as_the_reference(node_runtime, tmp_path, make, error_class):
    """The library validates a version-2 document with the version-2 schema and checks the SB3 contract's fields as the
    reference (and C) do."""
    from conformance.malformed.make_corpus import build_base

    path = str(tmp_path / "case.sbif")
    with open(path, "wb") as handle:
        handle.write(make(build_base()))
    assert_loads_as_the_reference(node_runtime, path, error_class)


def test_js_runs_a_version_2_sb2_file_as_its_version_1_original(node_runtime, example_models, tmp_path):
    """Every output, on every family, bit for bit as from the version-1 original."""
    for path in sorted(example_models.values()):
        assert_runs_as_version_1(node_runtime, path, version_2_copy(path, tmp_path), sorted(ModelInfo(path).outputs))


def test_js_feeds_an_action_mask_like_any_bool_input(node_runtime, reference, tmp_path):
    """An action_mask input is a bool graph input, and a graph reading it runs as in the
    reference."""
    path = masked_logits_file(tmp_path)
    rng = np.random.default_rng(5)
    feeds = {"obs": rng.uniform(-1, 1, (4, 3)).astype(np.float32), "action_mask": rng.integers(0, 2, (4, 2)) == 1}
    ours, expected = (runtime.run(path, feeds, ["masked_logits"]) for runtime in (node_runtime, reference))
    assert ours.ok and expected.ok, (ours, expected)
    np.testing.assert_array_equal(ours.outputs["masked_logits"], expected.outputs["masked_logits"])
