"""Defective files: each is refused with the right SbifError subclass and a message that says what is wrong.

The files are made by editing the header or document of a valid file (`tests/factories.py`). Every read goes
through `pytest.raises(SbifError)`, so any other exception escaping the reader fails the test.
"""
from __future__ import annotations

import json
import struct
import tracemalloc

import numpy as np
import pytest

import sbif
from conformance.malformed.size_limits import SIZE_LIMIT_CASES, size_limit_file
from sbif.errors import DocumentError, FileFormatError, SbifError, UnsupportedError
from sbif.format import SbifFile, read_container, write_container
from sbif.format.container import MAX_HEADER_BYTES
from sbif.format.document import count_values, decode_document
from sbif.ops import ValueSpec, get_op
from tests.factories import raw_bytes, read_raw, rewrite_document, rewrite_header, write_raw

F32 = np.dtype("<f4")


def expect(path, error_class, *fragments):
    """Reading `path` raises exactly `error_class` whose message contains every fragment; returns the message."""
    with pytest.raises(SbifError) as info:
        SbifFile.read(str(path))
    message = str(info.value)
    assert type(info.value) is error_class, "{}: {}".format(type(info.value).__name__, message)
    for fragment in fragments:
        assert fragment in message, "{!r} not in {!r}".format(fragment, message)
    # the public entry point reports the same error
    with pytest.raises(error_class):
        sbif.load(str(path))
    return message


def write_bytes(tmp_path, content, name="bad.sbif"):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def two_tensors(first_offsets, second_offsets, data_len, second_shape=(2,)):
    """A raw header with F32 tensors 'a' [2] and 'b' at the given offsets, and `data_len` zero bytes."""
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": list(first_offsets)},
              "b": {"dtype": "F32", "shape": list(second_shape), "data_offsets": list(second_offsets)}}
    return header, b"\0" * data_len


def tensor_entry(document, name):
    return next(entry for entry in document["tensors"] if entry["name"] == name)


#: Graph nodes found by what the exporter cannot rename: the tensors they read and their op.
NODES = {
    "pi_head": lambda node: "model/pi/w:0" in node["inputs"],
    "logstd": lambda node: "model/pi/logstd:0" in node["inputs"],
    "obs_cast": lambda node: node["op"] == "cast" and node["inputs"] == ["obs"],
    "squeeze": lambda node: node["op"] == "squeeze",
    "constant": lambda node: node["op"] == "constant",
    "exp": lambda node: node["op"] == "exp",
    "one_hot": lambda node: node["op"] == "one_hot",
}


def node_index(document, role):
    """Index of the first graph node playing `role` (a key of NODES)."""
    return next(i for i, node in enumerate(document["graph"]) if NODES[role](node))


def find_node(document, role):
    return document["graph"][node_index(document, role)]


# -- the file itself --------------------------------------------------------------------------------------------
def test_the_valid_file_reads(valid_path):
    model = SbifFile.read(valid_path)
    assert model.document["format_version"] == 1


def test_missing_file(tmp_path):
    expect(tmp_path / "nowhere.sbif", FileFormatError, "cannot open", "nowhere.sbif")


def test_directory_is_not_a_file(tmp_path):
    expect(tmp_path, FileFormatError, "cannot open")


def test_empty_file(tmp_path):
    expect(write_bytes(tmp_path, b""), FileFormatError, "truncated file (0 bytes", "8-byte header length")


@pytest.mark.parametrize("size", [1, 7])
def test_file_shorter_than_the_length_prefix(tmp_path, size):
    expect(write_bytes(tmp_path, b"\x02" * size), FileFormatError, "truncated file ({} bytes".format(size))


def test_header_length_beyond_the_file(tmp_path, valid_bytes):
    content = struct.pack("<Q", len(valid_bytes)) + valid_bytes[8:]
    expect(write_bytes(tmp_path, content), FileFormatError, "truncated file",
           "header says {} bytes but only {} follow".format(len(valid_bytes), len(valid_bytes) - 8))


@pytest.mark.parametrize("length", [MAX_HEADER_BYTES + 1, 2 ** 63, 2 ** 64 - 1])
def test_header_length_over_the_cap_is_refused_before_reading(tmp_path, length):
    expect(write_bytes(tmp_path, struct.pack("<Q", length) + b"{}"), FileFormatError,
           "header length {} exceeds the {} byte limit".format(length, MAX_HEADER_BYTES))


def test_header_length_over_the_cap_in_a_big_enough_file_is_not_read(tmp_path):
    """The file really is that long (sparse), so only the cap stops the reader: nothing may be allocated."""
    path = tmp_path / "sparse.sbif"
    length = MAX_HEADER_BYTES + 8
    with open(str(path), "wb") as handle:
        handle.write(struct.pack("<Q", length) + b"{")
        handle.truncate(8 + length + 16)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match="exceeds the {} byte limit".format(MAX_HEADER_BYTES)):
            read_container(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


# -- the safetensors header -------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [b"\xff\xfe{}", b"{\"a\": \xc3}", b"{not json", b"", b"{}}"],
                         ids=["bad-utf8-start", "bad-utf8-inside", "not-json", "empty", "extra-data"])
def test_header_not_utf8_json(tmp_path, header):
    expect(write_bytes(tmp_path, raw_bytes(None, header_bytes=header)), FileFormatError, "header is not valid JSON")


@pytest.mark.parametrize("header", [[], [1, 2], "sbif", 3, None], ids=["empty-array", "array", "string", "number",
                                                                      "null"])
def test_header_not_an_object(tmp_path, header):
    expect(write_raw(tmp_path / "bad.sbif", header), FileFormatError, "header must be a JSON object")


@pytest.mark.parametrize("metadata", [{"format": 1}, {"sbif": None}, ["format", "sbif"], "sbif", {"a": {"b": "c"}}])
def test_metadata_not_a_string_map(tmp_path, metadata):
    expect(write_raw(tmp_path / "bad.sbif", {"__metadata__": metadata}), FileFormatError,
           "__metadata__ must map strings to strings")


def test_metadata_edit_of_a_valid_file(valid_path, tmp_path):
    def edit(header, data):
        header["__metadata__"]["format"] = ["sbif"]

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError, "__metadata__")


@pytest.mark.parametrize("dtype", ["BF16", "F8_E4M3", "float32", "f4", "", 4, None])
def test_unknown_tensor_dtype(valid_path, tmp_path, dtype):
    def edit(header, data):
        header["model/pi/b:0"]["dtype"] = dtype

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError,
           "'model/pi/b:0'", "unknown dtype {!r}".format(dtype))


@pytest.mark.parametrize("shape", [[-2], [2.0], ["2"], [True, 2], [None], 2, "2", {"0": 2}],
                         ids=["negative", "float", "string", "bool", "null", "not-a-list-int", "not-a-list-str",
                              "object"])
