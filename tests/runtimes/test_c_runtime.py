"""The C99 runtime (runtimes/c), built with make and held to the conformance suite: TensorFlow's op vectors, SB2's
golden packs and the NumPy reference on every model family. Corrupt files and malformed requests go through the
AddressSanitizer/UndefinedBehaviorSanitizer build: each is refused by name, the process exits cleanly, and neither
the sanitizers nor LeakSanitizer report anything, with any allocation above 64 MiB counted as a failure."""
from __future__ import annotations

import copy
import functools
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from conformance.checks import Config
from conformance.data import MALFORMED_FILES, shipped
from conformance.golden import GoldenSource
from conformance.malformed import read_manifest
from conformance.malformed.size_limits import SIZE_LIMIT_CASES, size_limit_file, with_many_nodes
from conformance.models import EXAMPLES, ModelInfo, write_model
from conformance.protocol import ProcessRuntime
from conformance.runner import KnownFailures, OracleSource, run_suite
from sbif.format.container import MAX_HEADER_BYTES
from tests.factories import raw_bytes, rewrite_document, rewrite_header, write_sbif
from tests.test_container import find_node, tensor_entry, two_tensors
from tests.zoo import ZOO, require_zoo, zoo_models

from .conftest import CHECK, GOLDEN, KNOWN_FAILURES, PROTOCOL_ASAN, ROOT

ORACLE_CHECKS = ["deterministic", "sampling", "edge_observations", "recurrent_sequence"]
#: under the sanitizers, a larger allocation is an error: refusals must come before any big allocation
ALLOCATION_LIMIT_MB = 64
CARTPOLE = os.path.join(GOLDEN, "demo_ppo2_cartpole.sbif")


# -- the sanitized executable ---------------------------------------------------------------------------------------
def sanitizer_env(log_dir):
    return {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:max_allocation_size_mb={}:log_path={}".format(
                ALLOCATION_LIMIT_MB, os.path.join(log_dir, "asan")),
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:log_path={}".format(os.path.join(log_dir, "ubsan"))}


def sanitizer_reports(log_dir):
    """Everything the sanitizers wrote (their log files), or ''."""
    texts = []
    for name in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, name), encoding="utf-8", errors="replace") as handle:
            texts.append(handle.read())
    return "\n".join(texts)


def converse(lines, log_dir):
    """Send request lines (str or bytes) to one sanitized process, then shutdown. Returns its answers, exit status and
    sanitizer reports; every line it wrote must be a JSON answer."""
    os.makedirs(log_dir, exist_ok=True)
    payload = b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)
    result = subprocess.run([PROTOCOL_ASAN], input=payload + b'{"type": "shutdown"}\n', stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, **sanitizer_env(log_dir)), timeout=300)
    answers = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    reports = sanitizer_reports(log_dir) or result.stderr.decode("utf-8", "replace")
    return answers, result.returncode, reports


def answer_text(answer):
    return answer.get("message") or answer.get("reason") or ""


# -- the runtime against the suite ----------------------------------------------------------------------------------
def test_hello_declares_every_op_and_its_features(c_runtime):
    from sbif.ops import REGISTRY

    assert c_runtime.hello["runtime"]["name"] == "sbif-c"
    assert set(c_runtime.features) == {"run", "op", "recurrent", "sampling", "load"}
    assert c_runtime.ops == sorted(REGISTRY)


def test_op_vectors_pass(c_runtime):
    """Every case of spec/vectors (TensorFlow 1.15's and NumPy's answers), within each case's tolerance."""
    report = run_suite([GoldenSource([GOLDEN])], c_runtime, checks=["op_vectors"])
    assert report.ok, report.render()
    (result,) = report.results
    assert result.status == "pass" and "skipped" not in result.message, report.render()


def test_float32_sigmoid_takes_tfs_packet_exp(c_runtime):
    """The C runtime's float32 sigmoid computes e^-x with TF's packet exp (Cephes: a loop the compiler vectorises,
    unlike calls to expf): bit for bit what the numba backend's sigmoid computes with the same function, on 2^18 + 1
    points of [-20, 20], the cut-offs' neighbours, ±inf and NaN, and so within spec/ops.md's tolerance of the
    reference as numba is."""
    kernels = pytest.importorskip("sbif.runtime.numba.kernels")
    points = np.linspace(-20, 20, (1 << 18) + 1, dtype=np.float32)
    cutoffs = np.array([-18, 18], dtype=np.float32)
    edges = np.concatenate([np.nextafter(cutoffs, -np.inf), cutoffs, np.nextafter(cutoffs, np.inf),
                            np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.5, -88.5], dtype=np.float32)])
    x = np.concatenate([points, edges]).astype(np.float32)
    expected = np.empty_like(x)
    kernels.unary(kernels.SIGMOID, x, expected, np.float32(0))
    answer = c_runtime.op("sigmoid", [x])
    assert answer.ok, answer.message
    found = answer.outputs["0"]
    assert found.dtype == np.float32 and np.array_equal(np.isnan(found), np.isnan(expected))
    numbers = ~np.isnan(expected)
    np.testing.assert_array_equal(found[numbers].view(np.uint32), expected[numbers].view(np.uint32))


@pytest.mark.parametrize("family", ["td3", "cnn"])
def test_a_product_stores_through_the_relu_that_alone_reads_it(c_runtime, example_models, family):
    """A float32 linear or conv2d whose output only a relu node reads stores its results through relu, and the relu
    node costs no pass: its value is the same bit for bit whether the run fuses them (the relu's value requested) or
    cannot (the product's value requested too), and is the product's value through relu. Observations of both signs,
    large, and (for float inputs) NaN and infinities."""
    from sbif.format import SbifFile

    path = example_models[family]
    document = SbifFile.read(path).document
    producers = {output: node["op"] for node in document["graph"] for output in node["outputs"]}
    fused = [node for node in document["graph"]
             if node["op"] == "relu" and producers.get(node["inputs"][0]) in ("linear", "matmul", "conv2d")]
    assert fused, "the {} example has no product followed by relu".format(family)
    observation = next(entry for entry in document["inputs"] if entry["kind"] == "observation")
    shape = [5] + [dim for dim in observation["shape"][1:]]
    rng = np.random.default_rng(3)
    if observation["dtype"] == "uint8":
        obs = rng.integers(0, 256, size=shape, dtype=np.uint8)
    else:
        obs = (rng.normal(size=shape) * 50).astype(observation["dtype"])
        obs.reshape(5, -1)[0, :3] = [np.nan, np.inf, -np.inf]
    for node in fused:
        alone = c_runtime.run(path, {observation["name"]: obs}, [node["outputs"][0]])
        both = c_runtime.run(path, {observation["name"]: obs}, node["outputs"] + node["inputs"])
        assert alone.ok and both.ok, (alone.message, both.message)
        relu, product = alone.outputs[node["outputs"][0]], both.outputs[node["inputs"][0]]
        assert relu.tobytes() == both.outputs[node["outputs"][0]].tobytes(), node
        assert relu.tobytes() == np.where(product < 0, np.float32(0), product).astype(np.float32).tobytes(), node


def test_malformed_files_are_refused_with_their_class(c_runtime, reference):
    """The reader-refusal corpus: each malformed file refused with the class SPEC section 7 requires, the valid ones
    loaded."""
    report = run_suite([OracleSource([], reference)], c_runtime, checks=["reader_refusal"])
    (result,) = report.results
    assert result.status == "pass" and result.probes == len(read_manifest(shipped(MALFORMED_FILES))), report.render()


def test_golden_packs_pass(c_runtime):
    """SB2's recorded answers; only predict_api (not claimed) and checks a pack did not record are skipped."""
    report = run_suite([GoldenSource([GOLDEN])], c_runtime, known=KnownFailures.read(KNOWN_FAILURES))
    assert report.ok, report.render()
    skipped = {r.key: r.message for r in report.results if r.status == "skip"}
    assert all("not recorded" in m or "'predict'" in m for m in skipped.values()), skipped
    assert sum(r.status == "pass" for r in report.results) >= 35, report.render()


def test_every_family_matches_the_numpy_reference(c_runtime, reference, example_models):
    report = run_suite([OracleSource(sorted(example_models.values()), reference)], c_runtime, checks=ORACLE_CHECKS,
                       config=Config())
    assert report.ok, report.render()
    passed = {}
    for result in report.results:
        assert result.status == "pass" or "not applicable" in result.message, report.render()
        if result.status == "pass":
            passed.setdefault(result.model.split("-")[0], set()).add(result.check)
    assert set(passed) == set(example_models)
    assert {"deterministic", "edge_observations"} <= passed["cnn"]
    assert "sampling" in passed["dqn"]  # inverse_cdf_sample
    assert "recurrent_sequence" in passed["lstm"] and "recurrent_sequence" in passed["cnn_lstm"]


def test_fuzzing_against_the_reference_finds_nothing(c_runtime, reference):
    """Hypothesis draws models of every family the C runtime can run, and single ops on random inputs."""
    from conformance.generate import fuzz
    from conformance.models import family_status

    status = family_status()
    families = [f for f in ("mlp", "cnn", "lstm", "dqn", "sac", "vecnormalize") if status.get(f) is None] + ["ops"]
    result = fuzz(c_runtime, reference, families, ORACLE_CHECKS, max_examples=25, shrink=False)
    assert not result.caught, result.failure


def test_nature_cnn_runs_well_under_a_second(c_runtime, tmp_path):
    spec = copy.deepcopy(EXAMPLES["cnn"])
    spec["observation"]["shape"] = [84, 84, 4]
    spec["action"] = {"kind": "discrete", "n": 18}
    path = write_model(spec, str(tmp_path))
    observation = ModelInfo(path).observations(1, np.random.default_rng(0))
    assert c_runtime.run(path, {"obs": observation}, ["action"]).ok  # the first request also loads the file
    answer = c_runtime.run(path, {"obs": observation}, ["action", "value"])
    assert answer.ok and answer.seconds < 1.0, answer


