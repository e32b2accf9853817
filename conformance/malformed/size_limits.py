"""Files at and just beyond SPEC section 3's size limits of the document (2^20 JSON values, 2^14 graph nodes).

They are edits of the reader-refusal corpus's base file (`make_corpus.build_base`), but too large for the corpus
(which is capped, see tests/conformance/test_refusal.py): a document over the value limit takes megabytes, one over
the node limit about a megabyte. The tests of each reader (Python, C, Node) make them from here and check that every
reader decides alike, with the same error class.
"""
from __future__ import annotations

import json
from typing import Any, Callable, List, Optional, Tuple

from sbif.errors import DocumentError, UnsupportedError
from sbif.format.document import MAX_DOCUMENT_VALUES, MAX_GRAPH_NODES, count_values, encode_document

from .make_corpus import Base, add_node

#: Padding items repeated in `provenance.policy_kwargs` (free-form, SPEC section 3) to reach a number of values: empty
#: and non-empty arrays and objects, and a string holding commas, brackets and an escaped quote, so that a reader
#: counting values on the text must tell all of them apart.
_PADDING_PATTERN: List[Any] = [0, [], {}, 'a,[{"', [0, [1]], {"k": None}]


def with_values(values: int, format_version: int = 1) -> Callable[[Base], bytes]:
    """A maker of the base file whose document holds exactly `values` JSON values (padded in policy_kwargs)."""
    def make(base: Base) -> bytes:
        document = base.document
        document["format_version"] = format_version
        padding: List[Any] = []
        document["provenance"]["policy_kwargs"] = {"padding": padding}
        missing = values - count_values(encode_document(document)["sbif"])
        pattern_values = _exact_values(_PADDING_PATTERN) - 1  # its items' values, without the list holding them
        repeats = max(missing // pattern_values - 1, 0)
        padding.extend(_PADDING_PATTERN * repeats)
        padding.extend([0] * (missing - repeats * pattern_values))
        text = encode_document(document)["sbif"]
        if count_values(text) != values or _exact_values(json.loads(text)) != values:
            raise RuntimeError("the padded document does not hold {} values: the padding must be rewritten".format(
                values))
        return _with_document_text(base, text)
    return make


def with_nodes(nodes: int, format_version: int = 1) -> Callable[[Base], bytes]:
    """A maker of the base file whose graph has `nodes` nodes: the base's, then relu nodes of the observation that
    nothing uses (each valid, SPEC section 3.5)."""
    def make(base: Base) -> bytes:
        document = base.document
        document["format_version"] = format_version
        for index in range(nodes - len(document["graph"])):
            add_node("relu", ["obs"], "size_limit_relu_{}".format(index))(document)
        return _with_document_text(base, encode_document(document)["sbif"])
    return make


def with_many_nodes(nodes: int) -> Callable[[Base], bytes]:
    """A maker of the base file with `nodes` tiny relu nodes first in its graph, written as text (fast for millions):
    far beyond both limits, the shape of issue #18's 79 MB file of a million nodes, which readers must refuse for the
    cost of reading it."""
    node = '{"op":"relu","inputs":["obs"],"outputs":["r"],"attrs":{}},'
    return lambda base: base.with_document_text(('"graph":[', '"graph":[' + node * nodes))


def _with_document_text(base: Base, text: str) -> bytes:
    header = base.header
    header["__metadata__"]["sbif"] = text
    return base.file(header)


def _exact_values(value: Any) -> int:
    """The JSON values in a parsed document, counted on the tree (a check of `count_values`, which counts the text)."""
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


#: (id, maker from the base, the class every reader refuses the file with, or None: it loads). A document over the
#: value limit is refused before its version is read (a rule of its JSON, as nesting and duplicate keys are); the node
#: limit is checked after the version, before the schema.
SIZE_LIMIT_CASES: List[Tuple[str, Callable[[Base], bytes], Optional[str]]] = [
    ("values-at-the-limit", with_values(MAX_DOCUMENT_VALUES), None),
    ("values-over-the-limit", with_values(MAX_DOCUMENT_VALUES + 1), DocumentError.__name__),
    ("values-over-the-limit-version-3", with_values(MAX_DOCUMENT_VALUES + 1, format_version=3),
     DocumentError.__name__),
    ("nodes-at-the-limit", with_nodes(MAX_GRAPH_NODES), None),
    ("nodes-over-the-limit", with_nodes(MAX_GRAPH_NODES + 1), DocumentError.__name__),
    ("nodes-over-the-limit-version-3", with_nodes(MAX_GRAPH_NODES + 1, format_version=3), UnsupportedError.__name__),
]


def size_limit_file(directory: str, case_id: str) -> str:
    """Write the file of one case of SIZE_LIMIT_CASES into `directory`; its path."""
    from .make_corpus import build_base

    make = {case[0]: case[1] for case in SIZE_LIMIT_CASES}[case_id]
    path = "{}/{}.sbif".format(directory, case_id)
    with open(path, "wb") as handle:
        handle.write(make(build_base()))
    return path

