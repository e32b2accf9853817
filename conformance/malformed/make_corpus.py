"""Write the reader-refusal corpus: one small valid SBIF file, and copies of it each broken in exactly one way.

    python -m conformance.malformed.make_corpus          # rewrite conformance/malformed (after changing a case)
    python -m conformance.malformed.make_corpus DIR      # write the corpus to DIR instead

Every file is derived from the same base (a PPO2 MLP policy with Box(3) observations and Discrete(2) actions, built by
`conformance.models` without TensorFlow) by an edit of its bytes, header or document, so that the one defect is the
only thing wrong with it: a reader that misses the defect loads the file, or refuses it for a later reason with the
wrong error class. The output is a pure function of this module and the exporter:
`tests/conformance/test_refusal.py` regenerates it and compares it with the shipped files byte for byte.

Files are numbered in the order their cases are defined here, so new cases are added at the end (after the first
valid files): the names of existing files, which reports and case files quote, stay the same.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import struct
import sys
import tempfile
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from sbif.errors import DocumentError, FileFormatError, UnsupportedError
from sbif.format import SB3_FORMAT_VERSION, SbifFile, encode_document
from sbif.format.container import MAX_HEADER_BYTES

from ..models import build_model
from . import MANIFEST

FILE_FORMAT, DOCUMENT, UNSUPPORTED = FileFormatError.__name__, DocumentError.__name__, UnsupportedError.__name__
#: what the corpus's files say made them (provenance is informative; a fixed name keeps the bytes stable)
PRODUCER = "sbif conformance corpus"
BASE_SPEC = {"family": "mlp", "algorithm": "PPO2", "net_arch": [], "seed": 1,
             "observation": {"kind": "box", "shape": [3], "dtype": "float32", "low": -1.0, "high": 1.0},
             "action": {"kind": "discrete", "n": 2}}
#: a shape whose element count, 2^64 + 1, is 1 modulo 2^64: a reader multiplying in 64 bits takes it for 4 bytes
SHAPE_BOMB = [274177, 67280421310721]
#: a corpus file's name: its case's number (two digits at least: 01 to 99, then 100 on) and name
CORPUS_FILE = re.compile(r"^\d{2,}_[a-z0-9_]+\.sbif$")


def container(header: Any, data: bytes = b"") -> bytes:
    """SPEC section 2's framing of any header (even one no reader should accept): its 8-byte little-endian length,
    the header as compact JSON (NaN written as Python writes it), then the data buffer."""
    return framed(json.dumps(header, separators=(",", ":")), data)


def framed(header_text: str, data: bytes) -> bytes:
    """SPEC section 2's framing of a header's text: its length as 8 bytes little-endian, the text, the data buffer."""
    text = header_text.encode("utf-8")
    return struct.pack("<Q", len(text)) + text + data


def substituted(text: str, substitution: Tuple[str, str]) -> str:
    """`text` with its one occurrence of `old` replaced by `new` (substitution = (old, new)): how the corpus writes
    JSON that Python's writer will not (NaN in a document, 1e400). Finding it elsewhere, or not at all, means the base
    changed and the case would not make the file it describes, so that is an error."""
    old, new = substitution
    if text.count(old) != 1:
        raise RuntimeError("{!r} occurs {} times in the base's JSON, not once: the case must be rewritten".format(
            old, text.count(old)))
    return text.replace(old, new)


class Base:
    """The valid file every case edits: its bytes, its header (tensor entries and `__metadata__`, in file order), its
    data buffer and its document. Accessors return copies, so a case can change them freely."""

    def __init__(self, raw: bytes, header: Dict[str, Any], data: bytes):
        self.raw, self._header, self.data = raw, header, data

    @property
    def header(self) -> Dict[str, Any]:
        return copy.deepcopy(self._header)

    @property
    def document(self) -> Dict[str, Any]:
        return json.loads(self._header["__metadata__"]["sbif"])

    def file(self, header: Optional[Dict[str, Any]] = None, data: Optional[bytes] = None) -> bytes:
        """A container with this header (default: the base's) and data buffer (default: the base's)."""
        return container(self.header if header is None else header, self.data if data is None else data)

    def with_document(self, edit: Callable[[Dict[str, Any]], None]) -> bytes:
        """The base file with its document changed in place by `edit`, serialised as the writer does."""
        document = self.document
        edit(document)
        header = self.header
        header["__metadata__"] = encode_document(document)
        return self.file(header)

    def with_document_text(self, substitution: Tuple[str, str]) -> bytes:
        """The base file with one piece of its document's text replaced."""
        header = self.header
        header["__metadata__"]["sbif"] = substituted(header["__metadata__"]["sbif"], substitution)
        return self.file(header)

    def with_header_text(self, substitution: Tuple[str, str]) -> bytes:
        """The base file with one piece of its header's text replaced."""
        return framed(substituted(json.dumps(self.header, separators=(",", ":")), substitution), self.data)

    def with_entry(self, name: str, **changes: Any) -> bytes:
        """The base file with fields of one tensor's header entry replaced."""
        header = self.header
        header[name].update(changes)
        return self.file(header)

    def last_tensor(self) -> str:
        """The tensor that ends the data buffer."""
        return max((name for name in self._header if name != "__metadata__"),
                   key=lambda name: self._header[name]["data_offsets"])


def build_base() -> Base:
    """The base file: `BASE_SPEC` as the exporter builds it, without its optional output descriptions and policy
    kwargs (smaller files), written by SBIF's own writer."""
    model = build_model(BASE_SPEC)
    document = copy.deepcopy(model.document)
    document["provenance"]["producer"] = PRODUCER
    del document["provenance"]["policy_kwargs"]
    for output in document["outputs"]:
        del output["description"]
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "base.sbif")
        SbifFile(document, model.tensors).write(path)
        with open(path, "rb") as handle:
            raw = handle.read()
    length = struct.unpack("<Q", raw[:8])[0]
    return Base(raw, json.loads(raw[8:8 + length].decode("utf-8")), raw[8 + length:])


class Case(NamedTuple):
    """One corpus file: how to make it from the base, what is wrong with it and what a reader must answer."""

    name: str
    section: str
    defect: Optional[str]
    error_class: Optional[str]
    valid: Optional[str]
    make: Callable[[Base], bytes]


CASES: List[Case] = []


def refused(section: str, error_class: str, defect: str) -> Callable[[Callable[[Base], bytes]], Callable]:
    """Register a malformed file (in definition order): SPEC section, required error class, the defect."""
    def register(make: Callable[[Base], bytes]) -> Callable[[Base], bytes]:
        CASES.append(Case(make.__name__, section, defect, error_class, None, make))
        return make
    return register


def loads(section: str, why: str) -> Callable[[Callable[[Base], bytes]], Callable]:
    """Register a valid file that every reader must load; `why` says what is unusual about it."""
    def register(make: Callable[[Base], bytes]) -> Callable[[Base], bytes]:
        CASES.append(Case(make.__name__, section, None, None, why, make))
        return make
    return register