def test_a_file_rewritten_in_place_is_read_again(c_runtime, tmp_path):
    path = str(tmp_path / "model.sbif")
    shutil.copyfile(CARTPOLE, path)
    assert c_runtime.run(path, {"obs": np.zeros((1, 4), np.float32)}, ["action"]).ok
    shutil.copyfile(os.path.join(GOLDEN, "ppo2_mlp_box_discrete.sbif"), path)
    answer = c_runtime.run(path, {"obs": np.zeros((2, 5), np.float32)}, ["action"])
    assert answer.ok and answer.outputs["action"].shape == (2,), answer


def test_sanitized_runtime_passes_op_vectors_a_golden_pack_and_two_families(c_build, tmp_path, reference,
                                                                            example_models):
    logs = str(tmp_path / "logs")
    os.makedirs(logs)
    runtime = ProcessRuntime([PROTOCOL_ASAN], cwd=ROOT, env=sanitizer_env(logs))
    try:
        golden = run_suite([GoldenSource([GOLDEN])], runtime, select=["op_vectors", "ppo2_lstm_box_discrete"],
                           known=KnownFailures.read(KNOWN_FAILURES))
        families = run_suite([OracleSource([example_models["cnn_lstm"], example_models["dqn"]], reference)], runtime,
                             checks=ORACLE_CHECKS, config=Config(batches=[1, 5], envs=[2], steps=3))
    finally:
        runtime.close()
    assert golden.ok, golden.render()
    assert families.ok, families.render()
    assert runtime.restarts == 0
    assert sum(r.status == "pass" for r in golden.results) == 5, golden.render()
    assert sanitizer_reports(logs) == ""


def test_sanitized_runtime_refuses_the_malformed_files(c_build, tmp_path, reference):
    logs = str(tmp_path / "logs")
    os.makedirs(logs)
    runtime = ProcessRuntime([PROTOCOL_ASAN], cwd=ROOT, env=sanitizer_env(logs))
    try:
        report = run_suite([OracleSource([], reference)], runtime, checks=["reader_refusal"])
    finally:
        runtime.close()
    assert report.ok and report.results[0].status == "pass", report.render()
    assert runtime.restarts == 0 and sanitizer_reports(logs) == ""


