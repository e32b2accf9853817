"""The SBIF architecture document: JSON in the container's metadata, checked against the JSON Schema.

The format version is read before the schema is applied, so a file from a newer SBIF is refused by name
rather than with a schema error.
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import DocumentError, UnsupportedError, preview
from ..ops.nn import exact_count
from .schema_check import SchemaValidator
from .strict_json import StrictJsonError, loads_strict, outside_strings, quoted_number

FORMAT_NAME = "sbif"
METADATA_KEY = "sbif"
#: The format versions this reader implements (SPEC section 8), each validated by its own schema.
SCHEMA_PATHS = {version: os.path.join(os.path.dirname(__file__), "schema", "sbif-document-v{}.schema.json".format(
    version)) for version in (1, 2)}
FORMAT_VERSIONS = tuple(SCHEMA_PATHS)
#: SBIF's SB2 exports stay version 1, so every reader, a version-1-only one included, reads them; SB3 exports need
#: version 2's predict contract.
SB2_FORMAT_VERSION = 1
SB3_FORMAT_VERSION = 2
#: The schema's definition of a name: of a tensor, an input, a node output or an output, and of every reference to one.
NAME_DEFINITION = "#/definitions/name"
#: Most JSON values a document holds (SPEC section 3): every object, array, string, number, true, false and null, the
#: document included (object keys are not values). Real documents hold under 1000; a non-uniform Box bound of an image
#: space (210x160x3) holds 100,800. Parsed, each value becomes Python objects many times the size of its text (a
#: million tiny graph nodes took 1.67 GB), so the limit is checked on the text, before parsing.
MAX_DOCUMENT_VALUES = 2 ** 20
#: Most nodes the graph has (SPEC section 3): hundreds of times a policy's (at most 52), and it bounds the work of the
#: schema and the static check of the graph.
MAX_GRAPH_NODES = 2 ** 14
#: The dtype of each space kind without one in the document: gym's (0.17, SB2's) Discrete and MultiDiscrete draw
#: int64 values and MultiBinary int8; a Box declares its own.
SPACE_DTYPES = {"discrete": "int64", "multi_discrete": "int64", "multi_binary": "int8"}
#: Bytes of document text scanned per NumPy pass when counting values (about 30 bytes of working memory each).
_SCAN_CHUNK = 1 << 18
#: The characters JSON allows between tokens (RFC 8259 section 2).
_JSON_WHITESPACE = b" \t\n\r"

Document = Dict[str, Any]


def encode_document(document: Document) -> Dict[str, str]:
    """The safetensors `__metadata__` map that carries a document."""
    return {"format": FORMAT_NAME, METADATA_KEY: json.dumps(document, allow_nan=False, separators=(",", ":"))}


def decode_document(metadata: Mapping[str, str], source: str = "file") -> Document:
    """Parse (as strict JSON, SPEC section 1) and schema-check the document in a container's metadata."""
    if metadata.get("format") != FORMAT_NAME or METADATA_KEY not in metadata:
        raise DocumentError("{} is a safetensors file but not an SBIF file (no 'sbif' document in its "
                            "metadata)".format(source))
    text = metadata[METADATA_KEY]
    if count_values(text, stop_above=MAX_DOCUMENT_VALUES) > MAX_DOCUMENT_VALUES:
        raise DocumentError("{}: the SBIF document holds more than {} JSON values (SPEC section 3)".format(
            source, MAX_DOCUMENT_VALUES))
    try:
        document = loads_strict(text)
    except StrictJsonError as exc:
        raise DocumentError("{}: the SBIF document {} (SPEC sections 1 and 3)".format(source, exc)) from None
    except (ValueError, RecursionError) as exc:
        raise DocumentError("{}: the SBIF document is not valid JSON ({})".format(source, exc)) from None
    if not isinstance(document, dict):
        raise DocumentError("{}: the SBIF document must be a JSON object".format(source))
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DocumentError("{}: format_version must be an integer, got {}".format(source, preview(version)))
    if version not in FORMAT_VERSIONS:
        raise UnsupportedError("{}: format version {} is not supported (this SBIF reads versions {})".format(
            source, version, " and ".join(map(str, FORMAT_VERSIONS))))
    graph = document.get("graph")
    if isinstance(graph, list) and len(graph) > MAX_GRAPH_NODES:
        raise DocumentError("{}: the graph has {} nodes: at most {} (SPEC section 3)".format(
            source, len(graph), MAX_GRAPH_NODES))
    check_schema(document, source)
    return document