def test_invalid_shape(valid_path, tmp_path, shape):
    def edit(header, data):
        header["model/pi/b:0"]["shape"] = shape

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError,
           "'model/pi/b:0' has an invalid shape")


@pytest.mark.parametrize("offsets", ["reversed", [0], [0, 8, 16], [-8, 0], [0.0, 8.0], None, "0:8"])
def test_invalid_data_offsets(valid_path, tmp_path, offsets):
    def edit(header, data):
        entry = header["model/pi/b:0"]
        entry["data_offsets"] = entry["data_offsets"][::-1] if offsets == "reversed" else offsets

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError,
           "'model/pi/b:0' has invalid data_offsets")


@pytest.mark.parametrize("change", ["missing-dtype", "missing-offsets", "extra-key", "not-an-object"])
def test_tensor_entry_keys(valid_path, tmp_path, change):
    def edit(header, data):
        entry = header["model/pi/b:0"]
        if change == "missing-dtype":
            del entry["dtype"]
        elif change == "missing-offsets":
            del entry["data_offsets"]
        elif change == "extra-key":
            entry["stride"] = [1]
        else:
            header["model/pi/b:0"] = [entry["dtype"], entry["shape"], entry["data_offsets"]]

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError,
           "'model/pi/b:0' needs exactly the keys dtype, shape, data_offsets")


def test_offsets_span_does_not_match_the_shape(valid_path, tmp_path):
    def edit(header, data):
        header["model/pi/b:0"]["shape"] = [3]

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError,
           "'model/pi/b:0'", "needs 12 bytes but data_offsets span 8")


def test_dtype_change_breaks_the_span(valid_path, tmp_path):
    def edit(header, data):
        header["model/pi/b:0"]["dtype"] = "F64"

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError,
           "needs 16 bytes but data_offsets span 8")


@pytest.mark.parametrize("shape, fragment", [([2 ** 40, 2 ** 40], "data_offsets span 4"),
                                             ([2 ** 64, 2 ** 64, 2 ** 64], "each at most 9223372036854775807"),
                                             ([2 ** 31] * 8, "data_offsets span 4")])
def test_shape_bomb_is_refused_without_allocating(tmp_path, shape, fragment):
    header = {"bomb": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}
    path = write_raw(tmp_path / "bomb.sbif", header, b"\0" * 4)
    tracemalloc.start()
    try:
        expect(path, FileFormatError, "'bomb'", fragment)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


LIMITS = "at most 32 dimensions, each at most 9223372036854775807"


@pytest.mark.parametrize("shape, fragment", [([0, 2 ** 62], "NumPy cannot represent"), ([0, 2 ** 63], LIMITS),
                                             ([2 ** 70, 0], LIMITS), ([1] * 70, LIMITS), ([0] + [1] * 70, LIMITS)],
                         ids=["empty-huge", "empty-over-int64", "huge-empty", "rank-70", "empty-rank-71"])
@pytest.mark.parametrize("with_data", [False, True], ids=["only-tensor", "after-data"])
def test_shape_numpy_cannot_represent(tmp_path, shape, fragment, with_data):
    """The byte count is right (zero, or one element) but the shape is beyond SPEC section 2's limits, or NumPy
    cannot build the array: refuse it by name."""
    size = int(np.prod(np.array(shape, dtype=object))) if shape else 1
    nbytes = size * 4
    header = {"odd": {"dtype": "F32", "shape": shape, "data_offsets": [0, nbytes]}}
    data = b"\0" * nbytes
    if with_data:
        header["odd"]["data_offsets"] = [4, 4 + nbytes]
        header["first"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
        data = b"\0" * (4 + nbytes)
    expect(write_raw(tmp_path / "odd.sbif", header, data), FileFormatError, "'odd'", fragment)


def test_overlapping_tensors(tmp_path):
    header, data = two_tensors((0, 8), (4, 12), 12)
    expect(write_raw(tmp_path / "bad.sbif", header, data), FileFormatError, "tensor 'b' at byte 4 overlaps")


def test_tensors_at_the_same_offsets(valid_path, tmp_path):
    def edit(header, data):
        # the last two tensors in the data buffer have the same size ([2] float32): point the last at the other
        by_offset = sorted((e["data_offsets"], name) for name, e in header.items() if name != "__metadata__")
        (previous, _), (_, last) = by_offset[-2:]
        header[last]["data_offsets"] = list(previous)
        return data[:previous[1]]

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError, "overlaps the previous")


def test_gap_between_tensors(tmp_path):
    header, data = two_tensors((0, 8), (12, 20), 20)
    expect(write_raw(tmp_path / "bad.sbif", header, data), FileFormatError, "tensor 'b' at byte 12 leaves a gap")


def test_gap_before_the_first_tensor(tmp_path):
    header, data = two_tensors((4, 12), (12, 20), 20)
    expect(write_raw(tmp_path / "bad.sbif", header, data), FileFormatError, "tensor 'a' at byte 4 leaves a gap")


@pytest.mark.parametrize("extra", [b"\0", b"\0" * 4096])
def test_trailing_bytes(valid_bytes, tmp_path, extra):
    expect(write_bytes(tmp_path, valid_bytes + extra), FileFormatError,
           "{} trailing bytes after the last tensor".format(len(extra)))


def test_trailing_bytes_without_tensors(tmp_path):
    expect(write_raw(tmp_path / "bad.sbif", {}, b"xyz"), FileFormatError, "3 trailing bytes")


@pytest.mark.parametrize("cut", [1, 3, 8])
def test_data_truncated_mid_tensor(valid_bytes, tmp_path, cut):
    message = expect(write_bytes(tmp_path, valid_bytes[:-cut]), FileFormatError, "truncated file: tensor")
    assert "of a" in message and "byte data buffer" in message


def test_data_missing_entirely(valid_path, tmp_path):
    header, _ = read_raw(valid_path)
    expect(write_raw(tmp_path / "bad.sbif", header, b""), FileFormatError, "truncated file: tensor")


# -- the SBIF document ------------------------------------------------------------------------------------------
def test_plain_safetensors_file_is_not_sbif(tmp_path):
    from safetensors.numpy import save_file

    path = str(tmp_path / "plain.safetensors")
    save_file({"w": np.ones((2, 2), "float32")}, path)
    expect(path, DocumentError, "not an SBIF file", "no 'sbif' document")


@pytest.mark.parametrize("metadata", [{}, {"format": "pt"}, {"format": "sbif"}, {"sbif": "{}"},
                                      {"format": "SBIF", "sbif": "{}"}])
def test_metadata_without_an_sbif_document(tmp_path, metadata):
    expect(write_raw(tmp_path / "bad.sbif", {"__metadata__": metadata}), DocumentError, "not an SBIF file")