# -- corrupt files ----------------------------------------------------------------------------------------------------
def corrupt_files(directory, valid_bytes):
    """(name, path, expected answer type, message fragment) for every defect of the container, its header and the
    document that sbif/format checks (tests/test_container.py), plus the JSON this runtime refuses (duplicate keys,
    NaN literals, lone surrogates, overlong UTF-8)."""
    valid = os.path.join(directory, "valid.sbif")
    with open(valid, "wb") as handle:
        handle.write(valid_bytes)
    cases = []

    def target(name):
        return os.path.join(directory, "{:03d}-{}.sbif".format(len(cases), name))

    def raw(name, content, fragment, status="errored"):
        path = target(name)
        with open(path, "wb") as handle:
            handle.write(content)
        cases.append((name, path, status, fragment))

    def header(name, edit, fragment):
        cases.append((name, rewrite_header(valid, target(name), edit), "errored", fragment))

    def document(name, edit, fragment, status="errored"):
        cases.append((name, rewrite_document(valid, target(name), edit), status, fragment))

    def entry(field, value):
        def edit(head, data):
            head["model/pi/b:0"][field] = value
        return edit

    def setting(keys, value):
        def edit(doc):
            for key in keys[:-1]:
                doc = doc[key]
            doc[keys[-1]] = value
        return edit

    def add_node(op, inputs, **attrs):
        """An edit appending a node `op` whose one output, named `op/out`, nothing reads."""
        def edit(doc):
            doc["graph"].append({"op": op, "inputs": inputs, "outputs": [op + "/out"], "attrs": attrs})
        return edit

    def node(role, key, value):
        def edit(doc):
            find_node(doc, role)[key] = value(find_node(doc, role)[key]) if callable(value) else value
        return edit

    # the length prefix and the header's bytes
    raw("empty", b"", "truncated file (0 bytes")
    raw("one-byte", b"\x02", "truncated file (1 bytes")
    raw("seven-bytes", b"\x02" * 7, "truncated file (7 bytes")
    raw("header-past-the-end", struct.pack("<Q", len(valid_bytes)) + valid_bytes[8:],
        "header says {} bytes but only {} follow".format(len(valid_bytes), len(valid_bytes) - 8))
    for length in (MAX_HEADER_BYTES + 1, 2 ** 63, 2 ** 64 - 1):
        raw("header-over-the-cap", struct.pack("<Q", length) + b"{}", "exceeds the 104857600 byte limit")
    sparse = target("sparse-over-the-cap")
    with open(sparse, "wb") as handle:  # the file really is that long: only the cap stops the reader
        handle.write(struct.pack("<Q", MAX_HEADER_BYTES + 8) + b"{")
        handle.truncate(8 + MAX_HEADER_BYTES + 16)
    cases.append(("sparse-over-the-cap", sparse, "errored", "exceeds the 104857600 byte limit"))
    for name, text in [("bad-utf8-start", b"\xff\xfe{}"), ("bad-utf8-inside", b'{"a": \xc3}'),
                       ("overlong-utf8", b'{"\xc0\xaf": 1}'), ("encoded-surrogate", b'{"\xed\xa0\x80": 1}'),
                       ("byte-order-mark", b"\xef\xbb\xbf{}"), ("not-json", b"{not json"), ("empty-header", b""),
                       ("extra-data", b"{}}"), ("deep", b"[" * 10000 + b"]" * 10000), ("nan", b'{"a": NaN}'),
                       ("infinity", b'{"a": [Infinity]}'), ("lone-surrogate", b'{"\\ud800": 1}'),
                       ("control-character", b'{"a\x01": 1}'), ("trailing-comma", b'{"a": 1,}'),
                       ("leading-zero", b'{"a": 01}'), ("unterminated", b'{"a": "b'),
                       ("beyond-a-double", b'{"a": [2, 1e400]}')]:
        raw(name, raw_bytes(None, header_bytes=text), "header is not valid JSON")
    twice = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    raw("duplicate-tensor", raw_bytes(None, header_bytes=twice) + b"\0" * 4, "duplicate key \"a\"")
    for value in ([], [1, 2], "sbif", 3, None):
        raw("header-not-an-object", raw_bytes(value), "header must be a JSON object")
    for metadata in ({"format": 1}, {"sbif": None}, ["format", "sbif"], "sbif", {"a": {"b": "c"}}):
        raw("metadata-not-strings", raw_bytes({"__metadata__": metadata}), "__metadata__ must map strings to strings")
    # header entries
    for dtype in ("BF16", "F8_E4M3", "float32", "", 4, None):
        header("unknown-dtype", entry("dtype", dtype), "'model/pi/b:0' has unknown dtype")
    for shape in ([-2], [2.0], ["2"], [True, 2], [None], 2, "2", {"0": 2}):
        header("invalid-shape", entry("shape", shape), "'model/pi/b:0' has an invalid shape")
    for offsets in ([8, 0], [0], [0, 8, 16], [-8, 0], [0.0, 8.0], None, "0:8"):
        header("invalid-offsets", entry("data_offsets", offsets), "'model/pi/b:0' has invalid data_offsets")

    def drop(field):
        def edit(head, data):
            del head["model/pi/b:0"][field]
        return edit

    header("missing-dtype", drop("dtype"), "needs exactly the keys dtype, shape, data_offsets")
    header("missing-offsets", drop("data_offsets"), "needs exactly the keys dtype, shape, data_offsets")
    header("extra-key", entry("stride", [1]), "needs exactly the keys dtype, shape, data_offsets")
    header("entry-not-an-object", lambda head, data: head.update({"model/pi/b:0": ["F32", [2], [0, 8]]}),
           "needs exactly the keys dtype, shape, data_offsets")
    header("span", entry("shape", [3]), "needs 12 bytes but data_offsets span 8")
    header("dtype-span", entry("dtype", "F64"), "needs 16 bytes but data_offsets span 8")
    for shape in ([2 ** 40, 2 ** 40], [2 ** 64] * 3, [2 ** 31] * 8):
        raw("shape-bomb", raw_bytes({"bomb": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}, b"\0" * 4),
            "data_offsets span 4")
    for shape in ([0, 2 ** 62], [0, 2 ** 63], [2 ** 70, 0], [1] * 70, [0] + [1] * 70):
        nbytes = 0 if 0 in shape else 4
        raw("unrepresentable-shape", raw_bytes({"odd": {"dtype": "F32", "shape": shape, "data_offsets": [0, nbytes]}},
                                               b"\0" * nbytes), "which this runtime cannot represent")
    # the layout of the data buffer
    raw("overlap", raw_bytes(*two_tensors((0, 8), (4, 12), 12)), "tensor 'b' at byte 4 overlaps the previous tensor")
    raw("gap", raw_bytes(*two_tensors((0, 8), (12, 20), 20)), "tensor 'b' at byte 12 leaves a gap before it")
    raw("gap-first", raw_bytes(*two_tensors((4, 12), (12, 20), 20)), "tensor 'a' at byte 4 leaves a gap before it")

    def same_offsets(head, data):
        by_offset = sorted((e["data_offsets"], name) for name, e in head.items() if name != "__metadata__")
        (previous, _), (_, last) = by_offset[-2:]
        head[last]["data_offsets"] = list(previous)
        return data[:previous[1]]

    header("same-offsets", same_offsets, "overlaps the previous tensor")
    raw("trailing-byte", valid_bytes + b"\0", "1 trailing bytes after the last tensor")
    raw("trailing-page", valid_bytes + b"\0" * 4096, "4096 trailing bytes after the last tensor")
    raw("trailing-without-tensors", raw_bytes({}, b"xyz"), "3 trailing bytes")
    for cut in (1, 3, 8):
        raw("truncated-data", valid_bytes[:-cut], "truncated file: tensor")
    header("data-missing", lambda head, data: b"", "truncated file: tensor")
    header("uint32-tensor", lambda head, data: (head.update(
        {"sbif/extra": {"dtype": "U32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}}) or data + b"abcd"),
        "does not list: sbif/extra")
    # the SBIF metadata and the document's JSON
    raw("no-metadata", raw_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        "not an SBIF file")
    for metadata in ({}, {"format": "pt"}, {"format": "sbif"}, {"sbif": "{}"}, {"format": "SBIF", "sbif": "{}"}):
        raw("not-sbif", raw_bytes({"__metadata__": metadata}), "not an SBIF file")
    for text in ("{oops", "", '{"format": "sbif",}', "[" * 100000, '{"a": NaN}'):
        document("document-not-json", lambda doc, text=text: text, "SBIF document is not valid JSON")
    document("document-duplicate-key", lambda doc: json.dumps(doc)[:-1] + ', "format": "sbif"}', "duplicate key")
    for text in ("[]", "1", '"sbif"', "null"):
        document("document-not-an-object", lambda doc, text=text: text, "SBIF document must be a JSON object")
    for version in (3, 0, 99):
        document("future-version", lambda doc, v=version: doc.update(format_version=v, something_new={}),
                 "format version {} is not supported".format(version), status="skipped")
    for version in ("1", 1.0, True, None, [1]):
        document("version-not-an-integer", setting(["format_version"], version), "format_version must be an integer")
    document("version-missing", lambda doc: doc.pop("format_version") and None, "format_version must be an integer")
    # the structure of the document
    for key in ("predict", "graph", "provenance", "observation_space", "format"):
        document("missing-" + key, lambda doc, key=key: doc.pop(key) and None, "'{}' is a required property".format(key))
    document("extra-key", setting(["comment"], "hello"), "'comment' was unexpected")
    document("extra-nested-key", lambda doc: doc["tensors"][2].update(layout="row-major"), "schema violation at tensors/2")
    for keys, value, where in [(["provenance", "source", "sha256"], "XYZ", "provenance/source/sha256"),
                               (["provenance", "algorithm"], "PPO3", "provenance/algorithm"),
                               (["predict", "deterministic_default"], "yes", "predict/deterministic_default"),
                               (["inputs", 0, "kind"], "camera", "inputs/0/kind"),
                               (["tensors", 0, "dtype"], "complex64", "tensors/0/dtype"),
                               (["graph", 0, "op"], "Linear", "graph/0/op"), (["format"], "sbif2", "format"),
                               (["inputs", 0, "name"], "", "inputs/0/name"),
                               (["inputs", 0, "shape"], [None, -2, 3], "inputs/0/shape/1")]:
        document("schema-" + where.replace("/", "-"), setting(keys, value), "schema violation at " + where)
    # the document against the container
    document("unknown-op", node("pi_head", "op", "fft2d"), "unknown op 'fft2d'", status="skipped")
    document("tensor-missing", lambda doc: doc["tensors"].append(
        {"name": "sbif/ghost", "dtype": "float32", "shape": [3], "origin": "constant"}),
        "tensor 'sbif/ghost' is listed in the document but missing from the file")
    document("stray-tensor", lambda doc: doc.update(tensors=[t for t in doc["tensors"] if t["name"] != "model/q/w:0"]),
             "the file holds tensors the document does not list: model/q/w:0")
    document("tensor-dtype", lambda doc: tensor_entry(doc, "model/pi/w:0").update(dtype="float64"),
             "tensor 'model/pi/w:0' is declared float64 but stored as float32")
    document("tensor-shape", lambda doc: tensor_entry(doc, "model/pi/w:0").update(shape=[2, 4]),
             "tensor 'model/pi/w:0' is declared with shape [2, 4] but stored with shape [4, 2]")
    document("tensor-twice", lambda doc: doc["tensors"].append(dict(doc["tensors"][0])), "is already defined")
    # the graph
    document("used-before-defined", lambda doc: doc["graph"].append(doc["graph"].pop(0)), "before it is defined")
    document("never-defined", node("pi_head", "inputs", lambda inputs: ["model/pi_fc9/act"] + inputs[1:]),
             "uses 'model/pi_fc9/act' before it is defined")
    document("duplicate-value", lambda doc: find_node(doc, "pi_head").update(outputs=doc["graph"][0]["outputs"][:1]),
             "is already defined")
    document("output-shadows-tensor", node("pi_head", "outputs", ["model/pi/w:0"]),
             "output name 'model/pi/w:0' is already defined")
    document("input-shadows-tensor", lambda doc: doc["inputs"][1].update(name="model/pi/b:0"),
             "input name 'model/pi/b:0' is already defined")
    document("output-never-computed", lambda doc: doc["outputs"].append(
        {"name": "advantage", "dtype": "float32", "shape": [None]}), "output 'advantage' is never computed by the graph")
    document("output-wrong-type", lambda doc: next(o for o in doc["outputs"] if o["name"] == "action").update(
        shape=[None, 3]), "output 'action' is declared float32[B,3] but the graph computes float32[B,2]")
    document("predict-unknown-output", setting(["predict", "deterministic_action"], "std_undeclared"),
             "predict refers to 'std_undeclared', which is not a declared output")
    document("linear-two-inputs", node("pi_head", "inputs", lambda inputs: inputs[:2]), "(linear): takes 3 inputs, got 2")
    document("exp-no-inputs", node("exp", "inputs", []), "(exp): takes 1 inputs, got 0")
    document("constant-with-input", node("constant", "inputs", ["obs"]), "(constant): takes 0 inputs, got 1")
    document("exp-two-outputs", node("exp", "outputs", lambda outputs: outputs + ["another"]), "(exp): has 1 outputs, got 2")
    for attrs, fragment in [({"axis": "1"}, "attribute 'axis' of op squeeze has the wrong type (\"1\")"),
                            ({"axis": 1.0}, "attribute 'axis' of op squeeze has the wrong type (1.0)"),
                            ({"axis": True}, "attribute 'axis' of op squeeze has the wrong type (true)"),
                            ({}, "op squeeze needs attribute 'axis'"),
                            ({"axis": 1, "keepdims": True}, "op squeeze has no attribute keepdims"),
                            ({"axis": 5}, "axis 5 is out of range for rank 2"),
                            ({"axis": 2 ** 70}, "axis 1180591620717411303424 is out of range for rank 2"),
                            ({"axis": 0}, "squeeze cannot remove the batch dimension")]:
        document("squeeze-attrs", node("squeeze", "attrs", attrs), fragment)
    document("cast-to", node("obs_cast", "attrs", {"to": "complex64"}), "cast to unknown dtype 'complex64'")
    document("constant-value", node("constant", "attrs", {"value": "0", "dtype": "float32"}),
             "attribute 'value' of op constant has the wrong type")
    document("constant-dtype", node("constant", "attrs", {"value": 0.0, "dtype": "half"}), "constant of unknown dtype 'half'")
    document("constant-range", node("constant", "attrs", {"value": 300, "dtype": "uint8"}),
             "constant value 300 is out of range for uint8")
    for value, dtype, fragment in [(2.5, "int32", "constant value 2.5 is not an integer, as dtype int32 needs"),
                                   (1, "bool", "constant of dtype bool takes true or false, not a number"),
                                   (2 ** 63, "int64", "constant value 9223372036854775808 is out of range for int64"),
                                   (2.0 ** 63, "int64", "is out of range for int64"),
                                   (-129.0, "int8", "constant value -129.0 is out of range for int8"),
                                   (int(sys.float_info.max) + 1, "float64", "is not finite as a double")]:
        document("constant-pair", node("constant", "attrs", {"value": value, "dtype": dtype}), fragment)
    document("document-number-beyond-double", lambda doc: json.dumps(doc)[:-1] + ', "x": -2.5E+400}',
             "the number -2.5E+400 at byte")
    for op in ("argmax", "softmax", "reduce_mean"):
        document("along-the-batch", add_node(op, ["value"]),
                 "({}): {} works along the last axis, which of float32[B] is the batch".format(op, op))
    document("argmax-of-bool", lambda doc: (add_node("less", ["mean", "mean"])(doc),
                                            add_node("argmax", ["less/out"])(doc)) and None,
             "(argmax): input has dtype bool, expected one of")
    document("ill-typed", node("pi_head", "inputs", lambda inputs: [inputs[0], "model/q/w:0", inputs[2]]),
             "(linear): linear shapes do not chain")
    # inputs and the observation space
    document("observation-dtype", lambda doc: doc["inputs"][0].update(dtype="float64"),
             "observation input is float64[B,2,3] but a box observation space needs float32[B,2,3]")
    document("bound-length", setting(["observation_space", "low"], [0.0] * 5),
             "a Box bound has 5 values for a space of 6 elements")
    for bound in (10 ** 400, [0, 1, 2, 3, 4, -10 ** 400]):
        document("bound-too-large", setting(["observation_space", "high"], bound), "too large for a float")

    def space_bomb(doc):
        doc["observation_space"].update(shape=[2 ** 20, 2 ** 20], low=-1.5, high="inf")
        doc["inputs"][0]["shape"] = [None, 2 ** 20, 2 ** 20]

    document("space-shape-bomb", space_bomb, "needs more than 268435456 bytes at batch 1")
    for dim in (2 ** 63, 2 ** 64, 10 ** 30):
        document("dimension-too-large", lambda doc, dim=dim: (doc["observation_space"].update(shape=[2, dim]),
                                                              doc["inputs"][0].update(shape=[None, 2, dim])) and None,
                 "input 'obs' has shape")
    document("noise-without-distribution", lambda doc: doc["inputs"][1].pop("distribution") and None,
             "schema violation at inputs/1: 'distribution' is a required property")
    document("distribution-on-observation", lambda doc: doc["inputs"][0].update(distribution="uniform"),
             "schema violation at inputs/0: Additional properties are not allowed ('distribution' was unexpected)")
    for shape in ([2], []):
        document("noise-without-batch", lambda doc, shape=shape: doc["inputs"][1].update(shape=shape),
                 "input 'noise_normal' has shape {}: a graph input has the batch (null)".format(shape))
    document("output-without-batch", lambda doc: (add_node("constant", [], value=0.0, dtype="float32")(doc),
                                                  doc["outputs"].append({"name": "constant/out", "dtype": "float32",
                                                                         "shape": []})) and None,
             "output 'constant/out' has shape []: a graph output has the batch (null)")
    document("no-observation", lambda doc: doc["inputs"][0].update(kind="noise", distribution="normal"),
             "no observation input named 'obs'")
    # ranks above 32 break a rule of the format (SPEC section 3.5), so they are a DocumentError, not "unsupported"
    document("input-rank-33", lambda doc: doc["inputs"].append({"name": "extra", "kind": "noise", "dtype": "float32",
                                                                 "shape": [None] + [1] * 32, "distribution": "normal"}),
             "input 'extra' has rank 33, above the limit of 32 dimensions")

    def rank_33(doc):
        add_node("constant", [], value=1.0, dtype="float32")(doc)
        add_node("reshape", ["constant/out"], shape=[1] * 32)(doc)
        add_node("expand_dims", ["reshape/out"], axis=0)(doc)

    document("value-rank-33", rank_33, "(expand_dims): a value of rank 33 is above the limit of 32 dimensions")
    discrete = write_sbif(os.path.join(directory, "discrete.sbif"), "discrete", "discrete", "none")
    cases.append(("one-hot-depth", rewrite_document(discrete, target("one-hot-depth"), lambda doc: find_node(
        doc, "one_hot")["attrs"].update(depth=2 ** 64)), "errored", "(one_hot): a dimension exceeds"))
    return cases


def test_corrupt_files_are_refused_by_name_under_sanitizers(c_build, tmp_path, valid_bytes):
    """Each file is answered `errored` (`skipped` for a newer format version or an unknown op, as the protocol
    says) with a message naming the defect; the sanitizers report nothing and no allocation exceeds 64 MiB."""
    cases = corrupt_files(str(tmp_path), valid_bytes)
    requests = [json.dumps({"id": i, "type": "run", "model": path, "inputs": {}, "outputs": ["action"]})
                for i, (_, path, _, _) in enumerate(cases)]
    answers, code, reports = converse(requests, str(tmp_path / "logs"))
    assert code == 0 and reports == "", reports
    assert answers[-1] == {"type": "bye"} and len(answers) == len(cases) + 1
    wrong = ["{} ({}): expected {} with {!r}, got {}".format(i, name, status, fragment, answers[i])
             for i, (name, _, status, fragment) in enumerate(cases)
             if answers[i].get("id") != i or answers[i]["type"] != status or fragment not in answer_text(answers[i])]
    assert not wrong, "\n".join(wrong)


def test_sbif_check_prints_one_line_per_file(c_build, tmp_path, valid_bytes):
    cases = corrupt_files(str(tmp_path), valid_bytes)
    bad = subprocess.run([CHECK] + [path for _, path, _, _ in cases], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    lines = bad.stderr.splitlines()
    assert bad.returncode == 1 and bad.stdout == "" and len(lines) == len(cases)
    assert all(line.startswith(path + ": ") for line, (_, path, _, _) in zip(lines, cases))
    good = subprocess.run([CHECK, CARTPOLE], stdout=subprocess.PIPE, universal_newlines=True)
    assert good.returncode == 0 and good.stdout.startswith(CARTPOLE + ": ok (14 tensors, 2 inputs, 19 nodes")


def test_random_corruptions_are_answered_under_sanitizers(c_build, tmp_path, valid_bytes):
    """Bytes flipped anywhere in a valid file (the header's JSON, the document, the weights): every request gets an
    answer, and the sanitizers report nothing."""
    rng = random.Random(8)
    requests = []
    observation = {"dtype": "float32", "shape": [2, 2, 3], "data": [0.5, -1.0, 2.0, 0.0, 1.5, -0.25] * 2}
    for index in range(300):
        data = bytearray(valid_bytes)
        for _ in range(rng.choice([1, 2, 3, 8])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = str(tmp_path / "mutant{}.sbif".format(index))
        with open(path, "wb") as handle:
            handle.write(bytes(data))
        requests.append(json.dumps({"id": index, "type": "run", "model": path, "inputs": {"obs": observation},
                                    "outputs": ["action", "value"]}))
    answers, code, reports = converse(requests, str(tmp_path / "logs"))
    assert code == 0 and reports == "", reports
    assert [a.get("id") for a in answers[:-1]] == list(range(300)) and answers[-1] == {"type": "bye"}
    assert {a["type"] for a in answers[:-1]} == {"result", "errored"}


# -- malformed requests --------------------------------------------------------------------------------------------
def tensor(data, shape, dtype="float32"):
    return {"dtype": dtype, "shape": shape, "data": data}


def run_request(inputs, outputs=("action",), model=CARTPOLE):
    return {"type": "run", "model": model, "inputs": inputs, "outputs": list(outputs)}


def op_request(op, inputs, attrs=None, n_outputs=1):
    return {"type": "op", "op": op, "attrs": attrs or {}, "inputs": inputs, "n_outputs": n_outputs}


OBS = {"obs": tensor([0.1, 0.2, 0.3, 0.4], [1, 4])}
#: (request, answer type, message fragment); requests that are not dicts are sent as they are
MALFORMED = [
    ("not json", "errored", "malformed request"),
    (b"\xff\xfe", "errored", "malformed request: invalid UTF-8"),
    ("[1, 2]", "errored", "a message is a JSON object"),
    ("[" * 10000, "errored", "malformed request: JSON nested too deeply"),
    ({"type": "fly"}, "errored", "unknown request type"),
    ({"type": "predict", "model": CARTPOLE, "method": "predict"}, "skipped", "does not implement predict requests"),
    ({"type": "run", "inputs": {}, "outputs": []}, "errored", "run requests name the model file"),
    (run_request([], ["action"]), "errored", "'inputs', an object of tensors"),
    (dict(run_request(OBS), outputs="action"), "errored", "wanted output names in 'outputs'"),
    (run_request(OBS, model="/nowhere/model.sbif"), "errored", "cannot open /nowhere/model.sbif"),
    (run_request(OBS, model=GOLDEN), "errored", "cannot"),
    (run_request(OBS, ["nothing"]), "errored", "unknown output 'nothing'; this file computes value, action, action_sample"),
    (run_request(OBS, ["action", "action"]), "errored", "output 'action' is requested twice"),
    (run_request({}), "errored", "missing input(s): obs"),
    (run_request({"obs": tensor([0.1, 0.2, 0.3, 0.4], [1, 4], "float64")}), "errored",
     "input 'obs' must be float32, got float64"),
    (run_request({"obs": tensor([0.1, 0.2, 0.3], [1, 3])}), "errored", "input 'obs' must have shape [B,4], got [1,3]"),
    (run_request({"obs": tensor([0.0] * 8, [2, 4]), "noise_uniform": tensor([0.5] * 6, [3, 2])}, ["action_sample"]),
     "errored", "has batch size 3 but another input has 2"),
    (run_request({"obs": tensor([0.1, 0.2, 0.3], [1, 4])}), "errored", "the shape needs 4 elements, got 3"),
    (run_request({"obs": tensor([], [2 ** 40, 2 ** 40])}), "errored", "the shape needs more than"),
    (run_request({"obs": tensor([], [2 ** 62, 0])}), "errored", "input 'obs' must have shape [B,4], got"),
    (run_request({"obs": tensor([], [-1, 4])}), "errored", "non-negative integers"),
    (run_request({"obs": tensor([1.0] * 4, [1, 4], "complex64")}), "errored", "unknown dtype"),
    (run_request({"obs": dict(tensor([1.0] * 4, [1, 4]), order="C")}), "errored", "exactly dtype, shape and data"),
    (run_request({"obs\u0000": tensor([0.0] * 4, [1, 4])}), "errored", "input names may not contain U+0000"),
    (run_request({"obs": tensor(["NaN", 0.0, 0.0, 0.0], [1, 4])}), "errored", "element 0 is not a float"),
    (run_request({"obs": tensor([True, 0.0, 0.0, 0.0], [1, 4])}), "errored", "element 0 is not a float"),
    (op_request("argmax", [tensor([2 ** 31], [1], "int32")]), "errored", "element 0 is not a int32 value"),
    (op_request("argmax", [tensor([1.5], [1], "int64")]), "errored", "element 0 is not a int64 value"),
    (op_request("argmax", [tensor([1], [1], "bool")]), "errored", "bool tensors hold true/false"),
    (op_request("fft", []), "skipped", "unknown op 'fft': this runtime implements add, argmax"),
    ({"type": "op", "inputs": []}, "errored", "op requests need 'op'"),
    (op_request("add", [tensor([1.0], [1])]), "errored", "op add takes 2 inputs, got 1"),
    (op_request("concat", [], {"axis": 0}), "errored", "op concat takes at least 1 inputs, got 0"),
    (op_request("squeeze", [tensor([1.0], [1])]), "errored", "op squeeze needs attribute 'axis'"),
    (dict(op_request("neg", [tensor([1.0], [1])]), attrs=[1]), "errored", "attrs must be an object"),
    (op_request("neg", [tensor([1.0], [1])], n_outputs=0), "errored", "n_outputs must be an integer"),
    (op_request("neg", [tensor([1.0], [1])], n_outputs=2), "errored", "op neg has 1 output, 2 requested"),
    (op_request("add", [tensor([1.0, 2.0], [2]), tensor([1.0, 2.0, 3.0], [3])]), "errored",
     "shapes [2] and [3] do not broadcast"),
    (op_request("add", [tensor([True], [1], "bool"), tensor([True], [1], "bool")]), "errored",
     "arithmetic on bool operands is not defined"),
    (op_request("add", [tensor([1.0], [1]), tensor([1], [1], "int32")]), "errored", "operands have different dtypes"),
    (op_request("split", [tensor([1.0] * 4, [1, 4])], {"sizes": [1, 2], "axis": 1}, 2), "errored",
     "split sizes [1, 2] do not add up to dimension 1 of float32[1,4]"),
    (op_request("split", [tensor([1.0] * 4, [1, 4])], {"sizes": [2, 2], "axis": 1}, 3), "errored",
     "must be positive and one per output (3)"),
    (op_request("reshape", [tensor([1.0] * 4, [4])], {"shape": [2 ** 40, 2 ** 40]}), "errored",
     "cannot reshape float32[4] to [1099511627776, 1099511627776]"),
    (op_request("one_hot", [tensor([1] * 1000, [1000], "int32")], {"depth": 2 ** 40}), "errored",
     "this runtime's limit for one value"),
    (op_request("one_hot", [tensor([1], [1], "float32")], {"depth": 3}), "errored", "input has dtype float32"),
    (op_request("conv2d", [tensor([1.0] * 4, [1, 2, 2, 1]), tensor([1.0], [1, 1, 1, 1]), tensor([0.0], [1])],
                {"strides": [0, 1], "padding": "VALID"}), "errored", "strides must be two positive integers, got [0, 1]"),
    (op_request("conv2d", [tensor([1.0] * 4, [1, 2, 2, 1]), tensor([1.0], [1, 1, 1, 1]), tensor([0.0], [1])],
                {"strides": [1, 1], "padding": "FULL"}), "errored", "padding must be VALID or SAME, got 'FULL'"),
    (op_request("conv2d", [tensor([1.0] * 4, [1, 2, 2, 1]), tensor([1.0] * 9, [3, 3, 1, 1]), tensor([0.0], [1])],
                {"strides": [1, 1], "padding": "VALID"}), "errored", "is smaller than the kernel"),
    (op_request("argmax", [tensor([], [2, 0])]), "errored", "argmax needs a last axis of at least one element"),
    (op_request("stack", [tensor([1.0], [1]), tensor([1.0, 2.0], [2])], {"axis": 0}), "errored",
     "stack inputs must share dtype and shape"),
    (op_request("cast", [tensor([1.0], [1])], {"to": "complex64"}), "errored", "cast to unknown dtype 'complex64'"),
    (op_request("constant", [], {"value": 300, "dtype": "uint8"}), "errored", "constant value 300 is out of range"),
    (op_request("inverse_cdf_sample", [tensor([0.5, 0.5], [1, 2]), tensor([0.5, 0.5], [1, 2])]), "errored",
     "needs u of shape p.shape[:-1] + (1,)"),
    (op_request("matmul", [tensor([1.0] * 2, [1, 2]), tensor([1.0] * 3, [3, 1])]), "errored", "matmul needs x [B, K]"),
    (op_request("layer_norm", [tensor([1.0] * 2, [1, 2]), tensor([1.0], [1]), tensor([0.0], [1])], {"epsilon": 1}),
     "errored", "attribute 'epsilon' of op layer_norm has the wrong type (1)"),
]


def test_malformed_requests_are_answered_by_name_under_sanitizers(c_build, tmp_path):
    lines = [item if isinstance(item, (str, bytes)) else json.dumps(dict(item, id=i))
             for i, (item, _, _) in enumerate(MALFORMED)]
    lines.insert(3, "   ")  # a blank line is not a request: no answer
    lines.append(json.dumps(dict(run_request(OBS), id="last")))
    answers, code, reports = converse(lines, str(tmp_path / "logs"))
    assert code == 0 and reports == "", reports
    assert len(answers) == len(MALFORMED) + 2 and answers[-1] == {"type": "bye"}
    wrong = ["{}: expected {} with {!r}, got {}".format(str(item)[:80], status, fragment, answer)
             for (item, status, fragment), answer in zip(MALFORMED, answers)
             if answer["type"] != status or fragment not in answer_text(answer)]
    assert not wrong, "\n".join(wrong)
    assert all(answer["id"] == (i if isinstance(item, dict) else None)
               for i, ((item, _, _), answer) in enumerate(zip(MALFORMED, answers)))
    assert answers[-2]["id"] == "last" and answers[-2]["type"] == "result"


ZOO_MODELS = zoo_models()


def test_zoo_is_present():
    require_zoo(ZOO_MODELS)


@pytest.mark.parametrize("relative", ZOO_MODELS)
def test_zoo_model(relative, c_runtime, reference, tmp_path):
    """Every real zoo model (safe export, with the zoo's normalization) against the NumPy reference."""
    from sbif.export import export

    source = os.path.join(ZOO, relative)
    sbif_file, _ = export(source)
    path = str(tmp_path / "model.sbif")
    sbif_file.write(path)
    report = run_suite([OracleSource([path], reference)], c_runtime, checks=ORACLE_CHECKS,
                       config=Config(batches=[1, 64]))
    assert report.ok, report.render()
    assert report.counts()["pass"] >= 2, report.render()


# -- sizes and exact integers (issue #18) -------------------------------------------------------------------------
def many_entries_file(path, tensors):
    """A file whose header lists `tensors` empty U8 tensors (about 58 bytes each) and no SBIF document."""
    parts = [b'"__metadata__":{"format":"sbif"}']
    parts += [b'"t%d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}' % index for index in range(tensors)]
    header = b"{" + b",".join(parts) + b"}"
    with open(str(path), "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
    return str(path), len(header)


def check_under_address_limit(path, limit_bytes):
    """sbif-check on one file with its address space limited (RLIMIT_AS): (exit status, output)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    result = subprocess.run([CHECK, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=limit,
                            timeout=60)
    return result.returncode, result.stdout.decode("utf-8", "replace")


def test_a_header_of_1_5_million_empty_tensors_is_refused_within_bounded_memory(c_build, tmp_path):
    """Issue #18: 87 MB of empty entries. Counted before the header is parsed (the parse takes 24 bytes a JSON value,
    6.7 times the header), so the refusal fits in 64 MiB plus four times the header (SPEC section 2's limit)."""
    path, size = many_entries_file(tmp_path / "many.sbif", 1500000)
    status, output = check_under_address_limit(path, 64 * 1024 * 1024 + 4 * size)
    assert status == 1 and "FileFormatError" in output and "at most 16384 tensors" in output, output


@pytest.mark.parametrize("tensors, refused", [(16384, False), (16385, True)])
def test_the_header_entry_limit(c_build, tmp_path, tensors, refused):
    path, _ = many_entries_file(tmp_path / "entries.sbif", tensors)
    status, output = check_under_address_limit(path, 256 * 1024 * 1024)
    assert status == 1
    if refused:
        assert "FileFormatError" in output and "16384" in output, output
    else:
        assert "not an SBIF file" in output or "DocumentError" in output, output


def test_a_batch_over_the_run_time_limit_is_refused_before_allocating(c_build, tmp_path):
    """A value of 2^27 bytes a row (declared output `wide`): 33 rows would take 4.1 GiB. The sanitized build fails any
    allocation above 64 MiB, so the refusal comes before the first."""
    from tests.test_runtime import wide_output_file

    path = wide_output_file(tmp_path)
    request = {"id": 1, "type": "run", "model": path, "outputs": ["wide"],
               "inputs": {"obs": {"dtype": "float32", "shape": [33, 4], "data": [0.0] * 132}}}
    answers, status, reports = converse([json.dumps(request)], str(tmp_path / "logs"))
    assert status == 0 and not reports, reports
    message = answer_text(answers[-2])
    assert answers[-2]["type"] == "errored" and "a batch of 33 rows would make 'wide'" in message, answers
    assert "use batches of at most 32 rows" in message


CAST_EDGES = np.array([np.nan, np.inf, -np.inf, 1e10, 3e9, 300.7, -1.9, -2147483648.9, 2.0 ** 63, -2.0 ** 63],
                      np.float64)


@pytest.mark.parametrize("to", ["int8", "int16", "int32", "int64", "uint8", "uint16"])
def test_casts_of_nan_inf_and_out_of_range_floats_agree_with_the_reference(c_runtime, reference, to):
    """spec/ops.md cast: through int64 or int32, the lowest value where the truncation does not fit, then wrapped."""
    for x in (CAST_EDGES, CAST_EDGES.astype(np.float32)):
        ours, expected = (runtime.op("cast", [x], {"to": to}) for runtime in (c_runtime, reference))
        assert ours.ok and expected.ok, (ours, expected)
        assert np.array_equal(ours.outputs["0"], expected.outputs["0"]), (x.dtype, ours.outputs, expected.outputs)


# -- one reader semantics (issue #18): files every reader reads alike -----------------------------------------------
def _edited_base(kind, *change):
    """A maker of one edit of the reader-refusal corpus's base file: `kind` is 'document' (an edit function), or
    'document_text' / 'header_text' (an (old, new) substitution of the JSON text)."""
    def make(base):
        if kind == "document":
            return base.with_document(change[0])
        return getattr(base, "with_" + kind)(change)
    return make


def _nodes(*nodes):
    """A document edit appending (op, inputs, output, attrs) nodes that nothing uses."""
    from conformance.malformed.make_corpus import add_node

    def edit(document):
        for op, inputs, output, attrs in nodes:
            add_node(op, inputs, output, **attrs)(document)
    return edit


#: (id, maker of the file from the corpus base, the class every reader refuses it with, or None: it loads). The
#: corpus (conformance/malformed, files 79-88) holds one file per rule; these are the rest of each rule's places.
READER_SEMANTICS = [
    ("int-attribute-1.0", _edited_base("document", _nodes(("expand_dims", ["obs"], "e", {"axis": 1.0}))),
     "DocumentError"),
    ("one-hot-depth-2.0", _edited_base("document", _nodes(("one_hot", ["action"], "h", {"depth": 2.0}))),
     "DocumentError"),
    ("split-sizes-1.0", _edited_base("document", _nodes(("split", ["logits"], "s", {"sizes": [1.0, 1], "axis": 1}))),
     "DocumentError"),
    ("n-exponent", _edited_base("document_text", '"n":2', '"n":2e0'), "DocumentError"),
    ("header-offset-fraction", _edited_base("header_text", '"data_offsets":[0,12]', '"data_offsets":[0,12.0]'),
     "FileFormatError"),
    # an empty tensor the document does not list: a reader that reads its dimension -0 as 0 finds the stray tensor
    ("header-dimension-minus-0", _edited_base("header_text", '"model/pi/b:0":{',
                                              '"z":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]},"model/pi/b:0":{'),
     "DocumentError"),
    ("float-attribute-1.0", _edited_base("document", _nodes(
        ("layer_norm", ["logits", "model/pi/b:0", "model/pi/b:0"], "n", {"epsilon": 1.0}))), None),
    ("format-version-401-digits", _edited_base("document_text", '"format_version":1', '"format_version":' + "1" * 401),
     "UnsupportedError"),
    ("lone-surrogate-in-a-document-key", _edited_base("document_text", '"policy_class":', '"\\udfff":0,"policy_class":'),
     "DocumentError"),
    ("lone-surrogate-in-a-header-key", _edited_base("header_text", '"format":', '"\\ud800x":"","format":'),
     "FileFormatError"),
    ("surrogate-pair", _edited_base("document_text", '"producer":"', '"producer":"\\ud83d\\ude00'), None),
    ("escaped-backslash-before-u", _edited_base("document_text", '"producer":"', '"producer":"\\\\ud800'), None),
    ("u0000-in-producer", _edited_base("document_text", '"producer":"', '"producer":"\\u0000'), None),
    ("u0000-in-a-cast-dtype", _edited_base("document", _nodes(("cast", ["obs"], "c", {"to": "float32\x00x"}))),
     "DocumentError"),
    ("u0000-in-a-name-before-an-unknown-op", _edited_base("document", _nodes(
        ("sparsemax", ["logits"], "m", {}), ("softmax", ["logits"], "p\x00", {}))), "DocumentError"),
    ("u0000-in-predict", _edited_base("document_text", '"deterministic_action":"action"',
                                      '"deterministic_action":"action\\u0000"'), "DocumentError"),
    ("op-with-a-final-newline", _edited_base("document_text", '"op":"softmax"', '"op":"softmax\\n"'), "DocumentError"),
]


@pytest.mark.parametrize("make, error_class", [case[1:] for case in READER_SEMANTICS],
                         ids=[case[0] for case in READER_SEMANTICS])
def test_the_c_reader_reads_integers_strings_and_names_as_the_reference(c_runtime, tmp_path, make, error_class):
    """SPEC sections 1 to 3: integers are literals without fraction or exponent, lone surrogates are refused, -0 is 0,
    U+0000 is in no name; the C reader and the reference (and the Node one, tests/conformance/test_node.py) decide
    alike, with the same class."""
    from conformance.malformed.make_corpus import build_base
    from conformance.protocol import PythonRuntime

    path = str(tmp_path / "case.sbif")
    with open(path, "wb") as handle:
        handle.write(make(build_base()))
    ours, reference = c_runtime.load(path), PythonRuntime().load(path)
    assert (ours.status, ours.error_class) == (reference.status, reference.error_class), (ours, reference)
    assert reference.error_class == error_class, reference


# -- the document's size (issue #18): 2^20 JSON values, counted before parsing, and 2^14 graph nodes ----------------
@pytest.mark.parametrize("case_id, error_class", [case[::2] for case in SIZE_LIMIT_CASES],
                         ids=[case[0] for case in SIZE_LIMIT_CASES])
def test_the_c_reader_applies_the_document_size_limits_as_the_reference(c_runtime, tmp_path, case_id, error_class):
    """SPEC section 3, at each limit and one beyond: the same decision and class as the reference (and Node)."""
    from conformance.protocol import PythonRuntime

    path = size_limit_file(str(tmp_path), case_id)
    ours, reference = c_runtime.load(path), PythonRuntime().load(path)
    assert (ours.status, ours.error_class) == (reference.status, reference.error_class), (ours, reference)
    assert reference.error_class == error_class, reference


def test_a_document_of_many_nodes_is_refused_within_bounded_memory(c_build, tmp_path):
    """Issue #18: a document of 200,000 tiny nodes (12 MB; a million took 528 MB in sbif-check). Its values are
    counted on the text before the parser builds a node per value, so the refusal fits in 64 MiB plus four times the
    file."""
    from conformance.malformed.make_corpus import build_base

    path = str(tmp_path / "nodes.sbif")
    with open(path, "wb") as handle:
        handle.write(with_many_nodes(200000)(build_base()))
    status, output = check_under_address_limit(path, 64 * 1024 * 1024 + 4 * os.path.getsize(path))
    assert status == 1 and "DocumentError" in output and "more than 1048576 JSON values" in output, output


# -- format version 2 (SPEC sections 3, 3.1, 3.2, 3.4, 5.9): every reader decides alike, and version 2 runs as 1 -----
def _schema_algorithms(version):
    from sbif.format.document import SCHEMA_PATHS

    with open(SCHEMA_PATHS[version], encoding="utf-8") as handle:
        return json.load(handle)["definitions"]["provenance"]["properties"]["algorithm"]["enum"]


#: the algorithm names version 2 adds (SB3's and sb3-contrib's), as its schema lists them
SB3_ALGORITHMS = [name for name in _schema_algorithms(2) if name not in _schema_algorithms(1)]


@functools.lru_cache(maxsize=None)
def lstm_base():
    """conformance.models' LSTM example as a corpus Base (the corpus's base has no recurrent state): its state input
    is float32 [B, 8], an LSTM of 4 units' c and h."""
    from conformance.malformed.make_corpus import Base
    from tests.factories import read_raw

    with tempfile.TemporaryDirectory() as directory:
        path = write_model(EXAMPLES["lstm"], directory)
        header, data = read_raw(path)
        with open(path, "rb") as handle:
            return Base(handle.read(), header, data)


def _v2(framework, *edits, **predict):
    """A maker of the corpus base as a version-2 document of `framework` (conformance/malformed/make_corpus.py's
    version_2, with `predict`'s members), then `edits` applied; `lstm=True` starts from the LSTM example instead."""
    from conformance.malformed.make_corpus import version_2

    lstm = predict.pop("lstm", False)

    def edit(document):
        version_2(framework, **predict)(document)
        for each in edits:
            each(document)

    return lambda base: (lstm_base() if lstm else base).with_document(edit)


def _v1(*edits):
    """A maker of the version-1 corpus base with `edits` applied."""
    def edit(document):
        for each in edits:
            each(document)
    return lambda base: base.with_document(edit)


def _set(path, value):
    """An edit setting the member at `path` (keys from the document's root)."""
    def edit(document):
        holder = document
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
    return edit


def _drop(path):
    def edit(document):
        holder = document
        for key in path[:-1]:
            holder = holder[key]
        del holder[path[-1]]
    return edit


def _input(name, dtype, shape, kind):
    return lambda document: document["inputs"].append({"name": name, "dtype": dtype, "shape": shape, "kind": kind})


def _observation(space, dtype):
    """An edit giving the base the observation space `space` and an obs input of `dtype` (the graph casts obs to
    float32 first, so any dtype runs)."""
    def edit(document):
        shape = [None] + ([space["n"]] if "n" in space else space["shape"])
        document["observation_space"] = space
        document["inputs"][0].update(dtype=dtype, shape=shape)
    return edit


def _state_layout(divisor, **layout):
    """An edit adding predict.recurrent.state_layout: one layer whose units are the state's columns / `divisor`."""
    def edit(document):
        recurrent = document["predict"]["recurrent"]
        columns = next(i for i in document["inputs"] if i["name"] == recurrent["state_input"])["shape"][1]
        recurrent["state_layout"] = dict({"kind": "lstm", "layers": 1, "hidden": columns // divisor}, **layout)
    return edit


def _dict(*edits, **predict):
    """A maker of the corpus's dict-observation base (make_corpus.dict_observation: keys 'a', a Box(3), and 'b', a
    Discrete(2); inputs obs/a and obs/b; SB3 contract) with `predict`'s members, then `edits` applied;
    `framework="sb2"` makes it under the SB2 contract instead."""
    from conformance.malformed.make_corpus import dict_observation

    framework = predict.pop("framework", "sb3")

    def edit(document):
        dict_observation(framework)(document)
        document["predict"].update(predict)
        for each in edits:
            each(document)

    return lambda base: base.with_document(edit)


def _key_space(index, space, dtype=None, shape=None):
    """An edit giving the dict base's `index`-th key the space `space` (None: keeping its own), and its input `dtype`
    and `shape` if given."""
    def edit(document):
        entry = document["observation_space"]["spaces"][index]
        entry["space"] = entry["space"] if space is None else space
        observation = [each for each in document["inputs"] if each["kind"] == "observation"][index]
        observation.update({name: value for name, value in (("dtype", dtype), ("shape", shape)) if value is not None})
    return edit


def _rename_key(index, key):
    """An edit renaming the dict base's `index`-th key and its observation input (obs/KEY) to match."""
    def edit(document):
        old = "obs/" + document["observation_space"]["spaces"][index]["key"]
        document["observation_space"]["spaces"][index]["key"] = key
        for each in document["inputs"]:
            if each["name"] == old:
                each["name"] = "obs/" + key
        for each in document["graph"]:
            each["inputs"] = ["obs/" + key if name == old else name for name in each["inputs"]]
    return edit


def _drop_key(index):
    """An edit removing the dict base's `index`-th key and its observation input (which no node may read)."""
    def edit(document):
        key = document["observation_space"]["spaces"].pop(index)["key"]
        document["inputs"] = [each for each in document["inputs"] if each["name"] != "obs/" + key]
    return edit


def _vecnormalize(**members):
    """An edit adding provenance.vecnormalize (SPEC section 5.7) with `members` beside clip_obs and epsilon."""
    return _set(["provenance", "vecnormalize"], dict({"clip_obs": 10.0, "epsilon": 1e-8}, **members))


MASK = _input("action_mask", "bool", [None, 2], "action_mask")
UNKNOWN_OP = _nodes(("sparsemax", ["logits"], "sparse", {}))
BOX_UINT8 = {"kind": "box", "shape": [3], "dtype": "uint8", "low": 0, "high": 255}
MULTI_BINARY = {"kind": "multi_binary", "n": 3}
DICT_SPACE = {"kind": "dict", "spaces": [{"key": "a", "space": BOX_UINT8}]}

#: (id, maker of the file from the corpus base, the class every reader refuses it with, or None: it loads). The corpus
#: (conformance/malformed, files 97-113, and 21 for version 3) holds one file per rule; these are the rest.
VERSION_2 = [
    ("sb2-contract", _v2("sb2"), None),
    ("sb3-contract", _v2("sb3"), None),
    ("sb3-mask-and-shared-noise", _v2("sb3", MASK, action_mask="action_mask", shared_noise=["noise_uniform"]), None),
    ("sb3-channels-last-and-no-shared-noise", _v2("sb3", channels_last=True, shared_noise=[]), None),
    ("framework-version-string", _v2("sb3", _set(["provenance", "framework_version"], "2.9.2")), None),
    ("framework-version-null", _v2("sb3", _set(["provenance", "framework_version"], None)), None),
    ("framework-version-number", _v2("sb3", _set(["provenance", "framework_version"], 2)), "DocumentError"),
    ("framework-sb4", _v2("sb3", _set(["provenance", "framework"], "sb4")), "DocumentError"),
    ("contract-sb1", _v2("sb2", _set(["predict", "contract"], "sb1")), "DocumentError"),
    ("version-1-with-contract", _v1(_set(["predict", "contract"], "sb2")), "DocumentError"),
    ("version-1-with-framework", _v1(_set(["provenance", "framework"], "sb2")), "DocumentError"),
    ("version-1-with-framework-version", _v1(_set(["provenance", "framework_version"], None)), "DocumentError"),
    ("version-1-with-an-sb3-algorithm", _v1(_set(["provenance", "algorithm"], "PPO")), "DocumentError"),
    ("version-1-with-an-action-mask-input", _v1(MASK), "DocumentError"),
    ("version-1-with-shared-noise", _v1(_set(["predict", "shared_noise"], [])), "DocumentError"),
    ("version-2-algorithm-ppo3", _v2("sb3", _set(["provenance", "algorithm"], "PPO3")), "DocumentError"),
    ("channels-last-not-a-boolean", _v2("sb3", channels_last="yes"), "DocumentError"),
    ("channels-last-under-sb2", _v2("sb2", channels_last=False), "DocumentError"),
    ("action-mask-named-empty", _v2("sb3", action_mask=""), "DocumentError"),
    ("action-mask-under-sb2", _v2("sb2", MASK), "DocumentError"),
    ("action-mask-input-unnamed", _v2("sb3", MASK), "DocumentError"),
    ("action-mask-names-obs", _v2("sb3", action_mask="obs"), "DocumentError"),
    ("action-mask-names-an-absent-input", _v2("sb3", action_mask="mask"), "DocumentError"),
    ("two-action-masks", _v2("sb3", MASK, _input("mask_2", "bool", [None, 2], "action_mask"),
                             action_mask="action_mask"), "DocumentError"),
    ("action-mask-rank-3", _v2("sb3", _input("action_mask", "bool", [None, 2, 1], "action_mask"),
                               action_mask="action_mask"), "DocumentError"),
    ("deterministic-default-true-under-sb3", _v2("sb3", _set(["predict", "deterministic_default"], True)),
     "DocumentError"),
    ("shared-noise-not-an-array", _v2("sb3", shared_noise="noise_uniform"), "DocumentError"),
    ("shared-noise-twice", _v2("sb3", shared_noise=["noise_uniform", "noise_uniform"]), "DocumentError"),
    ("shared-noise-names-nothing", _v2("sb3", shared_noise=["nothing"]), "DocumentError"),
    ("shared-noise-names-a-tensor", _v2("sb3", shared_noise=["model/pi/w:0"]), "DocumentError"),
    ("uint8-box-float32-input-under-sb3", _v2("sb3", _observation(BOX_UINT8, "float32")), None),
    ("uint8-box-uint8-input-under-sb3", _v2("sb3", _observation(BOX_UINT8, "uint8")), "DocumentError"),
    ("uint8-box-uint8-input-under-sb2", _v2("sb2", _observation(BOX_UINT8, "uint8")), None),
    ("uint8-box-float32-input-under-sb2", _v2("sb2", _observation(BOX_UINT8, "float32")), "DocumentError"),
    ("vecnormalize-float64-input-under-sb3", _v2("sb3", _observation(BOX_UINT8, "float64"), _set(
        ["provenance", "vecnormalize"], {"clip_obs": 10.0, "epsilon": 1e-8})), None),
    ("multi-binary-float32-input-under-sb3", _v2("sb3", _observation(MULTI_BINARY, "float32")), None),
    ("multi-binary-int32-input-under-sb3", _v2("sb3", _observation(MULTI_BINARY, "int32")), "DocumentError"),
    ("multi-binary-int32-input-under-sb2", _v2("sb2", _observation(MULTI_BINARY, "int32")), None),
    ("state-layout-actor", _v2("sb3", _state_layout(2), lstm=True), None),
    ("state-layout-actor-and-critic", _v2("sb3", _state_layout(4), lstm=True), None),
    ("state-layout-wrong-columns", _v2("sb3", _state_layout(2, hidden=3), lstm=True), "DocumentError"),
    ("state-layout-beyond-int64", _v2("sb3", _state_layout(2, layers=10 ** 30, hidden=10 ** 30), lstm=True),
     "DocumentError"),
    ("state-layout-gru", _v2("sb3", _state_layout(2, kind="gru"), lstm=True), "DocumentError"),
    ("state-layout-no-layers", _v2("sb3", _state_layout(2, layers=0), lstm=True), "DocumentError"),
    ("state-layout-layers-2.0", _v2("sb3", _state_layout(2, layers=2.0, hidden=2), lstm=True), "DocumentError"),
    ("state-layout-extra-member", _v2("sb3", _state_layout(2, gates=4), lstm=True), "DocumentError"),
    ("state-layout-under-sb2", _v2("sb2", _state_layout(2), lstm=True), "DocumentError"),
    ("state-layout-in-version-1", lambda base: lstm_base().with_document(_state_layout(2)), "DocumentError"),
    # the order of SPEC section 7: the observation input before the graph (an unknown op), the contract after it
    ("unknown-op-before-shared-noise", _v2("sb3", UNKNOWN_OP, shared_noise=["obs"]), "UnsupportedError"),
    ("uint8-input-under-sb3-before-unknown-op", _v2("sb3", UNKNOWN_OP, _observation(BOX_UINT8, "uint8")),
     "DocumentError"),
    ("format-version-3", _v1(_set(["format_version"], 3), _set(["graph_v3"], [])), "UnsupportedError"),
    # dict observation spaces (SPEC section 3.2; the corpus's files 104-113 hold one per rule)
    ("dict-one-key", _dict(_drop_key(1)), None),
    ("dict-key-with-a-slash", _dict(_rename_key(0, "goal/x")), None),
    ("dict-key-obs", _dict(_rename_key(0, "obs")), None),
    ("dict-channels-last-keys", _dict(channels_last_keys=["a"]), None),
    ("dict-channels-last-keys-empty", _dict(channels_last_keys=[]), None),
    ("dict-multi-binary-key-float32", _dict(_key_space(1, MULTI_BINARY, "float32", [None, 3])), None),
    ("dict-multi-binary-key-int32", _dict(_key_space(1, MULTI_BINARY, "int32", [None, 3])), "DocumentError"),
    ("dict-multi-discrete-key", _dict(_key_space(1, {"kind": "multi_discrete", "nvec": [2, 3]}, "int32",
                                                 [None, 2])), None),
    ("dict-uint8-box-key-float32", _dict(_key_space(0, BOX_UINT8)), None),
    ("dict-uint8-box-key-uint8", _dict(_key_space(0, BOX_UINT8, "uint8")), "DocumentError"),
    ("dict-box-key-vecnormalize-float64", _dict(_key_space(0, BOX_UINT8, "float64"), _vecnormalize(keys=["a"])),
     None),
    ("dict-box-key-wrong-shape", _dict(_key_space(0, dict(BOX_UINT8, shape=[4]))), "DocumentError"),
    ("dict-box-key-bound-count", _dict(_key_space(0, dict(BOX_UINT8, low=[0, 0]))), "DocumentError"),
    ("dict-in-version-1", _v1(_set(["observation_space"], DICT_SPACE)), "DocumentError"),
    ("dict-channels-last-keys-not-an-array", _dict(channels_last_keys="a"), "DocumentError"),
    ("dict-channels-last-keys-not-strings", _dict(channels_last_keys=[1]), "DocumentError"),
    ("dict-key-empty", _dict(_rename_key(0, "")), "DocumentError"),
    ("dict-key-not-a-string", _dict(_set(["observation_space", "spaces", 0, "key"], 1)), "DocumentError"),
    ("dict-space-extra-member", _dict(_set(["observation_space", "order"], ["a", "b"])), "DocumentError"),
    ("dict-entry-extra-member", _dict(_set(["observation_space", "spaces", 0, "name"], "a")), "DocumentError"),
    ("dict-entry-without-space", _dict(_drop(["observation_space", "spaces", 0, "space"])), "DocumentError"),
    ("dict-spaces-not-an-array", _dict(_set(["observation_space", "spaces"], {"a": BOX_UINT8})), "DocumentError"),
    ("dict-kind-as-a-space", _dict(_set(["action_space"], DICT_SPACE)), "DocumentError"),
    ("dict-keys-twice-before-missing-inputs", _dict(_drop_key(1), _set(["observation_space", "spaces"], [
        {"key": "a", "space": BOX_UINT8}, {"key": "a", "space": BOX_UINT8}])), "DocumentError"),
    # the order of SPEC section 7: the observation inputs before the graph (an unknown op)
    ("dict-under-sb2-before-unknown-op", _dict(UNKNOWN_OP, framework="sb2"), "DocumentError"),
    ("dict-wrong-dtype-before-unknown-op", _dict(UNKNOWN_OP, _key_space(1, {"kind": "discrete", "n": 2}, "int64")),
     "DocumentError"),
    # VecNormalize statistics of a dict observation space (SPEC section 5.7: provenance.vecnormalize.keys)
    ("dict-vecnormalize-normalized-key-float64", _dict(_key_space(0, None, "float64"), _vecnormalize(keys=["a"])),
     None),
    ("dict-vecnormalize-no-key-listed", _dict(_vecnormalize(keys=[])), None),
    ("dict-vecnormalize-without-keys", _dict(_key_space(0, None, "float64"), _vecnormalize()), "DocumentError"),
    ("dict-vecnormalize-keys-name-a-discrete-key", _dict(_key_space(0, None, "float64"), _vecnormalize(
        keys=["a", "b"])), "DocumentError"),
    ("dict-vecnormalize-keys-name-a-key-twice", _dict(_key_space(0, None, "float64"), _vecnormalize(
        keys=["a", "a"])), "DocumentError"),
    ("dict-vecnormalize-keys-name-an-absent-key", _dict(_vecnormalize(keys=["c"])), "DocumentError"),
    ("dict-vecnormalize-with-frame-stack", _dict(_key_space(0, None, "float64"), _vecnormalize(
        keys=["a"], frame_stack=2)), "DocumentError"),
    ("dict-vecnormalize-normalized-key-float32", _dict(_vecnormalize(keys=["a"])), "DocumentError"),
    ("dict-vecnormalize-unlisted-key-float64", _dict(_key_space(0, None, "float64"), _vecnormalize(keys=[])),
     "DocumentError"),
    ("dict-vecnormalize-keys-not-strings", _dict(_vecnormalize(keys=[1])), "DocumentError"),
    ("dict-vecnormalize-keys-not-an-array", _dict(_vecnormalize(keys="a")), "DocumentError"),
    ("vecnormalize-keys-without-a-dict", _v2("sb3", _observation(BOX_UINT8, "float64"), _vecnormalize(
        keys=["obs"])), "DocumentError"),
    ("vecnormalize-keys-in-version-1", _v1(_observation(BOX_UINT8, "float64"), _vecnormalize(keys=[])),
     "DocumentError"),
    ("dict-vecnormalize-without-keys-before-unknown-op", _dict(UNKNOWN_OP, _vecnormalize()), "DocumentError"),
] + [("sb3-algorithm-" + name, _v2("sb3", _set(["provenance", "algorithm"], name)), None) for name in SB3_ALGORITHMS] + [
    ("sb3-algorithm-{}-in-version-1".format(name), _v1(_set(["provenance", "algorithm"], name)), "DocumentError")
    for name in SB3_ALGORITHMS]


@pytest.mark.parametrize("make, error_class", [case[1:] for case in VERSION_2], ids=[case[0] for case in VERSION_2])
def test_the_c_reader_reads_version_2_as_the_reference(c_runtime, tmp_path, make, error_class):
    """Version 2's schema and the SB3 contract's checks (SPEC sections 3 and 5.9): the C reader and the reference (and
    the Node one, tests/conformance/test_node.py) decide alike, with the same class."""
    from conformance.malformed.make_corpus import build_base
    from conformance.protocol import PythonRuntime

    path = str(tmp_path / "case.sbif")
    with open(path, "wb") as handle:
        handle.write(make(build_base()))
    ours, reference = c_runtime.load(path), PythonRuntime().load(path)
    assert (ours.status, ours.error_class) == (reference.status, reference.error_class), (ours, reference)
    assert reference.error_class == error_class, reference


def version_2_copy(path, directory):
    """`path`'s model as a version-2 document under the SB2 contract, written in `directory` (the same name)."""
    from conformance.malformed.make_corpus import version_2

    return rewrite_document(path, os.path.join(str(directory), os.path.basename(path)), version_2("sb2"))


def every_input(info, rows, rng):
    """A feed of `rows` rows for every input of the model: observations as ModelInfo draws them, noise from its
    distribution, states from N(0, 1), masks of 0 and 1."""
    feeds = {"obs": info.observations(rows, rng)}
    for entry in info.document["inputs"]:
        shape = [rows] + entry["shape"][1:]
        if entry["kind"] == "noise" and entry["distribution"] == "uniform":
            feeds[entry["name"]] = rng.random(shape).astype(np.float32)
        elif entry["kind"] in ("noise", "state"):
            feeds[entry["name"]] = rng.standard_normal(shape).astype(np.float32)
        elif entry["kind"] == "mask":
            feeds[entry["name"]] = rng.integers(0, 2, shape).astype(np.float32)
    return feeds


def assert_runs_as_version_1(runtime, original, copy, outputs):
    """`runtime` answers a version-2 copy with the same bits as the version-1 original, on every input."""
    info = ModelInfo(original)
    feeds = every_input(info, 5, np.random.default_rng(21))
    first, second = runtime.run(original, feeds, outputs), runtime.run(copy, feeds, outputs)
    assert first.ok and second.ok, (first, second)
    for name in outputs:
        np.testing.assert_array_equal(second.outputs[name], first.outputs[name], err_msg=name)


def test_a_version_2_sb2_file_runs_as_its_version_1_original(c_runtime, reference, example_models, tmp_path):
    """SPEC section 8: version 2 under the SB2 contract is version 1 plus members that change no computation; every
    family's file, rewritten so, gives the same outputs in C and in the reference as the original."""
    for path in sorted(example_models.values()):
        copy_path = version_2_copy(path, tmp_path)
        outputs = sorted(ModelInfo(path).outputs)
        for runtime in (c_runtime, reference):
            assert_runs_as_version_1(runtime, path, copy_path, outputs)


def masked_logits_file(directory):
    """A file under the SB3 contract whose graph reads its action mask: the corpus base with a bool [B, 2] input of
    kind action_mask, cast to float32 and multiplied with the logits into the declared output `masked_logits`."""
    from conformance.malformed.make_corpus import build_base

    make = _v2("sb3", MASK, _nodes(("cast", ["action_mask"], "action_mask/float", {"to": "float32"}),
                                   ("mul", ["logits", "action_mask/float"], "masked_logits", {})),
               lambda document: document["outputs"].append({"name": "masked_logits", "dtype": "float32",
                                                            "shape": [None, 2]}),
               action_mask="action_mask", shared_noise=["noise_uniform"])
    path = os.path.join(str(directory), "masked.sbif")
    with open(path, "wb") as handle:
        handle.write(make(build_base()))
    return path


def test_an_action_mask_is_a_bool_input_fed_like_any_other(c_runtime, reference, tmp_path):
    """The C runtime has no predict (so no SB3 contract to honour at that level): an action_mask input is a graph input
    of dtype bool, and the graph that reads it runs as in the reference."""
    path = masked_logits_file(tmp_path)
    rng = np.random.default_rng(5)
    feeds = {"obs": rng.uniform(-1, 1, (4, 3)).astype(np.float32), "action_mask": rng.integers(0, 2, (4, 2)) == 1}
    ours, expected = (runtime.run(path, feeds, ["logits", "masked_logits"]) for runtime in (c_runtime, reference))
    assert ours.ok and expected.ok, (ours, expected)
    np.testing.assert_array_equal(ours.outputs["masked_logits"], expected.outputs["masked_logits"])
    np.testing.assert_array_equal(ours.outputs["masked_logits"], ours.outputs["logits"] * feeds["action_mask"])