def count_values(text: str, stop_above: Optional[int] = None) -> int:
    """The number of JSON values in `text`, valid JSON, counted on the text so that a document too large to parse is
    refused for the cost of reading it: 1 (the outermost value) + the commas outside strings (each one starts a
    value) + the non-empty arrays and objects (whose first member no comma precedes). The C and Node readers count
    alike. With `stop_above`, a text whose characters could not reach it is not scanned (the count returned is then
    an upper bound), and counting stops once it passes it. On text that is not JSON the number means nothing, and
    the parser refuses that text anyway."""
    if stop_above is None:
        stop_above = len(text)  # above any count: a value takes a character at least
    else:
        most = 1 + text.count(",") + text.count("[") + text.count("{")
        if most <= stop_above:
            return most
    whitespace = np.frombuffer(_JSON_WHITESPACE, dtype=np.uint8)
    values = 1
    last = np.zeros(0, dtype=np.uint8)  # the last character outside strings, and not space, before this chunk
    for chunk, outside in outside_strings(text.encode("utf-8", "surrogatepass"), _SCAN_CHUNK):
        significant = chunk[outside & ~np.isin(chunk, whitespace)]
        values += int(np.count_nonzero(significant == ord(",")))
        # a closing quote is outside its string, so an array or object is empty exactly when its closer follows it
        tokens = np.concatenate([last, significant])
        opens = (tokens[:-1] == ord("[")) | (tokens[:-1] == ord("{"))
        empty = (tokens[1:] == ord("]")) | (tokens[1:] == ord("}"))
        values += int(np.count_nonzero(opens & ~empty))
        last = tokens[-1:]
        if values > stop_above:
            break
    return values


def check_schema(document: Document, source: str = "document") -> None:
    """Raise DocumentError naming the violation nearest the document's root (the most specific one inside an
    anyOf/oneOf), with its JSON path."""
    version = document.get("format_version") if isinstance(document, dict) else None
    if version not in FORMAT_VERSIONS or isinstance(version, bool):
        version = FORMAT_VERSIONS[0]  # the schema then names what is wrong with format_version
    violation = _document_validator(version).first_violation(document)
    if violation is not None:
        where = "/".join(str(part) for part in violation.path) or "(top level)"
        raise DocumentError("{}: schema violation at {}: {}".format(source, where, violation.message))


@functools.lru_cache(maxsize=None)
def _document_validator(version: int) -> SchemaValidator:
    """Built on first use: reading the schema is not part of `import sbif`. The schema's "integer" means a number
    written without fraction or exponent (SPEC section 1), as in the C and Node readers, not draft 7's integral
    number: `3.0` is no dimension; a pattern's `$` is ECMA-262's, the end of the text ("softmax\\n" is no op name).
    Names are checked with the schema, so a bad name is found before anything that depends on the graph (an unknown
    op), in every reader."""
    with open(SCHEMA_PATHS[version], encoding="utf-8") as handle:
        return SchemaValidator(json.load(handle), integer_literals=True, ecma_patterns=True,
                               refinements={NAME_DEFINITION: _nul_in_name})


def _nul_in_name(name: str) -> Iterator[str]:
    """A name holds no U+0000 (SPEC section 3): C runtimes name values with C strings, which end at the first NUL, so
    two names differing after it would be one name there."""
    if "\x00" in name:
        yield "{} contains U+0000, which no name may hold".format(preview(name))


def encode_float(value: float) -> Union[float, str]:
    """A float as exact JSON: a number (Python's repr round-trips), or 'inf', '-inf', 'nan'."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def decode_float(value: Union[float, int, str]) -> float:
    try:
        return float(value)
    except OverflowError:
        raise DocumentError("the number {} is too large for a float".format(quoted_number(str(value)))) from None


def encode_bound(array: np.ndarray) -> Any:
    """A Box bound: one float when every element is equal, else the row-major flat list."""
    flat = np.asarray(array, dtype=np.float64).reshape(-1)
    if flat.size > 0 and np.all((flat == flat[0]) | (np.isnan(flat) & np.isnan(flat[0]))):
        return encode_float(flat[0])
    return [encode_float(v) for v in flat]


def decode_bound(bound: Any, shape: Sequence[int], dtype: str) -> np.ndarray:
    """The full array of a Box bound stored by `encode_bound`."""
    check_bound(bound, shape)
    if isinstance(bound, list):
        values = np.array([decode_float(v) for v in bound], dtype=np.float64).reshape(tuple(shape))
    else:
        values = np.full(tuple(shape), decode_float(bound), dtype=np.float64)
    return values.astype(dtype)


def check_bound(bound: Any, shape: Sequence[int]) -> None:
    """Check a Box bound stored by `encode_bound` without building the array (the shape may be huge)."""
    size = exact_count(shape)
    if isinstance(bound, list) and len(bound) != size:
        raise DocumentError("a Box bound has {} values for a space of {} elements".format(len(bound), size))
    for value in bound if isinstance(bound, list) else [bound]:
        decode_float(value)