def test_document_edit_removing_the_format_marker(valid_path, tmp_path):
    def edit(header, data):
        del header["__metadata__"]["format"]

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError, "not an SBIF file")


@pytest.mark.parametrize("text", ["{oops", "", "{\"format\": \"sbif\",}"], ids=["broken", "empty", "trailing-comma"])
def test_document_not_json(valid_path, tmp_path, text):
    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), lambda document: text), DocumentError,
           "SBIF document is not valid JSON")


@pytest.mark.parametrize("text", ["[]", "1", "\"sbif\"", "null"])
def test_document_not_an_object(valid_path, tmp_path, text):
    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), lambda document: text), DocumentError,
           "SBIF document must be a JSON object")


@pytest.mark.parametrize("version", [3, 0, 99])
def test_unsupported_format_version(valid_path, tmp_path, version):
    def edit(document):
        document["format_version"] = version
        document["something_new"] = {"only": "in later versions"}  # not a schema error: the version comes first

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), UnsupportedError,
           "format version {} is not supported".format(version), "reads versions 1 and 2")


@pytest.mark.parametrize("version", ["1", "2", 1.0, True, None, [1]])
def test_format_version_not_an_integer(valid_path, tmp_path, version):
    def edit(document):
        document["format_version"] = version

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "format_version must be an integer, got {!r}".format(version))


def test_format_version_missing(valid_path, tmp_path):
    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), lambda d: d.pop("format_version") and None),
           DocumentError, "format_version must be an integer, got None")


@pytest.mark.parametrize("key", ["predict", "graph", "provenance", "observation_space", "format"])
def test_schema_missing_key(valid_path, tmp_path, key):
    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), lambda d: d.pop(key) and None),
           DocumentError, "schema violation", "'{}' is a required property".format(key))


def test_schema_extra_top_level_key(valid_path, tmp_path):
    def edit(document):
        document["comment"] = "hello"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "schema violation at (top level)", "'comment' was unexpected")


def test_schema_extra_nested_key(valid_path, tmp_path):
    def edit(document):
        document["tensors"][2]["layout"] = "row-major"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "schema violation at tensors/2", "'layout' was unexpected")


@pytest.mark.parametrize("path, value, fragment", [
    (("provenance", "source", "sha256"), "XYZ", "provenance/source/sha256"),
    (("provenance", "algorithm"), "PPO3", "provenance/algorithm"),
    (("predict", "deterministic_default"), "yes", "predict/deterministic_default"),
    (("inputs", 0, "kind"), "camera", "inputs/0: "),  # the kind picks the input's oneOf branch: none fits
    (("tensors", 0, "dtype"), "complex64", "tensors/0/dtype"),
    (("graph", 0, "op"), "Linear", "graph/0/op"),
    (("format",), "sbif2", "format"),
], ids=["sha256", "algorithm", "bool", "input-kind", "dtype", "op-pattern", "format"])
def test_schema_bad_value(valid_path, tmp_path, path, value, fragment):
    def edit(document):
        target = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "schema violation at {}".format(fragment))


def test_unknown_op(valid_path, tmp_path):
    def edit(document):
        find_node(document, "pi_head")["op"] = "fft2d"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), UnsupportedError,
           "unknown op 'fft2d'", "linear")


def test_tensor_listed_but_missing_from_the_file(valid_path, tmp_path):
    def edit(document):
        document["tensors"].append({"name": "sbif/ghost", "dtype": "float32", "shape": [3], "origin": "constant"})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "tensor 'sbif/ghost' is listed in the document but missing from the file")


def test_stray_tensor_in_the_file(valid_path, tmp_path):
    def edit(document):
        document["tensors"] = [t for t in document["tensors"] if t["name"] != "model/q/w:0"]

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "holds tensors the document does not list: model/q/w:0")


def test_stray_tensor_added_to_the_container(valid_path, tmp_path):
    def edit(header, data):
        header["sbif/extra"] = {"dtype": "U8", "shape": [3], "data_offsets": [len(data), len(data) + 3]}
        return data + b"abc"

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "does not list: sbif/extra")


@pytest.mark.parametrize("dtype", ["float64", "int32", "uint8"])
def test_tensor_dtype_mismatch(valid_path, tmp_path, dtype):
    def edit(document):
        tensor_entry(document, "model/pi/w:0")["dtype"] = dtype

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "tensor 'model/pi/w:0' is declared {} but stored as float32".format(dtype))


@pytest.mark.parametrize("shape", [[2, 4], [8], [4, 2, 1], []])
def test_tensor_shape_mismatch(valid_path, tmp_path, shape):
    def edit(document):
        tensor_entry(document, "model/pi/w:0")["shape"] = shape

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "tensor 'model/pi/w:0' is declared with shape {} but stored with shape [4, 2]".format(shape))


def test_duplicate_tensor_entry(valid_path, tmp_path):
    def edit(document):
        document["tensors"].append(dict(document["tensors"][0]))

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "tensor name 'model/shared_fc0/w:0' is already defined")


def test_value_used_before_it_is_defined(valid_path, tmp_path):
    moved = []

    def edit(document):
        document["graph"].append(document["graph"].pop(0))  # the cast of obs now comes last
        moved.extend(document["graph"][-1]["outputs"])

    path = rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit)
    expect(path, DocumentError, "graph node 0", "uses {!r} before it is defined".format(moved[0]))


def test_value_that_is_never_defined(valid_path, tmp_path):
    def edit(document):
        find_node(document, "pi_head")["inputs"][0] = "model/pi_fc9/act"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(linear)", "uses 'model/pi_fc9/act' before it is defined")


def test_duplicate_value_names(valid_path, tmp_path):
    reused = []

    def edit(document):
        reused.extend(document["graph"][0]["outputs"])
        find_node(document, "pi_head")["outputs"] = reused[:1]

    path = rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit)
    expect(path, DocumentError, "(linear)", "output name {!r} is already defined".format(reused[0]))


def test_output_shadowing_a_tensor(valid_path, tmp_path):
    def edit(document):
        find_node(document, "pi_head")["outputs"] = ["model/pi/w:0"]

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "output name 'model/pi/w:0' is already defined")


def test_input_shadowing_a_tensor(valid_path, tmp_path):
    def edit(document):
        document["inputs"][1]["name"] = "model/pi/b:0"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "input name 'model/pi/b:0' is already defined")


def test_output_declared_but_not_computed(valid_path, tmp_path):
    def edit(document):
        document["outputs"].append({"name": "advantage", "dtype": "float32", "shape": [None]})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "output 'advantage' is never computed by the graph")