def node(document: Dict[str, Any], op: str, index: int = 0) -> Dict[str, Any]:
    """The `index`-th graph node of an op."""
    return [each for each in document["graph"] if each["op"] == op][index]


def entry(entries: List[Dict[str, Any]], name: str) -> Dict[str, Any]:
    return next(each for each in entries if each["name"] == name)


def add_node(op: str, inputs: List[str], output: str, **attrs: Any) -> Callable[[Dict[str, Any]], None]:
    """An edit appending a node with one output that nothing uses: the static check still applies to it (SPEC
    section 3.5), so a defect in it is the file's only defect, and a valid one changes no output."""
    def edit(document: Dict[str, Any]) -> None:
        document["graph"].append({"op": op, "inputs": inputs, "outputs": [output], "attrs": attrs})
    return edit


def with_constants(*pairs: Tuple[Any, str]) -> Callable[[Dict[str, Any]], None]:
    """An edit appending one `constant` node per (value, dtype) pair, named after its dtype and position."""
    def edit(document: Dict[str, Any]) -> None:
        for index, (value, dtype) in enumerate(pairs):
            add_node("constant", [], "constant/{}_{}".format(index, dtype), value=value, dtype=dtype)(document)
    return edit


# -- the container (SPEC section 2) -----------------------------------------------------------------------------------
@refused("2", FILE_FORMAT, "The file is 5 bytes long, shorter than the 8-byte header length N.")
def short_file(base: Base) -> bytes:
    return base.raw[:5]


@refused("2", FILE_FORMAT, "N is 104,857,601, one byte over the 100 MiB header limit.")
def header_over_limit(base: Base) -> bytes:
    return struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}"


@refused("2", FILE_FORMAT, "The file is cut short inside the header: N is larger than the rest of the file.")
def header_beyond_file(base: Base) -> bytes:
    return base.raw[:1024]


@refused("2", FILE_FORMAT, "One byte of a tensor name in the header is 0xFF, so the header is not UTF-8.")
def header_not_utf8(base: Base) -> bytes:
    return base.raw.replace(b'"model/q/b:0"', b'"model/\xff/b:0"', 1)


@refused("2", FILE_FORMAT, "The header is not JSON: its closing brace is replaced by a space.")
def header_not_json(base: Base) -> bytes:
    length = struct.unpack("<Q", base.raw[:8])[0]
    header = base.raw[8:8 + length]
    cut = header.rstrip(b" ")
    return base.raw[:8] + cut[:-1] + b" " * (length - len(cut) + 1) + base.data


@refused("2", FILE_FORMAT, "The header is a JSON array holding the header object, not an object.")
def header_not_object(base: Base) -> bytes:
    return container([base.header], base.data)


@refused("2", FILE_FORMAT, "__metadata__ holds the document as a JSON object, not as a string.")
def metadata_not_strings(base: Base) -> bytes:
    header = base.header
    header["__metadata__"]["sbif"] = base.document
    return base.file(header)


@refused("2", FILE_FORMAT, "A tensor entry has a fourth key, 'stride', besides dtype, shape and data_offsets.")
def entry_extra_key(base: Base) -> bytes:
    return base.with_entry("model/pi/b:0", stride=[1])


@refused("2", FILE_FORMAT, "A tensor has dtype code BF16 (safetensors' bfloat16), which is not an SBIF container "
                           "code.")
def entry_unknown_dtype(base: Base) -> bytes:
    return base.with_entry("model/pi/w:0", dtype="BF16")


@refused("2", FILE_FORMAT, "A tensor's shape is [3, -2]: a dimension is negative.")
def entry_negative_dimension(base: Base) -> bytes:
    return base.with_entry("model/pi/w:0", shape=[3, -2])


@refused("2", FILE_FORMAT, "A tensor's data_offsets are [48, 40]: begin is after end.")
def entry_offsets_reversed(base: Base) -> bytes:
    begin, end = base.header["model/pi/b:0"]["data_offsets"]
    return base.with_entry("model/pi/b:0", data_offsets=[end, begin])


@refused("2", FILE_FORMAT, "A tensor's shape [3] needs 12 bytes of F32 but its data_offsets span 8.")
def entry_size_mismatch(base: Base) -> bytes:
    return base.with_entry("model/pi/b:0", shape=[3])


@refused("2", FILE_FORMAT, "Shape bomb: a 4-byte F32 tensor declares shape [274177, 67280421310721], 2^64 + 1 "
                           "elements, which is 1 element modulo 2^64.")
def shape_bomb(base: Base) -> bytes:
    return base.with_entry("model/vf/b:0", shape=SHAPE_BOMB)


@refused("2", FILE_FORMAT, "The last tensor starts 4 bytes early, overlapping the one before it (the file is 4 "
                           "bytes shorter, so together they still cover the data buffer).")
def tensors_overlap(base: Base) -> bytes:
    header = base.header
    last = base.last_tensor()
    header[last]["data_offsets"] = [offset - 4 for offset in header[last]["data_offsets"]]
    return base.file(header, base.data[:-4])


@refused("2", FILE_FORMAT, "Four unused bytes lie between the last two tensors (a gap in the data buffer).")
def tensors_gap(base: Base) -> bytes:
    header = base.header
    last = base.last_tensor()
    begin, end = header[last]["data_offsets"]
    header[last]["data_offsets"] = [begin + 4, end + 4]
    return base.file(header, base.data[:begin] + b"\0" * 4 + base.data[begin:])


@refused("2", FILE_FORMAT, "The data buffer starts with 4 unused bytes: the first tensor begins at byte 4, not 0.")
def first_tensor_not_at_zero(base: Base) -> bytes:
    header = base.header
    for name, value in header.items():
        if name != "__metadata__":
            value["data_offsets"] = [offset + 4 for offset in value["data_offsets"]]
    return base.file(header, b"\0" * 4 + base.data)


@refused("2", FILE_FORMAT, "Four bytes follow the last tensor (trailing bytes).")
def trailing_bytes(base: Base) -> bytes:
    return base.raw + b"\0" * 4


@refused("2", FILE_FORMAT, "The file is 4 bytes short: the last tensor ends beyond the end of the file.")
def data_truncated(base: Base) -> bytes:
    return base.raw[:-4]


# -- the SBIF metadata and the document's JSON -----------------------------------------------------------------------
@refused("2", DOCUMENT, "__metadata__ says format 'sbif' but has no 'sbif' key: the file carries no document.")
def no_document(base: Base) -> bytes:
    header = base.header
    header["__metadata__"] = {"format": "sbif"}
    return base.file(header)


