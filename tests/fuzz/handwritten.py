"""Hand-minimized files for the differential reader tests, each one edit of the reader-refusal corpus's valid file
(conformance/malformed/44_valid.sbif):

- `REPRODUCERS`: disagreements the fuzzers found that are still open, written to tests/fuzz/reproducers/ with each
  reader's verdict today (each explained in tests/fuzz/README.md);
- `AGREED`: cases where the readers disagreed until a fix, and edges next to them, written to tests/fuzz/corpus/
  as `hand_*.sbif` and replayed with the rest of the corpus.

    .venv/bin/python -m tests.fuzz.handwritten     # rewrites both sets
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict

from .mutations import join_container, split_container
from .readers import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(ROOT, "conformance", "malformed", "44_valid.sbif")
#: A literal longer than any double or int64 (and than the 4300 digits Python 3.11's int() reads).
LONG_LITERAL = "7" * 5000

Header = Dict[str, Any]
Edit = Callable[[Header, Dict[str, Any]], None]


def _tensor_name_with_nul(header: Header, document: Dict[str, Any]) -> None:
    """Rename `model/vf/w:0` to a name holding U+0000 consistently: header, tensor list and the node using it."""
    old, new = "model/vf/w:0", "model/vf/w:0\u0000x"
    header[new] = header.pop(old)
    for entry in document["tensors"]:
        if entry["name"] == old:
            entry["name"] = new
    for node in document["graph"]:
        node["inputs"] = [new if name == old else name for name in node["inputs"]]


def _set_kwargs(value: Any) -> Edit:
    return lambda header, document: document["provenance"].update(policy_kwargs={"x": value})


#: name -> (edit of the parsed header and document, raw replacements of the written header text, each reader's verdict
#: today as {"python": "loaded" or an error class, "c": ..., "node": ...}: the test checks them, so a fix, or a
#: regression, in any reader shows). None open: the ten the fuzzers found are in AGREED since the readers agree.
REPRODUCERS: Dict[str, Any] = {}

AGREED = {
    # open disagreements until the readers were aligned (commits afbf06c..980905d), kept as regressions:
    # Python and Node read 3.0 as an integer (JSON Schema draft 7), C refused it (an integer literal is expected)
    "hand_integral_float_document_dimension": (lambda h, d: d["tensors"][0].update(shape=[3.0, 1]), {}),
    "hand_integral_float_action_space_n": (lambda h, d: d["action_space"].update(n=2.0), {}),
    # Node alone read 1.0 and 3.0 as integers here
    "hand_integral_float_format_version": (lambda h, d: d.update(format_version=1.0), {}),
    "hand_integral_float_header_dimension": (lambda h, d: h["model/vf/w:0"].update(shape=[3.0, 1]), {}),
    # Node alone accepted a lone surrogate (not Unicode text)
    "hand_lone_surrogate_in_header": (lambda h, d: h["__metadata__"].update(note="\ud800"), {}),
    "hand_lone_surrogate_in_document": (lambda h, d: d["provenance"].update(producer="sbif \udc00"), {}),
    # ... and so named the unsupported version where the others refuse the text first (section 7's order)
    "hand_lone_surrogate_with_version_3": (lambda h, d: d.update(format_version=3, provenance=dict(
        d["provenance"], producer="\ud800")), {}),
    # C alone refused -0 as an offset (the integer 0)
    "hand_negative_zero_data_offset": (None, {'"data_offsets":[0,': '"data_offsets":[-0,'}),
    # C alone refused U+0000 in names (now SPEC sections 2 and 3 forbid it in every reader)
    "hand_nul_in_tensor_name": (_tensor_name_with_nul, {}),
    # ... so where the document then failed (it lists the old name), C named the container, the others the document
    "hand_nul_in_tensor_name_of_the_header_only": (
        lambda h, d: h.update({"model/vf/w:0\u0000x": h.pop("model/vf/w:0")}), {}),
    # Python 3.11 refused these as "not valid JSON" (int() reads at most 4300 digits): a valid file, and an
    # unsupported version that must be named first (strict_json.LongInteger)
    "hand_long_integer_in_policy_kwargs": (_set_kwargs(0), {'\\"x\\":0': '\\"x\\":' + LONG_LITERAL}),
    "hand_long_integer_with_version_3": (lambda h, d: d.update(format_version=3, provenance=dict(
        d["provenance"], policy_kwargs={"x": 0})), {'\\"x\\":0': '\\"x\\":-' + LONG_LITERAL}),
    "hand_long_integer_as_offset": (None, {'"data_offsets":[0,': '"data_offsets":[' + LONG_LITERAL + ","}),
    "hand_long_integer_as_bound": (lambda h, d: d["observation_space"].update(low=0), {'\\"low\\":0': '\\"low\\":-' +
                                                                                       LONG_LITERAL}),
    # surrogate pairs are one character: valid everywhere, escaped or not
    "hand_surrogate_pair_escaped": (lambda h, d: d["provenance"].update(producer="sbif \U0001F600"), {}),
    "hand_surrogate_pair_in_header": (lambda h, d: h["__metadata__"].update(note="\U0001F600"), {}),
}


def build(edit: Any, replacements: Dict[str, str]) -> bytes:
    """The base file with `edit` applied to its parsed header and document, written back (document escaped to
    ASCII, so a lone surrogate becomes the escape `\\ud800`), then the raw replacements."""
    with open(BASE, "rb") as handle:
        header_bytes, buffer = split_container(handle.read())
    header = json.loads(header_bytes.decode("utf-8"))
    document = json.loads(header["__metadata__"]["sbif"])
    if edit is not None:
        edit(header, document)
    header["__metadata__"]["sbif"] = json.dumps(document, separators=(",", ":"))
    text = json.dumps(header, separators=(",", ":"))
    for old, new in replacements.items():
        if old not in text:
            raise ValueError("{!r} is not in the header".format(old))
        text = text.replace(old, new, 1)
    return join_container(text.encode("ascii"), buffer)


def files() -> Dict[str, bytes]:
    """Path relative to tests/fuzz -> bytes, for every hand-written file."""
    written = {os.path.join("reproducers", name + ".sbif"): build(edit, replacements)
               for name, (edit, replacements, _) in REPRODUCERS.items()}
    written.update({os.path.join("corpus", name + ".sbif"): build(*recipe) for name, recipe in AGREED.items()})
    return written


def main() -> None:
    for relative, data in files().items():
        os.makedirs(os.path.dirname(os.path.join(HERE, relative)), exist_ok=True)
        with open(os.path.join(HERE, relative), "wb") as handle:
            handle.write(data)
        print("wrote tests/fuzz/" + relative)


if __name__ == "__main__":
    main()