@pytest.mark.parametrize("dtype, shape, declared", [
    ("float32", [None, 3], "float32[B,3]"), ("float32", [None, 2, 1], "float32[B,2,1]"),
    ("float64", [None, 2], "float64[B,2]")])  # (a batch-free shape is refused first: test_output_without_the_batch_first)
def test_output_declared_with_the_wrong_type(valid_path, tmp_path, dtype, shape, declared):
    def edit(document):
        output = next(o for o in document["outputs"] if o["name"] == "action")
        output["dtype"], output["shape"] = dtype, shape

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "output 'action' is declared {} but the graph computes float32[B,2]".format(declared))


@pytest.mark.parametrize("where", ["deterministic_action", "stochastic_action", "parameter"])
def test_predict_refers_to_an_unknown_output(valid_path, tmp_path, where):
    def edit(document):
        if where == "parameter":
            document["predict"]["distribution"]["parameters"]["std"] = "std_undeclared"
        else:
            document["predict"][where] = "std_undeclared"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "predict refers to 'std_undeclared', which is not a declared output")


def test_predict_refers_to_a_computed_but_undeclared_value(valid_path, tmp_path):
    internal = []

    def edit(document):
        internal.extend(find_node(document, "logstd")["outputs"])  # computed, never declared as an output
        document["predict"]["deterministic_action"] = internal[0]

    path = rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit)
    expect(path, DocumentError, "predict refers to {!r}, which is not a declared output".format(internal[0]))


@pytest.mark.parametrize("role, change, fragment", [
    ("pi_head", lambda inputs: inputs[:2], "(linear): takes 3 inputs, got 2"),
    ("pi_head", lambda inputs: inputs + inputs[2:], "(linear): takes 3 inputs, got 4"),
    ("exp", lambda inputs: [], "(exp): takes 1 inputs, got 0"),
    ("exp", lambda inputs: inputs * 2, "(exp): takes 1 inputs, got 2"),
    ("constant", lambda inputs: ["obs"], "(constant): takes 0 inputs, got 1"),
    ("logstd", lambda inputs: inputs[1:], "takes 2 inputs, got 1"),
], ids=["linear-2", "linear-4", "exp-0", "exp-2", "constant-1", "binary-1"])
def test_wrong_op_arity(valid_path, tmp_path, role, change, fragment):
    def edit(document):
        node = find_node(document, role)
        node["inputs"] = change(node["inputs"])

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError, fragment)


def test_wrong_number_of_outputs(valid_path, tmp_path):
    def edit(document):
        node = find_node(document, "exp")
        node["outputs"] = node["outputs"] + ["another"]

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(exp)", "has 1 outputs, got 2")


@pytest.mark.parametrize("role, attrs, fragment", [
    ("squeeze", {"axis": "1"}, "attribute 'axis' of op squeeze has the wrong type ('1')"),
    ("squeeze", {"axis": 1.0}, "attribute 'axis' of op squeeze has the wrong type (1.0)"),
    ("squeeze", {"axis": True}, "attribute 'axis' of op squeeze has the wrong type (True)"),
    ("squeeze", {}, "op squeeze needs attribute 'axis'"),
    ("squeeze", {"axis": 1, "keepdims": True}, "op squeeze has no attribute keepdims"),
    ("squeeze", {"axis": 5}, "axis 5 is out of range for rank 2"),
    ("squeeze", {"axis": 0}, "squeeze cannot remove the batch dimension"),
    ("obs_cast", {"to": "complex64"}, "cast to unknown dtype 'complex64'"),
    ("obs_cast", {"to": None}, "attribute 'to' of op cast has the wrong type (None)"),
    ("constant", {"value": "0", "dtype": "float32"}, "attribute 'value' of op constant has the wrong type"),
    ("constant", {"value": 0.0, "dtype": "half"}, "constant of unknown dtype 'half'"),
], ids=["str", "float", "bool", "missing", "unknown", "axis-range", "axis-batch", "cast-dtype", "cast-none",
        "constant-value", "constant-dtype"])
def test_bad_op_attribute(valid_path, tmp_path, role, attrs, fragment):
    def edit(document):
        find_node(document, role)["attrs"] = attrs

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError, fragment)


def test_ill_typed_graph(valid_path, tmp_path):
    def edit(document):
        node = find_node(document, "pi_head")
        node["inputs"][1] = "model/q/w:0"  # [5, 2] where the pi latent is 4 wide

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(linear)", "linear shapes do not chain")


# -- document-level shape bombs and numbers out of range --------------------------------------------------------
def test_observation_input_not_matching_the_space(valid_path, tmp_path):
    def edit(document):
        document["inputs"][0]["dtype"] = "float64"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "observation input is float64[B,2,3] but a box observation space needs float32[B,2,3]")


def test_observation_bound_of_the_wrong_length(valid_path, tmp_path):
    def edit(document):
        document["observation_space"]["low"] = [0.0] * 5

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "observation_space low", "a Box bound has 5 values for a space of 6 elements")


@pytest.mark.parametrize("bound", [10 ** 400, [0, 1, 2, 3, 4, -10 ** 400]], ids=["scalar", "list"])
def test_observation_bound_too_large_for_a_float(valid_path, tmp_path, bound):
    def edit(document):
        document["observation_space"]["high"] = bound

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "observation_space high", "too large for a float")


def test_observation_space_shape_bomb_is_not_materialised(valid_path, tmp_path):
    """A scalar bound over a huge Box shape must not be expanded to a huge array to check it (the input's size is
    refused first, SPEC section 3.5)."""
    def edit(document):
        document["observation_space"].update(shape=[2 ** 20, 2 ** 20], low=-1.5, high="inf")
        document["inputs"][0]["shape"] = [None, 2 ** 20, 2 ** 20]

    path = rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit)
    tracemalloc.start()
    try:
        expect(path, DocumentError, "input 'obs'", "above the limit of 268435456 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


@pytest.mark.parametrize("dim", [2 ** 63, 2 ** 64, 10 ** 30])
def test_dimension_too_large(valid_path, tmp_path, dim):
    def edit(document):
        document["observation_space"]["shape"] = [2, dim]
        document["inputs"][0]["shape"] = [None, 2, dim]

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "input 'obs' has shape", "a dimension exceeds")


def test_op_result_dimension_too_large(make_file, tmp_path):
    def edit(document):
        find_node(document, "one_hot")["attrs"]["depth"] = 2 ** 64

    path = rewrite_document(make_file("discrete", "discrete", "none"), str(tmp_path / "bad.sbif"), edit)
    expect(path, DocumentError, "(one_hot)", "has shape [None, 18446744073709551616]", "a dimension exceeds")