@refused("3", DOCUMENT, "The document (the 'sbif' metadata string) is cut in half, so it is not JSON.")
def document_not_json(base: Base) -> bytes:
    header = base.header
    text = header["__metadata__"]["sbif"]
    header["__metadata__"]["sbif"] = text[:len(text) // 2]
    return base.file(header)


# -- format_version (SPEC section 3) ---------------------------------------------------------------------------------
@refused("3", UNSUPPORTED, "format_version is 3, with a top-level property no version defines: the version "
                           "must be refused by name before the schema is applied.")
def format_version_newer(base: Base) -> bytes:
    return base.with_document(lambda document: document.update(format_version=3, graph_v3=[]))


@refused("3", DOCUMENT, "format_version is the string \"1\", not an integer.")
def format_version_string(base: Base) -> bytes:
    return base.with_document(lambda document: document.update(format_version="1"))


# -- the schema (SPEC section 3) --------------------------------------------------------------------------------------
@refused("3", DOCUMENT, "The required property 'predict' is missing.")
def schema_missing_property(base: Base) -> bytes:
    return base.with_document(lambda document: document.pop("predict") and None)


@refused("3", DOCUMENT, "A graph node has a property the closed schema does not allow ('name').")
def schema_extra_property(base: Base) -> bytes:
    return base.with_document(lambda document: node(document, "softmax").update(name="policy_head"))


@refused("3", DOCUMENT, "predict.deterministic_default is the string \"false\", not a boolean.")
def schema_wrong_type(base: Base) -> bytes:
    return base.with_document(lambda document: document["predict"].update(deterministic_default="false"))


@refused("3", DOCUMENT, "A node's op is 'Softmax', which does not match the schema's op-name pattern ^[a-z][a-z0-9_]*$ "
                        "(a schema violation, found before any op is looked up).")
def schema_op_name_pattern(base: Base) -> bytes:
    return base.with_document(lambda document: node(document, "softmax").update(op="Softmax"))


# -- tensors against the container (SPEC section 3.3) ----------------------------------------------------------------
@refused("3.3", DOCUMENT, "The document lists a tensor, model/pi/logstd:0, that the file does not hold.")
def tensor_missing(base: Base) -> bytes:
    return base.with_document(lambda document: document["tensors"].append(
        {"name": "model/pi/logstd:0", "dtype": "float32", "shape": [1, 2], "origin": "parameter"}))


@refused("3.3", DOCUMENT, "The file holds a tensor, model/q/b:0, that the document does not list (a stray tensor).")
def tensor_stray(base: Base) -> bytes:
    return base.with_document(lambda document: document["tensors"].remove(entry(document["tensors"], "model/q/b:0")))


@refused("3.3", DOCUMENT, "The document declares model/pi/w:0 float64; the file stores it as F32.")
def tensor_dtype_mismatch(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["tensors"], "model/pi/w:0").update(dtype="float64"))


@refused("3.3", DOCUMENT, "The file stores model/q/w:0 with code U32 (a valid container code that is no SBIF dtype); "
                          "the document declares it float32.")
def tensor_container_code(base: Base) -> bytes:
    return base.with_entry("model/q/w:0", dtype="U32")


@refused("3.3", DOCUMENT, "The document declares model/pi/w:0 with shape [2, 3]; the file stores [3, 2].")
def tensor_shape_mismatch(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["tensors"], "model/pi/w:0").update(shape=[2, 3]))


# -- the observation input (SPEC section 3.2) -------------------------------------------------------------------------
@refused("3.2", DOCUMENT, "The observation space is a Box of shape [4] but the obs input is float32 [B, 3].")
def observation_space_mismatch(base: Base) -> bytes:
    return base.with_document(lambda document: document["observation_space"].update(shape=[4]))


# -- the static check of the graph (SPEC section 3.5) ---------------------------------------------------------------
@refused("3.5", DOCUMENT, "The logits' linear node has two inputs (its bias is missing); linear takes three.")
def node_arity(base: Base) -> bytes:
    return base.with_document(lambda document: node(document, "linear", 1).update(
        inputs=node(document, "linear", 1)["inputs"][:2]))


@refused("3.5", DOCUMENT, "The squeeze node's axis attribute is the string \"1\", not an integer.")
def attribute_wrong_type(base: Base) -> bytes:
    return base.with_document(lambda document: node(document, "squeeze")["attrs"].update(axis="1"))


@refused("3.5", DOCUMENT, "The observation is cast to float64, so a linear node gets a float64 x with float32 "
                          "weights.")
def operand_dtype_mismatch(base: Base) -> bytes:
    return base.with_document(lambda document: node(document, "cast")["attrs"].update(to="float64"))


@refused("3.5", DOCUMENT, "The logits' linear node reads the value head's [B, 1] output with [3, 2] weights: the "
                          "shapes do not chain.")
def shapes_do_not_chain(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        logits = node(document, "linear", 1)
        logits["inputs"] = [node(document, "linear", 0)["outputs"][0]] + logits["inputs"][1:]
    return base.with_document(edit)


@refused("3.5", DOCUMENT, "The noise input is [B, 3], so the sampling head subtracts [B, 3] from the [B, 2] logits: "
                          "the shapes do not broadcast.")
def shapes_do_not_broadcast(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["inputs"], "noise_uniform").update(shape=[None, 3]))


@refused("3.5", DOCUMENT, "The noise input has shape [null, null]: a null dimension other than the batch.")
def non_batch_null_dimension(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["inputs"], "noise_uniform").update(shape=[None, None]))


@refused("3.5", UNSUPPORTED, "The probabilities are computed by op 'sparsemax', which SBIF does not define (an "
                             "unknown op must be refused by name).")
def unknown_op(base: Base) -> bytes:
    return base.with_document(lambda document: node(document, "softmax").update(op="sparsemax"))


@refused("3.5", DOCUMENT, "The softmax node comes first in the graph, before the node that defines its input.")
def use_before_definition(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        softmax = node(document, "softmax")
        document["graph"].remove(softmax)
        document["graph"].insert(0, softmax)
    return base.with_document(edit)


@refused("3.5", DOCUMENT, "The neg node's output reuses the name of the log node's output (single assignment).")
def duplicate_name(base: Base) -> bytes:
    return base.with_document(lambda document: node(document, "neg").update(outputs=node(document, "log")["outputs"]))


# -- outputs and predict (SPEC sections 3.6 and 5) -------------------------------------------------------------------
@refused("3.6", DOCUMENT, "The output 'value' is declared float32 [B, 1]; the graph computes float32 [B].")
def output_type_mismatch(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["outputs"], "value").update(shape=[None, 1]))


@refused("5.2", DOCUMENT, "predict.deterministic_action names 'greedy_action', which is not a declared output.")
def predict_missing_output(base: Base) -> bytes:
    return base.with_document(lambda document: document["predict"].update(deterministic_action="greedy_action"))


# -- valid files ------------------------------------------------------------------------------------------------------
@loads("2", "The base file exactly as SBIF's writer writes it.")
def valid(base: Base) -> bytes:
    return base.raw


@loads("2", "Tensors stored in the reverse of the document's order, header keys reversed, no header padding and an "
            "extra metadata key: the container's byte order carries no meaning and other metadata keys are ignored.")