def test_noise_input_must_be_float32_with_a_distribution(valid_path, tmp_path):
    def drop_distribution(document):
        del document["inputs"][1]["distribution"]

    def make_float64(document):
        document["inputs"][1]["dtype"] = "float64"

    expect(rewrite_document(valid_path, str(tmp_path / "no_distribution.sbif"), drop_distribution), DocumentError,
           "schema violation at inputs/1: 'distribution' is a required property")
    message = expect(rewrite_document(valid_path, str(tmp_path / "float64.sbif"), make_float64), DocumentError,
                     "noise input 'noise_normal' must be float32")
    assert message.endswith("must be float32")  # the schema, not this rule, requires the distribution


def test_no_observation_input(valid_path, tmp_path):
    def edit(document):
        document["inputs"][0]["kind"] = "noise"
        document["inputs"][0]["distribution"] = "normal"
        document["inputs"][0]["dtype"] = "float32"

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "no observation input named 'obs'")


# -- the batch comes first, and no op works along it (SPEC sections 1 and 3.5) ------------------------------------
def append_node(document, op, inputs, outputs, attrs=None):
    """Add a node at the end of the graph whose outputs nothing uses: only its own static check can refuse it."""
    node = {"op": op, "inputs": inputs, "outputs": outputs}
    if attrs is not None:
        node["attrs"] = attrs
    document["graph"].append(node)


@pytest.mark.parametrize("shape", [[2], [], [2, None]], ids=["batch-free", "scalar", "batch-second"])
def test_noise_input_without_the_batch_first(valid_path, tmp_path, shape):
    """[2] and [] broadcast against the [B, 2] mean, so the graph checks; predict would then fail."""
    def edit(document):
        document["inputs"][1]["shape"] = shape

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "input 'noise_normal' has shape {}: a graph input has the batch (null) as its first dimension".format(
               shape))


@pytest.mark.parametrize("name, shape", [("zero", []), ("model/pi/b:0", [2])], ids=["constant", "tensor"])
def test_output_without_the_batch_first(valid_path, tmp_path, name, shape):
    def edit(document):
        document["outputs"].append({"name": name, "dtype": "float32", "shape": shape})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "output {!r} has shape {}: a graph output has the batch (null) as its first dimension".format(name, shape))


@pytest.mark.parametrize("op, inputs", [
    ("argmax", ["value"]),
    ("softmax", ["value"]),
    ("reduce_mean", ["value"]),
    ("layer_norm", ["value", "model/pi/b:0", "model/pi/b:0"]),
])
def test_op_along_the_batch(valid_path, tmp_path, op, inputs):
    """`value` is [B]: its last axis is the batch, along which these ops would mix the rows."""
    def edit(document):
        append_node(document, op, inputs, ["across_rows"], {"epsilon": 1e-5} if op == "layer_norm" else None)

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "({})".format(op), "{} works along the last axis, which of float32[B] is the batch".format(op))


def test_split_along_the_batch(valid_path, tmp_path):
    def edit(document):
        append_node(document, "split", ["value"], ["first", "second"], {"sizes": [1, 1], "axis": 0})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(split)", "split cannot cut along the batch dimension")


def test_squeeze_of_a_dimension_other_than_one(valid_path, tmp_path):
    def edit(document):
        append_node(document, "squeeze", ["mean"], ["squeezed"], {"axis": 1})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "squeeze axis 1 of float32[B,2] does not have size 1")


@pytest.mark.parametrize("op", ["argmax", "softmax"])
def test_op_on_a_rank_0_value(valid_path, tmp_path, op):
    def edit(document):
        append_node(document, op, ["zero"], ["of_a_scalar"])

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "{} works along the last axis and needs an input of rank at least 1, got float32[]".format(op))


def test_argmax_of_bool(valid_path, tmp_path):
    """TF 1.15 has no ArgMax kernel for bool (spec/ops.md)."""
    def edit(document):
        append_node(document, "cast", ["mean"], ["mean_is_nonzero"], {"to": "bool"})
        append_node(document, "argmax", ["mean_is_nonzero"], ["first_nonzero"])

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(argmax)", "input has dtype bool, expected one of float32, float64, int32")


# -- strict JSON (SPEC section 1) ---------------------------------------------------------------------------------
#: a value the factory's documents do not contain, replaced in the document's text by what JSON cannot say
MARKER = 12345.5


@pytest.mark.parametrize("text, fragment", [
    ("NaN", "contains NaN, which is not JSON"),
    ("Infinity", "contains Infinity, which is not JSON"),
    ("-Infinity", "contains -Infinity, which is not JSON"),
    ("1e400", "contains the number 1e400, beyond the range of a double"),
    ("-1e400", "contains the number -1e400, beyond the range of a double"),
    ("1" + "0" * 400 + ".5", "contains the number 100000000000...(403 characters), beyond the range of a double"),
], ids=["nan", "inf", "-inf", "1e400", "-1e400", "long"])
def test_document_that_is_not_strict_json(valid_path, tmp_path, text, fragment):
    """Python's json reads these (as NaN, inf): a constant's value would then be a non-finite number."""
    def edit(document):
        find_node(document, "constant")["attrs"]["value"] = MARKER
        return json.dumps(document).replace(repr(MARKER), text)

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "the SBIF document {} (SPEC sections 1 and 3)".format(fragment))


@pytest.mark.parametrize("text, fragment", [
    (b"NaN", "the header contains NaN, which is not JSON"),
    (b"-Infinity", "the header contains -Infinity, which is not JSON"),
    (b"1e400", "the header contains the number 1e400, beyond the range of a double"),
], ids=["nan", "-inf", "1e400"])
def test_header_that_is_not_strict_json(tmp_path, text, fragment):
    header = b'{"a":{"dtype":"F32","shape":[' + text + b'],"data_offsets":[0,0]}}'
    expect(write_raw(tmp_path / "bad.sbif", None, header_bytes=header), FileFormatError, fragment)


# -- constant values that fit their dtype (spec/ops.md, constant) -------------------------------------------------
@pytest.mark.parametrize("value, dtype, fragment", [
    (10 ** 400, "int64", "constant value is not finite as a double (an integer of 1329 bits)"),
    (-10 ** 400, "float32", "constant value is not finite as a double (an integer of 1329 bits)"),
    (2 ** 63, "int64", "constant value 9223372036854775808 is out of range for int64"),
    (300, "uint8", "constant value 300 is out of range for uint8"),
    (-1, "uint16", "constant value -1 is out of range for uint16"),
    (3e9, "int32", "constant value 3000000000.0 is out of range for int32"),
    (2.5, "int32", "constant value 2.5 is not an integer, as dtype int32 needs"),
    (1, "bool", "constant of dtype bool takes true or false, not a number"),
    (0.0, "bool", "constant of dtype bool takes true or false, not a number"),
], ids=["int64-10**400", "float32-10**400", "int64-2**63", "uint8-300", "uint16-negative", "int32-3e9",
        "int32-fraction", "bool-int", "bool-float"])
def test_constant_value_that_does_not_fit_its_dtype(valid_path, tmp_path, value, dtype, fragment):
    def edit(document):
        append_node(document, "constant", [], ["extra"], {"value": value, "dtype": dtype})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError, "(constant)", fragment)


@pytest.mark.parametrize("value, dtype, expected", [
    (True, "float32", 1.0), (False, "int64", 0), (True, "bool", True), (3.0, "int32", 3), (-0.0, "float32", -0.0),
    (16777217, "float32", 16777216.0), (1e300, "float32", np.inf), (255, "uint8", 255), (-2 ** 63, "int64", -2 ** 63),
    (2 ** 63 - 1, "int64", 2 ** 63 - 1), (-32768.0, "int16", -32768),
], ids=["bool-float32", "bool-int64", "bool-bool", "integral-float-int32", "negative-zero", "int-rounds",
        "float32-overflows-to-inf", "uint8-max", "int64-min", "int64-max", "int16-min-as-float"])
def test_constant_values_that_fit_their_dtype(valid_path, tmp_path, value, dtype, expected):
    def edit(document):
        append_node(document, "constant", [], ["extra"], {"value": value, "dtype": dtype})

    SbifFile.read(rewrite_document(valid_path, str(tmp_path / "good.sbif"), edit))
    with np.errstate(over="ignore"):  # 1e300 -> float32 +inf, as spec/ops.md says
        computed = get_op("constant").compute(value=value, dtype=dtype)
    assert computed.dtype == np.dtype(dtype) and computed.shape == ()
    assert computed == expected and np.signbit(computed) == np.signbit(expected)


def test_non_finite_constant_in_a_document_built_in_memory(valid_path):
    """Strict JSON keeps NaN out of files; a document built by code is checked by the op's own rule."""
    model = SbifFile.read(valid_path)
    for value in (float("nan"), float("inf")):
        document = json.loads(json.dumps(model.document))
        find_node(document, "constant")["attrs"]["value"] = value
        with pytest.raises(DocumentError, match=r"constant value is not finite as a double \({}\)".format(value)):
            SbifFile(document, model.tensors)


# -- one reader semantics with the C reader (issue #18 item 5; SPEC sections 2, 3 and 3.5) ------------------------
def test_header_with_a_duplicate_key(valid_path, tmp_path):
    """Python's json keeps the last of two equal keys: an entry saying F64 then F32 was read as F32 and loaded."""
    header, data = read_raw(valid_path)
    text = json.dumps(header, separators=(",", ":"))
    name = next(name for name in header if name != "__metadata__")
    entry = '"{}":{{'.format(name)
    assert text.count(entry) == 1
    bad = text.replace(entry, entry + '"dtype":"F64",').encode("utf-8")
    expect(write_raw(tmp_path / "bad.sbif", None, data, header_bytes=bad), FileFormatError,
           'the header contains the key "dtype" twice in one object')


def test_document_with_a_duplicate_key(valid_path, tmp_path):
    """A second `graph` was read in place of the first: the file ran a different policy."""
    def edit(document):
        graph = json.dumps(document["graph"])
        text = json.dumps(document)
        return text.replace('"graph": ' + graph, '"graph": ' + graph + ', "graph": ' + graph.replace("tanh", "relu"))

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           'the SBIF document contains the key "graph" twice in one object')


def test_a_long_duplicate_key_is_quoted_in_part(valid_path, tmp_path):
    key = "k" * 100000
    message = expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"),
                                      lambda document: '{{"{0}":1,"{0}":2}}'.format(key)),
                     DocumentError, "contains the key")
    assert len(message) < 400 and "\n" not in message


@pytest.mark.parametrize("depth", [513, 100000])
def test_document_nested_too_deep(valid_path, tmp_path, depth):
    """100,000 levels made Python's json raise RecursionError; 513 was read. Both are one-line DocumentErrors
    naming the limit, as in the C reader."""
    def edit(document):
        document["provenance"]["policy_kwargs"] = {}
        text = json.dumps(document)
        return text.replace('"policy_kwargs": {}', '"policy_kwargs": {"deep": ' + "[" * (depth - 3) + "]" * (depth - 3)
                            + "}")

    message = expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
                     "the SBIF document nests arrays and objects more than 512 deep")
    assert "\n" not in message


def test_an_unterminated_deep_document_is_refused_by_its_depth(valid_path, tmp_path):
    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), lambda document: "[" * 100000), DocumentError,
           "the SBIF document nests arrays and objects more than 512 deep")


def test_document_nested_exactly_512_deep_loads(valid_path, tmp_path):
    def edit(document):
        nested = []
        for _ in range(512 - 4):
            nested = [nested]
        document["provenance"]["policy_kwargs"] = {"deep": nested}

    SbifFile.read(rewrite_document(valid_path, str(tmp_path / "deep.sbif"), edit))


def test_header_nested_too_deep(tmp_path):
    header = b'{"a":' + b"[" * 10000 + b"]" * 10000 + b"}"
    expect(write_raw(tmp_path / "bad.sbif", None, header_bytes=header), FileFormatError,
           "the header nests arrays and objects more than 512 deep")


def test_brackets_inside_strings_do_not_count_as_nesting():
    from sbif.format.strict_json import loads_strict

    text = json.dumps({"name": "[" * 1000 + '\\"{' * 1000, "deep": json.loads("[" * 511 + "]" * 511)})
    assert loads_strict(text)["name"].startswith("[[")


@pytest.mark.parametrize("shape, data", [([1] * 32 + [2], b"\0" * 8), ([0, 2 ** 63], b"")],
                         ids=["rank-33", "dimension-2^63"])