def valid_reordered(base: Base) -> bytes:
    header = base.header
    names = [name for name in header if name != "__metadata__"]
    data, reordered = b"", {}
    for name in reversed(names):
        begin, end = header[name]["data_offsets"]
        reordered[name] = dict(header[name], data_offsets=[len(data), len(data) + end - begin])
        data += base.data[begin:end]
    reordered["__metadata__"] = dict(header["__metadata__"], comment="written by hand")
    return container(dict(reversed(list(reordered.items()))), data)


@loads("2", "Two extra constant tensors the graph does not use: a scalar (shape [], one element) and an empty tensor "
            "(shape [0], zero bytes) that ends the data buffer.")
def valid_scalar_and_empty_tensors(base: Base) -> bytes:
    document = base.document
    document["tensors"] += [{"name": "sbif/scalar", "dtype": "float32", "shape": [], "origin": "constant"},
                            {"name": "sbif/empty", "dtype": "float32", "shape": [0], "origin": "constant"}]
    header = base.header
    header["__metadata__"] = encode_document(document)
    end = len(base.data)
    header["sbif/scalar"] = {"dtype": "F32", "shape": [], "data_offsets": [end, end + 4]}
    header["sbif/empty"] = {"dtype": "F32", "shape": [0], "data_offsets": [end + 4, end + 4]}
    return base.file(header, base.data + struct.pack("<f", 0.5))


# -- rules added to SPEC sections 1 and 3 after the first corpus (appended, so earlier file names stay) --------------
# JSON: NaN, Infinity and -Infinity are not JSON, and a number must be finite as a double (SPEC section 1); the base's
# observation bounds are where a lenient parser would read them as floats and accept the file.
@refused("2", FILE_FORMAT, "A tensor's shape in the header is [NaN]: NaN is not JSON.")
def header_nan(base: Base) -> bytes:
    return base.with_entry("model/pi/b:0", shape=[float("nan")])


@refused("2", FILE_FORMAT, "A tensor's data_offsets in the header are [40,1e400]: 1e400 is beyond the range of a "
                           "double.")
def header_number_beyond_double(base: Base) -> bytes:
    return base.with_header_text(('"data_offsets":[40,48]', '"data_offsets":[40,1e400]'))


@refused("1", DOCUMENT, "observation_space.low is the token NaN, which is not JSON (a bound that is not a number is "
                        "the string \"nan\").")
def document_nan(base: Base) -> bytes:
    return base.with_document_text(('"low":-1.0', '"low":NaN'))


@refused("1", DOCUMENT, "observation_space.high is the token Infinity, which is not JSON (an infinite bound is the "
                        "string \"inf\").")
def document_infinity(base: Base) -> bytes:
    return base.with_document_text(('"high":1.0', '"high":Infinity'))


@refused("1", DOCUMENT, "observation_space.high is 1e400, beyond the range of a double (JSON parsers that read it "
                        "as infinity would take it for the bound \"inf\").")
def document_number_beyond_double(base: Base) -> bytes:
    return base.with_document_text(('"high":1.0', '"high":1e400'))


@refused("3.2", DOCUMENT, "observation_space.high is the integer 10^400, too large for a float (an integer literal, "
                          "which JSON parsers that read numbers as doubles turn into infinity).")
def bound_integer_beyond_double(base: Base) -> bytes:
    return base.with_document(lambda document: document["observation_space"].update(high=10 ** 400))


# graph inputs and outputs have the batch first (SPEC sections 1, 3.4, 3.6)
@refused("3.4", DOCUMENT, "The noise input has shape [2], without the batch (it still broadcasts against the [B, 2] "
                          "logits).")
def noise_input_without_batch(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["inputs"], "noise_uniform").update(shape=[2]))


@refused("3.4", DOCUMENT, "The noise input has shape [], a scalar without the batch.")
def noise_input_scalar(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["inputs"], "noise_uniform").update(shape=[]))


@refused("3.4", DOCUMENT, "The observation input carries distribution \"uniform\", which only noise inputs have (a "
                          "schema violation).")
def distribution_on_observation(base: Base) -> bytes:
    return base.with_document(lambda document: entry(document["inputs"], "obs").update(distribution="uniform"))


@refused("3.6", DOCUMENT, "An output declared float32 [] names a constant node: the declared type is the computed "
                          "one, but an output has the batch first.")