def test_header_shape_beyond_the_limits(tmp_path, shape, data):
    """NumPy 2 represents rank 33 (NumPy 1 and the C reader do not): the header's own rule refuses it everywhere."""
    header = {"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, len(data)]}}
    expect(write_raw(tmp_path / "bad.sbif", header, data), FileFormatError,
           "at most 32 dimensions, each at most 9223372036854775807")


def test_a_value_of_rank_above_32(valid_path, tmp_path):
    """An expand_dims of a rank-32 value: NumPy 2 ran it, the C reader refused it as unsupported."""
    def edit(document):
        append_node(document, "constant", [], ["one"], {"value": 1.0, "dtype": "float32"})
        append_node(document, "reshape", ["one"], ["rank32"], {"shape": [1] * 32})
        append_node(document, "expand_dims", ["rank32"], ["rank33"], {"axis": 0})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(expand_dims)", "output 'rank33' has rank 33, above the limit of 32 dimensions")


@pytest.mark.parametrize("shape", [[274177, 67280421310721], [True], [1.0]], ids=["wraps-int64", "true", "1.0"])
def test_reshape_to_a_shape_that_is_not_exact(valid_path, tmp_path, shape):
    """np.prod multiplies in int64, so 274177 x 67280421310721 = 2^64 + 1 counted as 1 element and passed."""
    def edit(document):
        append_node(document, "constant", [], ["one"], {"value": 1.0, "dtype": "float32"})
        append_node(document, "reshape", ["one"], ["reshaped"], {"shape": shape})

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(reshape)", "cannot reshape float32[] to")


@pytest.mark.parametrize("op, inputs, attrs", [
    ("conv2d", [ValueSpec("float32", (None, 4, 4, 3)), ValueSpec("float32", (2, 2, 3, 8)), ValueSpec("float32", (8,))],
     {"strides": [True, 1], "padding": "VALID"}),
    ("conv2d", [ValueSpec("float32", (None, 4, 4, 3)), ValueSpec("float32", (2, 2, 3, 8)), ValueSpec("float32", (8,))],
     {"strides": [2 ** 63, 1], "padding": "VALID"}),
    ("split", [ValueSpec("float32", (None, 2))], {"sizes": [True, True], "axis": 1}),
], ids=["conv2d-stride-true", "conv2d-stride-2^63", "split-sizes-true"])
def test_counts_that_are_booleans_or_beyond_int64(op, inputs, attrs):
    with pytest.raises(DocumentError):
        get_op(op).infer(inputs, attrs, 2 if op == "split" else 1)


# -- sizes (issue #18): every value at most 2^28 bytes at batch 1, a header at most 2^14 entries ---------------------
def one_hot_of_obs(depth):
    """An edit adding the argmax of `obs` ([B, 2, 3] -> int64 [B, 2]) and one_hot of it: float32 [B, 2, depth],
    8·depth bytes a row."""
    def edit(document):
        append_node(document, "argmax", ["obs"], ["obs/argmax"])
        append_node(document, "one_hot", ["obs/argmax"], ["obs/one_hot"], {"depth": depth})
    return edit


def test_a_value_at_the_size_limit_loads(valid_path, tmp_path):
    from sbif.format.validate import MAX_VALUE_BYTES

    model = SbifFile.read(rewrite_document(valid_path, str(tmp_path / "limit.sbif"), one_hot_of_obs(2 ** 25)))
    assert model.specs["obs/one_hot"].nominal_bytes(batch=1) == MAX_VALUE_BYTES == 2 ** 28


def test_a_value_over_the_size_limit_is_refused(valid_path, tmp_path):
    """2 rows of one_hot depth 2^25 + 1 at batch 1: 8 bytes over 2^28, found without allocating anything."""
    path = rewrite_document(valid_path, str(tmp_path / "bad.sbif"), one_hot_of_obs(2 ** 25 + 1))
    tracemalloc.start()
    try:
        expect(path, DocumentError, "(one_hot)", "output 'obs/one_hot' of type float32[B,2,33554433]",
               "needs 268435464 bytes at batch 1", "above the limit of 268435456 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


def test_broadcasting_beyond_the_size_limit_is_refused(valid_path, tmp_path):
    """The attack of issue #18: a row [2^14] and a column [2^14, 1], 64 KiB each, whose sum broadcasts to 1 GiB."""
    def edit(document):
        append_node(document, "constant", [], ["index"], {"value": 0, "dtype": "int32"})
        append_node(document, "one_hot", ["index"], ["row"], {"depth": 2 ** 14})
        append_node(document, "expand_dims", ["row"], ["column"], {"axis": 1})
        append_node(document, "add", ["row", "column"], ["sum"])

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "(add)", "output 'sum'", "above the limit")


@pytest.mark.parametrize("shape", [[0, 2 ** 40, 2 ** 40], [2 ** 62, 0]], ids=["huge-after-zero", "huge-before-zero"])
def test_an_empty_value_with_huge_dimensions_is_refused(shape):
    """An empty value counts its zero dimensions as 1: NumPy cannot describe [0, 2^40, 2^40] (its other dimensions
    multiply beyond its index range), so `run` would fail on a file `validate` accepted."""
    from tests.factories import make_sbif

    model = make_sbif()
    document = json.loads(json.dumps(model.document))
    document["tensors"].append({"name": "empty", "dtype": "float32", "shape": [0], "origin": "constant"})
    append_node(document, "reshape", ["empty"], ["empty/reshaped"], {"shape": shape})
    with pytest.raises(DocumentError, match="empty/reshaped.*above the limit of 268435456 bytes"):
        SbifFile(document, dict(model.tensors, empty=np.zeros(0, np.float32)))


def test_argmax_of_an_empty_last_axis_is_refused():
    """There is no index to give (TF refuses the reduction; NumPy's argmax raises at run time)."""
    with pytest.raises(DocumentError, match="at least one element"):
        get_op("argmax").infer([ValueSpec("float32", (None, 0))], {}, 1)


def entries_header(tensors, metadata_keys=1):
    """A header of `tensors` empty U8 tensors and a `__metadata__` of `metadata_keys` keys (no SBIF document)."""
    header = {"__metadata__": {"key{}".format(k): "" for k in range(metadata_keys)}}
    header.update(("t{}".format(i), {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}) for i in range(tensors))
    return header


@pytest.mark.parametrize("tensors, metadata_keys", [(2 ** 14 + 1, 1), (1, 2 ** 14 + 1)],
                         ids=["tensors", "metadata-keys"])
def test_a_header_over_the_entry_limit_is_refused(tmp_path, tensors, metadata_keys):
    expect(write_raw(tmp_path / "bad.sbif", entries_header(tensors, metadata_keys)), FileFormatError,
           "16384")


def test_a_header_at_the_entry_limit_is_read(tmp_path):
    metadata, tensors = read_container(write_raw(tmp_path / "many.sbif", entries_header(2 ** 14, 2 ** 14)))
    assert len(tensors) == len(metadata) == 2 ** 14


def test_a_header_of_many_empty_tensors_costs_a_bounded_amount(tmp_path):
    """Issue #18: 1.5 M empty entries (100 MB) took 1.9 GB and 28 s. They are counted before they are parsed: the
    peak is the header's bytes and a few bounded scan buffers, whatever the count (here 200,000, 11 MB)."""
    import time

    header_bytes = json.dumps(entries_header(200000), separators=(",", ":")).encode("utf-8")
    path = write_raw(tmp_path / "many.sbif", None, header_bytes=header_bytes)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match="more than a header of at most 16384 tensors"):
            read_container(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(header_bytes) + 32 * 1024 * 1024
    assert time.perf_counter() - started < 5


def test_quotes_and_backslashes_in_strings_do_not_count(tmp_path):
    """The count before parsing skips strings, escaped quotes and backslashes included: metadata text full of
    commas, brackets and braces is not structure."""
    text = '\\\\"{[,' * 100000 + "\\\\"
    metadata, _ = read_container(write_raw(tmp_path / "text.sbif", {"__metadata__": {"text": text}}))
    assert metadata["text"] == text


# -- one reader semantics (issue #18): integer literals, -0, U+0000 in names -------------------------------------
@pytest.mark.parametrize("old, new, fragment", [
    ('"shape": [null, ', '"shape": [null, 1.0, ', "inputs/0/shape/1: 1.0 is not of type 'integer', 'null'"),
    ('"format_version": 1', '"format_version": 1e0', "format_version must be an integer, got 1.0"),
], ids=["input-dimension", "format-version-exponent"])
def test_an_integral_number_written_with_a_fraction_or_exponent_is_no_integer(valid_path, tmp_path, old, new,
                                                                              fragment):
    """SPEC section 1: an integer is a number written without fraction or exponent. JSON Schema draft 7 counts 1.0
    as an integer; the C and Node readers, which read the literal, do not, and neither does the reference."""
    def edit(document):
        text = json.dumps(document)
        assert text.count(old) >= 1
        return text.replace(old, new, 1)

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError, fragment)


def test_a_document_dimension_written_with_a_fraction_is_refused(valid_path, tmp_path):
    def edit(document):
        document["tensors"][0]["shape"][0] = float(document["tensors"][0]["shape"][0])

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError,
           "schema violation at tensors/0/shape/0", "is not of type 'integer'")


def test_negative_zero_is_the_integer_zero_in_the_header(valid_path, tmp_path):
    """`-0` is an integer literal whose value is 0 (SPEC section 2: non-negative); C read it as negative."""
    header, data = read_raw(valid_path)
    text = json.dumps(header)
    assert text.count('"data_offsets": [0, ') == 1
    text = text.replace('"data_offsets": [0, ', '"data_offsets": [-0, ')
    path = write_raw(tmp_path / "zero.sbif", None, data, header_bytes=text.encode("utf-8"))
    assert set(SbifFile.read(path).tensors) == set(header) - {"__metadata__"}


def test_a_tensor_name_with_u0000_is_refused_in_the_header(valid_path, tmp_path):
    """SPEC section 2: no U+0000 in a tensor name (C runtimes name tensors with C strings), even when the document
    names the tensor alike."""
    def edit(header, data):
        renamed = "model/pi/b:0\x00x"
        header[renamed] = header.pop("model/pi/b:0")
        header["__metadata__"]["sbif"] = header["__metadata__"]["sbif"].replace('"model/pi/b:0"',
                                                                                json.dumps(renamed))

    expect(rewrite_header(valid_path, str(tmp_path / "bad.sbif"), edit), FileFormatError,
           "tensor 'model/pi/b:0\\x00x': a tensor name may not contain U+0000")


@pytest.mark.parametrize("where", ["output", "predict", "node-input"])
def test_a_name_with_u0000_is_refused_in_the_document(valid_path, tmp_path, where):
    """SPEC section 3: no name holds U+0000, wherever the schema names a value; checked with the schema, so before
    anything that depends on the graph."""
    def edit(document):
        if where == "output":
            append_node(document, "exp", [document["outputs"][0]["name"]], ["named\x00x"], {})
        elif where == "predict":
            document["predict"]["deterministic_action"] += "\x00"
        else:
            append_node(document, "sparsemax", ["obs\x00"], ["out"], {})  # an unknown op, after the bad name

    expect(rewrite_document(valid_path, str(tmp_path / "bad.sbif"), edit), DocumentError, "schema violation at",
           "contains U+0000, which no name may hold")


def test_a_tensor_name_with_u0000_is_not_written(tmp_path):
    """The writer refuses what every reader refuses (SPEC section 2), rather than write a file none reads."""
    path = tmp_path / "nul.sbif"
    with pytest.raises(FileFormatError, match="a tensor name may not contain U[+]0000"):
        write_container(str(path), {"a\x00b": np.zeros(2, F32)}, {})
    assert not path.exists()


# -- the document's size (issue #18): at most 2^20 JSON values, counted before parsing, and 2^14 graph nodes --------
@pytest.mark.parametrize("case_id, error_class", [case[::2] for case in SIZE_LIMIT_CASES],
                         ids=[case[0] for case in SIZE_LIMIT_CASES])
def test_the_document_size_limits(tmp_path, case_id, error_class):
    """SPEC section 3, at each limit and one beyond (the C and Node readers decide the same files alike: their tests
    make them from the same module). Values over the limit are refused before the version is read; nodes after."""
    path = size_limit_file(str(tmp_path), case_id)
    if error_class is None:
        SbifFile.read(path)
        return
    expected = getattr(sbif.errors, error_class)
    message = expect(path, expected)
    if expected is DocumentError:
        assert "SPEC section 3" in message, message


def test_a_document_of_a_million_nodes_is_refused_before_it_is_parsed():
    """Issue #18: 1,000,000 tiny nodes (79 MB) took 80 s and 1.67 GB to accept. Counted on the text, the document is
    refused for a bounded scan: the peak is the text's bytes and scan buffers, not an object per value."""
    import time

    node = '{"op":"relu","inputs":["obs"],"outputs":["r"],"attrs":{}},'
    text = '{"format":"sbif","format_version":1,"graph":[' + node * 200000 + '{}]}'
    started = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError, match="holds more than 1048576 JSON values"):
            decode_document({"format": "sbif", "sbif": text}, "big")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(text) + 16 * 1024 * 1024
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("value", [
    [], {}, "", 0, None, [[]], [{}, []], {"a": [], "b": {}}, [0, [1, [2, []]]],
    ["a,b", "[{", "}]", "\"", "\\", "\\\"", "x\\\\", {"k,[": "v\",{"}],
    {"nested": [{"x": [None, True, False, 1.5, -2, "s"]}] * 3},
], ids=lambda value: json.dumps(value)[:24])
@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("chunk", [1, 3, 1 << 18])
def test_values_counted_on_the_text_are_the_parsed_values(monkeypatch, value, indent, chunk):
    """count_values (1 + commas outside strings + non-empty arrays and objects) equals the values json builds, with
    strings full of commas, brackets and escapes, whitespace, and scan chunks that split anything."""
    import sbif.format.document as document_module

    def tree_count(item):
        members = item.values() if isinstance(item, dict) else item if isinstance(item, list) else []
        return 1 + sum(tree_count(member) for member in members)

    monkeypatch.setattr(document_module, "_SCAN_CHUNK", chunk)
    text = json.dumps(value, indent=indent)
    assert count_values(text) == tree_count(value)
    # with a limit below the count, the scan stops with a number above the limit
    assert count_values(text, stop_above=0) > 0