def output_without_batch(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        add_node("constant", [], "zero", value=0.0, dtype="float32")(document)
        document["outputs"].append({"name": "zero", "dtype": "float32", "shape": []})
    return base.with_document(edit)


# no op works along the batch (SPEC section 3.5): the value head's output `value` is a [B] value
@refused("3.5", DOCUMENT, "An argmax node reads the [B] value `value`: its last axis is the batch.")
def argmax_along_batch(base: Base) -> bytes:
    return base.with_document(add_node("argmax", ["value"], "value/argmax"))


@refused("3.5", DOCUMENT, "A softmax node reads the [B] value `value`: its last axis is the batch.")
def softmax_along_batch(base: Base) -> bytes:
    return base.with_document(add_node("softmax", ["value"], "value/softmax"))


@refused("3.5", DOCUMENT, "A reduce_mean node reads the [B] value `value`: its last axis is the batch.")
def reduce_mean_along_batch(base: Base) -> bytes:
    return base.with_document(add_node("reduce_mean", ["value"], "value/mean"))


@refused("3.5", DOCUMENT, "A layer_norm node normalizes the [B] value `value` along the batch, with `value` as its "
                          "gamma and beta too (so their shapes match x's last axis).")
def layer_norm_along_batch(base: Base) -> bytes:
    return base.with_document(add_node("layer_norm", ["value", "value", "value"], "value/normalized", epsilon=1e-5))


@refused("3.5", DOCUMENT, "An argmax node reads a bool value (less of the logits and themselves); argmax takes "
                          "floats and integers.")
def argmax_of_bool(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        add_node("less", ["logits", "logits"], "logits/less")(document)
        add_node("argmax", ["logits/less"], "logits/less/argmax")(document)
    return base.with_document(edit)


@refused("3.5", DOCUMENT, "A split node cuts the [B] value `value` along axis 0, the batch.")
def split_along_batch(base: Base) -> bytes:
    return base.with_document(add_node("split", ["value"], "value/split", sizes=[1], axis=0))


# constant's value/dtype pairs (spec/ops.md)
@refused("3.5", DOCUMENT, "A constant node has value 300 and dtype uint8, out of the dtype's range.")
def constant_out_of_range(base: Base) -> bytes:
    return base.with_document(with_constants((300, "uint8")))


@refused("3.5", DOCUMENT, "A constant node has value 2.5 and dtype int32, which needs an integral value.")
def constant_not_integral(base: Base) -> bytes:
    return base.with_document(with_constants((2.5, "int32")))


@refused("3.5", DOCUMENT, "A constant node has value 1 and dtype bool, which takes true or false, not a number.")
def constant_number_for_bool(base: Base) -> bytes:
    return base.with_document(with_constants((1, "bool")))


@refused("3.5", DOCUMENT, "A constant node has the integer value 10^400 and dtype int64: a constant is finite as a "
                          "double.")
def constant_beyond_double(base: Base) -> bytes:
    return base.with_document(with_constants((10 ** 400, "int64")))


@loads("3.5", "Constant nodes with value/dtype pairs spec/ops.md allows that a reader might not expect: true as "
              "float32, 3.0 (integral, though written with a fraction) as int32, and 255, the largest uint8, as uint8.")
def valid_constant_pairs(base: Base) -> bytes:
    return base.with_document(with_constants((True, "float32"), (3.0, "int32"), (255, "uint8")))


# -- one reader semantics (SPEC sections 2, 3): duplicate keys, nesting depth, dimensions, ranks ----------------------
def with_deep_policy_kwargs(depth: int) -> Callable[[Dict[str, Any]], None]:
    """An edit giving the document a `provenance.policy_kwargs` (free-form, SPEC section 3) whose innermost array is
    at nesting level `depth` of the document (the document object is level 1, provenance 2, policy_kwargs 3)."""
    def edit(document: Dict[str, Any]) -> None:
        nested: List[Any] = []
        for _ in range(depth - 4):
            nested = [nested]
        document["provenance"]["policy_kwargs"] = {"nested": nested}
    return edit


def reshaped_constant(shape: List[Any]) -> Callable[[Dict[str, Any]], None]:
    """An edit appending a float32 `constant` (rank 0, one element) and a `reshape` of it to `shape`, output
    `constant/reshaped`."""
    def edit(document: Dict[str, Any]) -> None:
        add_node("constant", [], "constant", value=1.0, dtype="float32")(document)
        add_node("reshape", ["constant"], "constant/reshaped", shape=shape)(document)
    return edit


@refused("2", FILE_FORMAT, "The header entry of model/pi/b:0 has the key dtype twice, \"F64\" then \"F32\": a reader "
                           "that keeps the last key (Python's and JavaScript's JSON.parse) would load it.")
def header_duplicate_key(base: Base) -> bytes:
    return base.with_header_text(('"model/pi/b:0":{', '"model/pi/b:0":{"dtype":"F64",'))


@refused("3", DOCUMENT, "The observation input's object in the document has the key kind twice (both "
                        "\"observation\").")
def document_duplicate_key(base: Base) -> bytes:
    return base.with_document_text(('"kind":"observation"', '"kind":"observation","kind":"observation"'))


@refused("2", FILE_FORMAT, "The header holds an extra key whose value is 512 nested arrays: with the header object, "
                           "the nesting is 513 deep, one more than the limit.")
def header_nested_too_deep(base: Base) -> bytes:
    return base.with_header_text(('"model/pi/b:0":{', '"deep":' + "[" * 512 + "]" * 512 + ',"model/pi/b:0":{'))


@refused("3", DOCUMENT, "provenance.policy_kwargs (free-form) holds nested arrays whose innermost is at level 513 of "
                        "the document, one more than the limit.")
def document_nested_too_deep(base: Base) -> bytes:
    return base.with_document(with_deep_policy_kwargs(513))


@refused("3.5", DOCUMENT, "A reshape of a one-element constant to [274177, 67280421310721]: 2^64 + 1 elements, which "
                          "is 1 modulo 2^64.")
def reshape_count_wraps_int64(base: Base) -> bytes:
    return base.with_document(reshaped_constant(SHAPE_BOMB))


@refused("3.5", DOCUMENT, "A reshape of a one-element constant to [true]: a dimension is a boolean, not an integer.")
def reshape_dimension_boolean(base: Base) -> bytes:
    return base.with_document(reshaped_constant([True]))


@refused("2", FILE_FORMAT, "The header entry of model/pi/b:0 has shape [1 (32 times), 2]: 33 dimensions (its 2 "
                           "elements still match data_offsets).")
def header_rank_above_32(base: Base) -> bytes:
    return base.with_entry("model/pi/b:0", shape=[1] * 32 + [2])


@refused("3.5", DOCUMENT, "An expand_dims node makes a value of rank 33 from a constant reshaped to rank 32.")
def value_rank_above_32(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        reshaped_constant([1] * 32)(document)
        add_node("expand_dims", ["constant/reshaped"], "constant/expanded", axis=0)(document)
    return base.with_document(edit)


@loads("3.5", "At the limits: provenance.policy_kwargs nested exactly 512 deep, and a constant reshaped to rank 32.")
def valid_depth_512_and_rank_32(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        with_deep_policy_kwargs(512)(document)
        reshaped_constant([1] * 32)(document)
    return base.with_document(edit)


# -- sizes (SPEC section 3.5): every value at most 2^28 bytes at batch 1 ----------------------------------------------
@refused("3.5", DOCUMENT, "A one_hot node of depth 2^26 + 1 reads the int64 [B] value `action`: float32 [B, 67108865], "
                          "2^28 + 4 bytes at batch 1, 4 bytes over the limit for one value.")
def value_over_the_size_limit(base: Base) -> bytes:
    return base.with_document(add_node("one_hot", ["action"], "action/one_hot", depth=2 ** 26 + 1))


@loads("3.5", "A one_hot node of depth 2^26 reads `action`: float32 [B, 67108864], exactly 2^28 bytes at batch 1 (the "
              "batch counted as 1), the largest value a file may declare.")
def valid_value_at_the_size_limit(base: Base) -> bytes:
    return base.with_document(add_node("one_hot", ["action"], "action/one_hot", depth=2 ** 26))


# -- one reader semantics (SPEC sections 2, 3): integer literals, lone surrogates, -0, U+0000 in names ----------------
def renamed_tensor(base: Base, old: str, new: str) -> bytes:
    """The base file with tensor `old` named `new` everywhere: its header entry (which keeps its place) and the
    document's tensor list and graph."""
    header = {(new if name == old else name): entry for name, entry in base.header.items()}
    document = json.loads(json.dumps(base.document).replace(json.dumps(old), json.dumps(new)))
    header["__metadata__"] = encode_document(document)
    return base.file(header)


@refused("2", FILE_FORMAT, "The header entry of model/pi/b:0 has shape [2.0]: a dimension written with a fraction is "
                           "not an integer (SPEC section 1), though its value is integral.")
def header_integral_float_dimension(base: Base) -> bytes:
    return base.with_entry("model/pi/b:0", shape=[2.0])


@refused("3.3", DOCUMENT, "The document's tensor list declares model/vf/w:0 with shape [3.0, 1]: a dimension written "
                          "with a fraction is not an integer (SPEC section 1), though JSON Schema draft 7 counts 3.0 "
                          "as one.")
def document_integral_float_dimension(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        entry(document["tensors"], "model/vf/w:0")["shape"] = [3.0, 1]
    return base.with_document(edit)


@refused("3", DOCUMENT, "format_version is 1.0: written with a fraction, not an integer, so the document is invalid "
                        "before its version is compared.")
def format_version_integral_float(base: Base) -> bytes:
    return base.with_document_text(('"format_version":1', '"format_version":1.0'))


@refused("3.5", DOCUMENT, "A reshape of a one-element constant to [1.0]: a dimension written with a fraction is not "
                          "an integer.")
def reshape_dimension_integral_float(base: Base) -> bytes:
    return base.with_document(reshaped_constant([1.0]))


@refused("3.5", DOCUMENT, "A layer_norm node of the logits (gamma and beta model/pi/b:0) has epsilon 1: a float "
                          "attribute written as an integer (spec/ops.md: epsilon is a float).")
def float_attribute_written_as_integer(base: Base) -> bytes:
    return base.with_document(add_node("layer_norm", ["logits", "model/pi/b:0", "model/pi/b:0"], "logits/normalized",
                                       epsilon=1))


@refused("2", FILE_FORMAT, "The header's __metadata__ holds an extra key whose value is the escape \\ud800, a lone "
                           "surrogate: no UTF-8 text holds it.")
def header_lone_surrogate(base: Base) -> bytes:
    return base.with_header_text(('"format":"sbif"', '"format":"sbif","note":"\\ud800"'))


@refused("3", DOCUMENT, "provenance.producer holds the escape \\udc00, a lone surrogate, in a document whose "
                        "format_version is 2: the document's JSON is refused before its version is read.")
def document_lone_surrogate_version_2(base: Base) -> bytes:
    header = base.header
    text = substituted(header["__metadata__"]["sbif"], ('"format_version":1', '"format_version":2'))
    header["__metadata__"]["sbif"] = substituted(text, ('"producer":"', '"producer":"\\udc00'))
    return base.file(header)


@loads("2", "The first tensor's data_offsets are written [-0, 12]: -0 is the integer 0.")
def valid_negative_zero_offset(base: Base) -> bytes:
    return base.with_header_text(('"data_offsets":[0,', '"data_offsets":[-0,'))


@refused("2", FILE_FORMAT, "The tensor model/q/w:0 is named model/q/w:0, U+0000, x, alike in the header and the "
                           "document: a tensor name holds no U+0000.")
def header_nul_in_tensor_name(base: Base) -> bytes:
    return renamed_tensor(base, "model/q/w:0", "model/q/w:0\x00x")


@refused("3", DOCUMENT, "A softmax node of the logits has the output logits/softmax, U+0000, x: a name holds no "
                        "U+0000.")
def document_nul_in_name(base: Base) -> bytes:
    return base.with_document(add_node("softmax", ["logits"], "logits/softmax\x00x"))


@refused("3.5", DOCUMENT, "A less node compares the logits with themselves and an add node adds the bool result to "
                          "itself: arithmetic on bool is not defined (spec/ops.md, add).")
def document_bool_arithmetic(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        add_node("less", ["logits", "logits"], "logits/less")(document)
        add_node("add", ["logits/less", "logits/less"], "logits/less/add")(document)
    return base.with_document(edit)


# transpose's perm (spec/ops.md): each axis once, integers counted from 0, the batch first on a batched value
def transposed(value: str, perm: List[Any]) -> Callable[[Dict[str, Any]], None]:
    """An edit appending a `transpose` of `value` by `perm`, output `<value>/transposed`."""
    return add_node("transpose", [value], value + "/transposed", perm=perm)


@refused("3.5", DOCUMENT, "A transpose of the [3, 2] tensor model/pi/w:0 by perm [0, 2]: axis 2 does not exist.")
def transpose_perm_not_a_permutation(base: Base) -> bytes:
    return base.with_document(transposed("model/pi/w:0", [0, 2]))


@refused("3.5", DOCUMENT, "A transpose of the [3, 2] tensor model/pi/w:0 by perm [1, 1]: axis 1 twice, axis 0 never.")
def transpose_perm_repeated_axis(base: Base) -> bytes:
    return base.with_document(transposed("model/pi/w:0", [1, 1]))


@refused("3.5", DOCUMENT, "A transpose of the [3, 2] tensor model/pi/w:0 by perm [-1, 0], which NumPy would take for "
                          "[1, 0]: perm counts axes from 0, never from the end.")
def transpose_perm_negative_axis(base: Base) -> bytes:
    return base.with_document(transposed("model/pi/w:0", [-1, 0]))


@refused("3.5", DOCUMENT, "A transpose of the [B, 2] value `logits` by perm [1, 0]: it moves the batch dimension.")
def transpose_moves_the_batch(base: Base) -> bytes:
    return base.with_document(transposed("logits", [1, 0]))


@refused("3.5", DOCUMENT, "A transpose of the [3, 2] tensor model/pi/w:0 by perm [true, false], which Python would "
                          "take for [1, 0]: an axis is an integer, not a boolean.")
def transpose_perm_boolean(base: Base) -> bytes:
    return base.with_document(transposed("model/pi/w:0", [True, False]))


@refused("3.5", DOCUMENT, "A transpose of the [3, 2] tensor model/pi/w:0 by perm [1.0, 0]: an axis is an integer "
                          "literal, not a number written with a fraction.")
def transpose_perm_integral_float(base: Base) -> bytes:
    return base.with_document(transposed("model/pi/w:0", [1.0, 0]))


@loads("3.5", "Transposes a reader must accept: the [3, 2] tensor model/pi/w:0 by [1, 0], the [B, 2] value `logits` "
              "by [0, 1] (the batch stays first) and a rank-0 constant by the empty perm.")
def valid_transposes(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        transposed("model/pi/w:0", [1, 0])(document)
        transposed("logits", [0, 1])(document)
        add_node("constant", [], "constant", value=1.0, dtype="float32")(document)
        transposed("constant", [])(document)
    return base.with_document(edit)


# -- format version 2 (SPEC sections 3, 3.1, 3.2, 3.4, 5.9): Stable-Baselines3's predict contract --------------------
def version_2(framework: str, **predict: Any) -> Callable[[Dict[str, Any]], None]:
    """An edit making the base a version-2 document of `framework` ("sb2" or "sb3") whose predict follows that
    framework's contract, with `predict`'s members added. The base's deterministic_default (false, PPO2's) is also
    SB3's, so an SB3 base differs only in its algorithm's name (PPO) and provenance."""
    def edit(document: Dict[str, Any]) -> None:
        document["format_version"] = SB3_FORMAT_VERSION
        document["provenance"]["framework"] = framework
        if framework == "sb3":
            document["provenance"]["algorithm"] = "PPO"
            del document["provenance"]["sb2_version"]
        document["predict"].update(contract=framework, **predict)
    return edit


@loads("3", "The base as a version-2 document under the SB2 contract (provenance.framework and predict.contract "
            "sb2): version 2 is version 1 plus these members, and such a file runs as the version-1 base.")
def valid_version_2_sb2(base: Base) -> bytes:
    return base.with_document(version_2("sb2"))


@refused("3.1", DOCUMENT, "A version-2 document without provenance.framework, which version 2 requires.")
def version_2_without_framework(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        version_2("sb2")(document)
        del document["provenance"]["framework"]
    return base.with_document(edit)


@refused("5.9", DOCUMENT, "A version-2 document without predict.contract, which version 2 requires.")
def version_2_without_contract(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        version_2("sb2")(document)
        del document["predict"]["contract"]
    return base.with_document(edit)


@refused("5.9", DOCUMENT, "predict.shared_noise names the noise input, under predict.contract sb2: shared noise is "
                          "the SB3 contract's, which SB2's predict would ignore.")
def sb3_field_under_the_sb2_contract(base: Base) -> bytes:
    return base.with_document(version_2("sb2", shared_noise=["noise_uniform"]))


@refused("3.4", DOCUMENT, "Under the SB3 contract, predict.action_mask names an input of kind action_mask that is "
                          "float32 [B, 2], not bool.")
def action_mask_not_bool(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        version_2("sb3", action_mask="action_mask")(document)
        document["inputs"].append({"name": "action_mask", "dtype": "float32", "shape": [None, 2],
                                   "kind": "action_mask"})
    return base.with_document(edit)


@refused("5.9", DOCUMENT, "Under the SB3 contract, predict.shared_noise names obs, the observation input, not a "
                          "noise input.")
def shared_noise_not_a_noise_input(base: Base) -> bytes:
    return base.with_document(version_2("sb3", shared_noise=["obs"]))


@refused("3.2", DOCUMENT, "Under the SB3 contract, a float64 Box observation space whose obs input is float64 [B, 3] "
                          "(cast to float32 by the graph, as version 1 allows): SB3 feeds Box observations as "
                          "float32.")
def box_observation_not_float32_under_sb3(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        version_2("sb3")(document)
        document["observation_space"]["dtype"] = "float64"
        entry(document["inputs"], "obs")["dtype"] = "float64"
    return base.with_document(edit)


#: the base's Box(3) observation space as key "a" of a dict space, beside a Discrete(2) key "b"
DICT_SPACE = {"kind": "dict", "spaces": [
    {"key": "a", "space": BASE_SPEC["observation"]}, {"key": "b", "space": {"kind": "discrete", "n": 2}}]}


def dict_observation(framework: str = "sb3") -> Callable[[Dict[str, Any]], None]:
    """An edit making the base a version-2 document of `framework` whose observation space is `DICT_SPACE`: its obs
    input becomes obs/a (the graph reads it under that name) and an int32 [B] input obs/b, which nothing reads,
    follows it (SPEC section 3.2)."""
    def edit(document: Dict[str, Any]) -> None:
        version_2(framework)(document)
        document["observation_space"] = copy.deepcopy(DICT_SPACE)
        entry(document["inputs"], "obs")["name"] = "obs/a"
        document["inputs"].insert(1, {"name": "obs/b", "dtype": "int32", "shape": [None], "kind": "observation"})
        for each in document["graph"]:
            each["inputs"] = ["obs/a" if name == "obs" else name for name in each["inputs"]]
    return edit


def dict_observation_with(edit: Callable[[Dict[str, Any]], None]) -> Callable[[Base], bytes]:
    """A maker of the dict-observation base (SB3 contract) with `edit` applied after."""
    def make(base: Base) -> bytes:
        def both(document: Dict[str, Any]) -> None:
            dict_observation()(document)
            edit(document)
        return base.with_document(both)
    return make


def observation_inputs(names_and_dtypes: List[Tuple[str, str]]) -> Callable[[Dict[str, Any]], None]:
    """An edit replacing the dict base's observation inputs (obs/a first, then obs/b) by these, in this order: each
    keeps the shape of the key it names (obs/a's [B, 3], any other [B])."""
    def edit(document: Dict[str, Any]) -> None:
        others = [each for each in document["inputs"] if each["kind"] != "observation"]
        document["inputs"] = [{"name": name, "dtype": dtype, "shape": [None, 3] if name == "obs/a" else [None],
                               "kind": "observation"} for name, dtype in names_and_dtypes] + others
    return edit


@loads("3.2", "Under the SB3 contract, a dict observation space of a Box(3) key 'a' and a Discrete(2) key 'b', with "
              "the observation inputs obs/a (float32 [B, 3]) and obs/b (int32 [B]) in the keys' order.")
def valid_dict_observation(base: Base) -> bytes:
    return base.with_document(dict_observation())


@refused("3.2", DOCUMENT, "A dict observation space under predict.contract sb2: dict spaces are the SB3 contract's.")
def dict_observation_under_the_sb2_contract(base: Base) -> bytes:
    return base.with_document(dict_observation("sb2"))


@refused("3.2", DOCUMENT, "The dict observation space names key 'a' twice (its observation inputs are obs/a and "
                          "obs/b).")
def dict_observation_key_twice(base: Base) -> bytes:
    return dict_observation_with(lambda document: document["observation_space"]["spaces"][1].update(key="a"))(base)


@refused("3.2", DOCUMENT, "A dict observation space of keys 'a' and 'b' whose graph has the observation input obs/a "
                          "alone.")
def dict_observation_input_missing(base: Base) -> bytes:
    return dict_observation_with(observation_inputs([("obs/a", "float32")]))(base)


@refused("3.2", DOCUMENT, "A dict observation space of keys 'a' then 'b' whose observation inputs are obs/b then obs/a.")
def dict_observation_inputs_out_of_order(base: Base) -> bytes:
    return dict_observation_with(observation_inputs([("obs/b", "int32"), ("obs/a", "float32")]))(base)


@refused("3.2", DOCUMENT, "A dict observation space of keys 'a' and 'b' with a third observation input, obs/c, that "
                          "names no key.")
def dict_observation_extra_input(base: Base) -> bytes:
    return dict_observation_with(observation_inputs([("obs/a", "float32"), ("obs/b", "int32"),
                                                     ("obs/c", "int32")]))(base)


@refused("3.2", DOCUMENT, "A dict observation space whose inputs obs/a and obs/b are preceded by an observation input "
                          "named obs, which a dict space has not.")
def obs_input_beside_a_dict_observation(base: Base) -> bytes:
    return dict_observation_with(observation_inputs([("obs", "int32"), ("obs/a", "float32"),
                                                     ("obs/b", "int32")]))(base)


@refused("3.2", DOCUMENT, "The Discrete key 'b' of a dict observation space has the observation input obs/b as int64 "
                          "[B], not int32.")
def dict_observation_input_wrong_dtype(base: Base) -> bytes:
    return dict_observation_with(observation_inputs([("obs/a", "float32"), ("obs/b", "int64")]))(base)


@refused("3.2", DOCUMENT, "Key 'b' of the dict observation space is itself a dict space (of one Discrete(2) key): "
                          "the keys' spaces are Box, Discrete, MultiDiscrete or MultiBinary.")
def dict_space_in_a_dict_space(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        spaces = document["observation_space"]["spaces"]
        spaces[1]["space"] = {"kind": "dict", "spaces": [{"key": "b", "space": spaces[1]["space"]}]}
    return dict_observation_with(edit)(base)


@refused("3.2", DOCUMENT, "A dict observation space whose list of spaces is empty (beside the inputs obs/a and obs/b).")
def dict_space_without_spaces(base: Base) -> bytes:
    return dict_observation_with(lambda document: document["observation_space"].update(spaces=[]))(base)


def dict_vecnormalize(obs_a_dtype: str, **members: Any) -> Callable[[Base], bytes]:
    """A maker of the dict-observation base with provenance.vecnormalize (SPEC section 5.7): `members` beside clip_obs
    and epsilon, and obs/a (the Box key's input) as `obs_a_dtype`."""
    def edit(document: Dict[str, Any]) -> None:
        document["provenance"]["vecnormalize"] = dict({"clip_obs": 10.0, "epsilon": 1e-8}, **members)
        entry(document["inputs"], "obs/a")["dtype"] = obs_a_dtype
    return dict_observation_with(edit)


@loads("5.7", "A dict observation space with VecNormalize statistics of its Box key 'a' (provenance.vecnormalize.keys "
              "['a']): obs/a takes raw float64 observations, obs/b (Discrete) int32 as without statistics.")
def valid_dict_observation_with_vecnormalize(base: Base) -> bytes:
    return dict_vecnormalize("float64", keys=["a"])(base)


@refused("5.7", DOCUMENT, "A dict observation space with provenance.vecnormalize but no keys, which would not say "
                          "which keys are normalized (obs/a float64).")
def dict_vecnormalize_without_keys(base: Base) -> bytes:
    return dict_vecnormalize("float64")(base)


@refused("5.7", DOCUMENT, "provenance.vecnormalize.keys ['a', 'b'] names the Discrete key 'b': VecNormalize "
                          "normalizes Box keys only.")
def dict_vecnormalize_keys_name_a_discrete_key(base: Base) -> bytes:
    return dict_vecnormalize("float64", keys=["a", "b"])(base)


@refused("5.7", DOCUMENT, "provenance.vecnormalize.keys ['a', 'a'] names key 'a' twice.")
def dict_vecnormalize_keys_name_a_key_twice(base: Base) -> bytes:
    return dict_vecnormalize("float64", keys=["a", "a"])(base)


@refused("5.7", DOCUMENT, "provenance.vecnormalize.keys ['c'] names a key the dict observation space has not.")
def dict_vecnormalize_keys_name_an_absent_key(base: Base) -> bytes:
    return dict_vecnormalize("float32", keys=["c"])(base)


@refused("5.7", DOCUMENT, "A dict observation space whose provenance.vecnormalize (keys ['a']) has frame_stack 2: "
                          "frame_stack is absent when the observation space is a dict.")
def dict_vecnormalize_with_frame_stack(base: Base) -> bytes:
    return dict_vecnormalize("float64", keys=["a"], frame_stack=2)(base)


@refused("5.7", DOCUMENT, "The normalized key 'a' (provenance.vecnormalize.keys ['a']) has the observation input obs/a "
                          "as float32 [B, 3], not the raw float64 observations.")
def dict_vecnormalize_normalized_key_float32(base: Base) -> bytes:
    return dict_vecnormalize("float32", keys=["a"])(base)


@refused("5.7", DOCUMENT, "Under the SB3 contract, a Box observation space with provenance.vecnormalize.keys ['obs'] "
                          "(obs float64): keys belongs to dict observation spaces.")
def vecnormalize_keys_without_a_dict(base: Base) -> bytes:
    def edit(document: Dict[str, Any]) -> None:
        version_2("sb3")(document)
        document["provenance"]["vecnormalize"] = {"clip_obs": 10.0, "epsilon": 1e-8, "keys": ["obs"]}
        entry(document["inputs"], "obs")["dtype"] = "float64"
    return base.with_document(edit)


# where's operands (spec/ops.md): a bool condition, x and y of one dtype, the three broadcasting together
def masked(condition: str, x: str, y: str) -> Callable[[Dict[str, Any]], None]:
    """An edit appending `less` of the logits and themselves (a [B, 2] bool mask), a rank-0 float64 and a rank-0
    float32 constant, then where(condition, x, y) of any of them, output `where`."""
    def edit(document: Dict[str, Any]) -> None:
        add_node("less", ["logits", "logits"], "mask")(document)
        add_node("constant", [], "constant/float64", value=-1e8, dtype="float64")(document)
        add_node("constant", [], "constant/float32", value=-1e8, dtype="float32")(document)
        add_node("where", [condition, x, y], "where")(document)
    return edit


@refused("3.5", DOCUMENT, "A where node whose condition is the float32 logits, not a bool value.")
def where_condition_not_bool(base: Base) -> bytes:
    return base.with_document(masked("logits", "logits", "constant/float32"))


@refused("3.5", DOCUMENT, "A where node selecting between the float32 logits and a float64 constant: x and y share "
                          "one dtype.")
def where_operands_of_different_dtypes(base: Base) -> bytes:
    return base.with_document(masked("mask", "logits", "constant/float64"))


@refused("3.5", DOCUMENT, "A where node of the [B, 2] mask and logits against the [3, 2] tensor model/pi/w:0: the "
                          "batch dimension broadcasts with 1 and itself only.")
def where_shapes_do_not_broadcast(base: Base) -> bytes:
    return base.with_document(masked("mask", "logits", "model/pi/w:0"))


@loads("3.5", "MaskablePPO's masking: where of the [B, 2] bool mask, the logits and a rank-0 float32 constant.")
def valid_where(base: Base) -> bytes:
    return base.with_document(masked("mask", "logits", "constant/float32"))


# -- writing --------------------------------------------------------------------------------------------------------
def file_name(index: int, case: Case) -> str:
    return "{:02d}_{}.sbif".format(index + 1, case.name)


def write_corpus(directory: str) -> List[str]:
    """Write every case and the manifest to `directory` (earlier corpus files there are removed); return the file
    names, manifest last."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if CORPUS_FILE.match(name):
            os.remove(os.path.join(directory, name))
    base = build_base()
    entries = []
    for index, case in enumerate(CASES):
        name = file_name(index, case)
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(case.make(base))
        described = {"file": name, "section": case.section, "defect": case.defect, "error_class": case.error_class}
        if case.valid is not None:
            described["valid"] = case.valid
        entries.append(described)
    manifest = {"description": "Malformed SBIF files, each with the error class a reader must refuse it with (SPEC "
                               "section 7), and valid files (error_class null) that must load. Generated by "
                               "make_corpus.py: do not edit.",
                "files": entries}
    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
    return [entry["file"] for entry in entries] + [MANIFEST]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.malformed.make_corpus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", default=os.path.dirname(os.path.abspath(__file__)),
                        help="where to write the corpus (default: beside this module)")
    args = parser.parse_args(argv)
    names = write_corpus(args.directory)
    size = sum(os.path.getsize(os.path.join(args.directory, name)) for name in names)
    print("wrote {} files ({:.1f} KiB) to {}".format(len(names), size / 1024, args.directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
