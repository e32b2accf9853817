"""Mutations of real SBIF files, shared by the Hypothesis test and the atheris harness.

Every decision is drawn from a `Choices` (Hypothesis draws, so failures shrink; or a seeded `random.Random` for
atheris' custom mutator), so both fuzzers explore the same space:

- byte level: bit flips, byte overwrites, inserts and deletes (mostly in the header, where the reader's decisions
  are), truncation, and the 8-byte header length changed;
- structure aware: the header JSON and the SBIF document inside it are parsed into a tree that keeps key order
  and duplicates (`Pairs`) and can hold literal tokens (`Raw`: `NaN`, `1e400`, `2.0`, 400-digit integers) and
  deep nesting (`Nested`), mutated — keys deleted, duplicated, renamed, values swapped or replaced by numbers of
  every kind, dtypes, shapes and offsets changed, graph nodes dropped, duplicated, reordered, their op names,
  inputs and attributes changed — and serialised again, so duplicate keys and tokens Python's `json` would never
  write reach the readers; then, sometimes, raw text edits (invalid UTF-8, lone surrogates, odd whitespace,
  trailing commas) of the header or the document text.
"""
from __future__ import annotations

import json
import struct
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from sbif.format.container import DTYPE_CODES, MAX_RANK
from sbif.format.strict_json import JSON_MAX_DEPTH
from sbif.ops import REGISTRY

#: Length of the safetensors header-length prefix.
PREFIX_BYTES = 8
#: The largest header a reader accepts (SPEC section 2).
HEADER_LIMIT = 100 * 1024 * 1024
DTYPE_NAMES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool")


class Choices:
    """The source of every decision: `integer(low, high)` (both ends included); the rest derives from it."""

    def __init__(self, integer: Callable[[int, int], int]):
        self.integer = integer

    def below(self, count: int) -> int:
        return self.integer(0, count - 1)

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.below(len(options))]

    def chance(self, one_in: int) -> bool:
        return self.below(one_in) == 0

    def raw_bytes(self, most: int) -> bytes:
        return bytes(self.integer(0, 255) for _ in range(self.integer(1, most)))


class Pairs(list):
    """A JSON object as its (key, value) members in order, duplicates kept."""


class Raw(str):
    """A JSON token written as is (`NaN`, `1e400`, `2.0`, `-0`, a 400-digit integer)."""


class Nested:
    """`value` inside `levels` one-element arrays (deep nesting without deep recursion)."""

    def __init__(self, value: Any, levels: int):
        self.value, self.levels = value, levels


JsonTree = Union[None, bool, int, float, str, Raw, Pairs, list, Nested]


# -- parsing and writing ---------------------------------------------------------------------------------------------
def parse_tree(text: str) -> JsonTree:
    """JSON text as a tree whose objects are `Pairs`; NaN/Infinity tokens kept as `Raw`. ValueError if not JSON."""
    return json.loads(text, object_pairs_hook=Pairs, parse_constant=Raw, parse_float=_float_token)


def _float_token(text: str) -> Union[float, Raw]:
    value = float(text)
    return value if repr(value) == text else Raw(text)  # keep 1e400, 2.50 and the like exactly as written


def write_tree(tree: JsonTree, ascii_only: bool = False) -> str:
    """A tree as compact JSON text, duplicates and raw tokens as they are; with `ascii_only`, strings escape every
    character beyond ASCII (a lone surrogate becomes the escape `\\ud800`, valid JSON text), else they carry them
    as they are."""
    parts: List[str] = []
    stack: List[Any] = [tree]
    while stack:  # iterative: nesting deeper than Python's recursion limit is one of the mutations
        item = stack.pop()
        if isinstance(item, _Text):
            parts.append(item.text)
        elif isinstance(item, Raw):
            parts.append(str(item))
        elif isinstance(item, Nested):
            parts.append("[" * item.levels)
            stack.append(_Text("]" * item.levels))
            stack.append(item.value)
        elif isinstance(item, Pairs):
            parts.append("{")
            stack.append(_Text("}"))
            for index in range(len(item) - 1, -1, -1):
                key, value = item[index]
                stack.append(value)
                stack.append(_Text((json.dumps(key, ensure_ascii=ascii_only) if isinstance(key, str)
                                    else str(key)) + ":"))
                if index:
                    stack.append(_Text(","))
        elif isinstance(item, list):
            parts.append("[")
            stack.append(_Text("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Text(","))
        elif isinstance(item, float):
            parts.append(repr(item) if item == item and abs(item) != float("inf") else "NaN")
        else:
            parts.append(json.dumps(item, ensure_ascii=ascii_only))
    return "".join(parts)


class _Text:
    """Punctuation queued by `write_tree`."""

    def __init__(self, text: str):
        self.text = text


def split_container(data: bytes) -> Optional[Tuple[bytes, bytes]]:
    """(header text bytes, data buffer) of a file whose length prefix fits, else None."""
    if len(data) < PREFIX_BYTES:
        return None
    (length,) = struct.unpack("<Q", data[:PREFIX_BYTES])
    if length > len(data) - PREFIX_BYTES:
        return None
    return data[PREFIX_BYTES:PREFIX_BYTES + length], data[PREFIX_BYTES + length:]


def join_container(header: bytes, buffer: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header + buffer


# -- byte-level mutations ------------------------------------------------------------------------------------------------
def mutate_bytes(data: bytes, choices: Choices) -> bytes:
    """One byte-level mutation; positions fall in the length prefix and header three times in four."""
    parts = split_container(data)
    header_end = PREFIX_BYTES + len(parts[0]) if parts else len(data)
    kind = choices.below(7)
    if kind == 6 or not data:
        return _change_header_length(data, choices)
    position = choices.below(max(header_end, 1)) if choices.below(4) else choices.below(len(data))
    position = min(position, len(data) - 1)
    if kind == 0:
        flipped = data[position] ^ (1 << choices.below(8))
        return data[:position] + bytes([flipped]) + data[position + 1:]
    if kind == 1:
        return data[:position] + bytes([choices.integer(0, 255)]) + data[position + 1:]
    if kind == 2:
        return data[:position] + choices.raw_bytes(8) + data[position:]
    if kind == 3:
        return data[:position] + data[position + choices.integer(1, 16):]
    if kind == 4:
        return data[:position]
    return data[:position] + choices.choice(_ODD_BYTES) + data[position + 1:]


#: Byte sequences that probe a UTF-8 and JSON reader: invalid and overlong UTF-8, a BOM, NUL, control characters.
_ODD_BYTES = (b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00", b"\x0b", b"\x7f",
              b"\xf4\x90\x80\x80", b"\xe2\x80\xa8", b"\xc2\xa0")


def _change_header_length(data: bytes, choices: Choices) -> bytes:
    (length,) = struct.unpack("<Q", data[:PREFIX_BYTES].ljust(PREFIX_BYTES, b"\0"))
    new_length = choices.choice([length + 1, length - 1, length + 8, length - 8, 0, len(data), HEADER_LIMIT,
                                 HEADER_LIMIT + 1, 2 ** 63, 2 ** 64 - 1, choices.integer(0, 2 ** 64 - 1)])
    return struct.pack("<Q", new_length % 2 ** 64) + data[PREFIX_BYTES:]


# -- tree mutations ------------------------------------------------------------------------------------------------------
def _weird_values(choices: Choices, depth: int) -> List[Any]:
    """Replacement values: numbers of every kind and range, tokens that are not JSON, strings, containers."""
    return [0, 1, -1, 2, 32, 33, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -2 ** 63, -2 ** 63 - 1,
            Raw("1" * 400), Raw("7" * 5000), Raw("-" + "9" * 30), 1.5, 2.0, -0.5, Raw("1e400"), Raw("-1e400"), Raw("1e-400"),
            Raw("1E2"), Raw("-0"), Raw("0.0"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), 1e308, 5e-324,
            True, False, None, "", "x", "nan", "inf", "-inf", "\u0000", "\ud800", "\U0001F600", [], Pairs(),
            [None], [1, 2], [None, 2], Pairs([("a", 1)]),
            Nested(0, max(JSON_MAX_DEPTH - depth + choices.integer(-1, 1), 1)),
            choices.choice(DTYPE_NAMES), choices.choice(sorted(DTYPE_CODES)), choices.choice(sorted(REGISTRY))]


def _locations(tree: JsonTree) -> List[Tuple[Any, Any, int]]:
    """Every (container, key or index, depth) of the tree, the root excluded (it has no container)."""
    found: List[Tuple[Any, Any, int]] = []
    stack: List[Tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Pairs):
            for index, (_, value) in enumerate(node):
                found.append((node, index, depth))
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found.append((node, index, depth))
                stack.append((value, depth + 1))
    return found


def _is_array(value: Any) -> bool:
    """A JSON array of the tree (a `Pairs` is a list too, but an object)."""
    return isinstance(value, list) and not isinstance(value, Pairs)


def _holds(tree: JsonTree, container: Any) -> bool:
    """Whether `container` is `tree` or inside it (by identity)."""
    return tree is container or any(place is container for place, _, _ in _locations(tree))


def _get(container: Any, index: int) -> Any:
    return container[index][1] if isinstance(container, Pairs) else container[index]


def _set(container: Any, index: int, value: Any) -> None:
    if isinstance(container, Pairs):
        container[index] = (container[index][0], value)
    else:
        container[index] = value


def _strings(tree: JsonTree) -> List[str]:
    """Every key and string value of the tree (names to rename things to)."""
    names = set()
    for container, index, _ in _locations(tree):
        if isinstance(container, Pairs):
            names.add(container[index][0])
        value = _get(container, index)
        if isinstance(value, str) and not isinstance(value, Raw):
            names.add(value)
    return sorted(names)


def mutate_tree(tree: JsonTree, choices: Choices) -> JsonTree:
    """One structural mutation of a parsed header or document (in place where possible); returns the tree."""
    places = _locations(tree)
    if not places or choices.chance(16):
        return choices.choice([Pairs(), [], None, 1, "sbif", Nested(tree, choices.choice([1, 2, JSON_MAX_DEPTH]))])
    graph = _graph_nodes(tree)
    if graph is not None and choices.chance(3):
        _mutate_graph(graph, tree, choices)
        return tree
    container, index, depth = choices.choice(places)
    value = _get(container, index)
    kind = choices.below(9)
    if kind == 0:  # delete the member or element
        del container[index]
    elif kind == 1:  # duplicate it: the same key twice in one object, or an element twice
        container.insert(index + choices.below(2), container[index])
    elif kind == 2 and isinstance(container, Pairs):  # rename the key
        container[index] = (_new_name(container[index][0], tree, choices), value)
    elif kind == 3:  # swap with another value anywhere (not one inside the other: the tree would hold itself)
        other, other_index, _ = choices.choice(places)
        other_value = _get(other, other_index)
        if not (_holds(value, other) or _holds(other_value, container)):
            _set(other, other_index, value)
            _set(container, index, other_value)
    elif kind == 4 and isinstance(value, int) and not isinstance(value, bool):  # a nearby or related number
        _set(container, index, choices.choice([value + 1, value - 1, value * 2, -value, value + 2 ** 64,
                                               value * 2 ** 32, Raw(str(value) + ".0"), Raw(str(value) + "e0")]))
    elif kind == 5 and _is_array(value):  # shapes and offsets
        _mutate_list(value, choices)
    elif kind == 6 and isinstance(value, str) and not isinstance(value, Raw):  # names, dtypes, op names
        _set(container, index, _new_name(value, tree, choices))
    elif kind == 7:  # nest it
        levels = choices.choice([1, 2, JSON_MAX_DEPTH - depth - 1, JSON_MAX_DEPTH - depth, JSON_MAX_DEPTH - depth + 1])
        _set(container, index, Nested(value, max(levels, 1)))
    else:
        _set(container, index, choices.choice(_weird_values(choices, depth)))
    return tree


def _new_name(name: Any, tree: JsonTree, choices: Choices) -> str:
    """Another name for `name` (which a mutation may have made a number or a list: then a name is made up)."""
    name = name if isinstance(name, str) else "x"
    kind = choices.below(6)
    if kind == 0:
        return choices.choice(_strings(tree) or [name])
    if kind == 1:
        return name + choices.choice(["x", "0", " ", ":0", "\u0000", "\ud800", "\u00e9"])
    if kind == 2:
        return name.upper() if name != name.upper() else name.lower()
    if kind == 3:
        return name[:-1]
    if kind == 4:
        return choices.choice(DTYPE_NAMES + tuple(sorted(DTYPE_CODES)))
    return choices.choice(sorted(REGISTRY) + ["conv3d", "Linear", ""])


def _mutate_list(values: list, choices: Choices) -> None:
    kind = choices.below(5)
    if kind == 0:
        values.append(choices.choice([1, 0, None, 2 ** 63]))
    elif kind == 1 and values:
        del values[choices.below(len(values))]
    elif kind == 2:
        values.extend([1] * (MAX_RANK + choices.integer(-1, 1) - len(values)))
    elif kind == 3 and values:
        values.reverse()
    elif values:
        position = choices.below(len(values))
        values[position] = choices.choice([0, 1, -1, None, True, 2 ** 63 - 1, 2 ** 63, 2 ** 62, Raw("4.0"),
                                           Raw("1e400"), "4"])


def _graph_nodes(tree: JsonTree) -> Optional[list]:
    """The document's `graph` list, when `tree` is a document."""
    if isinstance(tree, Pairs):
        for key, value in tree:
            if key == "graph" and _is_array(value):
                return value
    return None


def _mutate_graph(graph: list, tree: JsonTree, choices: Choices) -> None:
    """Nodes dropped, duplicated, reordered; an op renamed; an input renamed; an attribute changed."""
    if not graph:
        return
    index = choices.below(len(graph))
    node = graph[index]
    kind = choices.below(7)
    if kind == 0:
        del graph[index]
    elif kind == 1:
        graph.insert(index, node)
    elif kind == 2:
        other = choices.below(len(graph))
        graph[index], graph[other] = graph[other], graph[index]
    elif kind == 3:
        graph.append(graph.pop(index))
    elif isinstance(node, Pairs):
        members = dict(node)
        if kind == 4 and "op" in members:
            node[[key for key, _ in node].index("op")] = ("op", _new_name(members["op"], tree, choices))
        elif kind == 5 and _is_array(members.get("inputs")) and members["inputs"]:
            inputs = members["inputs"]
            position = choices.below(len(inputs))
            inputs[position] = _new_name(inputs[position] if isinstance(inputs[position], str) else "x", tree,
                                         choices)
        elif isinstance(members.get("attrs"), Pairs):
            attrs = members["attrs"]
            if attrs and not choices.chance(4):
                position = choices.below(len(attrs))
                attrs[position] = (attrs[position][0], choices.choice(_weird_values(choices, 4)))
            else:
                attrs.append((choices.choice(["axis", "shape", "strides", "padding", "value", "dtype", "alpha",
                                              "epsilon", "sizes", "depth", "bogus"]),
                              choices.choice(_weird_values(choices, 4))))


# -- text edits ------------------------------------------------------------------------------------------------------------
def edit_text(text: bytes, choices: Choices) -> bytes:
    """A raw edit of JSON text: bytes JSON or UTF-8 forbid, escapes, odd whitespace, trailing commas, comments."""
    if not text:
        return choices.choice(_ODD_BYTES)
    position = choices.below(len(text) + 1)
    insert = choices.choice(_ODD_BYTES + (b"\\ud800", b"\\udc00\\ud800", b"\\u0000", b"\t", b"\r", b"\x0c", b",",
                                          b"/**/", b"\\x41", b"'", b"NaN", b"1e400", b"-", b"0" * 400))
    if choices.chance(3):
        return text[:position] + insert + text[position + 1:]
    return text[:position] + insert + text[position:]


# -- a whole mutation ----------------------------------------------------------------------------------------------------------
def mutate_file(data: bytes, choices: Choices) -> bytes:
    """One to three mutations of an SBIF file: structure-aware when its header parses, byte-level otherwise or by
    choice."""
    for _ in range(choices.integer(1, 3)):
        mutated = None if choices.chance(3) else mutate_structure(data, choices)
        data = mutated if mutated is not None else mutate_bytes(data, choices)
    return data


def mutate_structure(data: bytes, choices: Choices) -> Optional[bytes]:
    """Mutate the header tree, the metadata, or the document inside it; None when the header is not JSON."""
    parts = split_container(data)
    if parts is None:
        return None
    header_text, buffer = parts
    try:
        header = parse_tree(header_text.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    document_place = _document_place(header)
    if document_place is not None and choices.below(3):
        metadata, position = document_place
        document_text = metadata[position][1]
        try:
            document = parse_tree(document_text)
        except (ValueError, RecursionError):
            document = None
        if document is not None and not choices.chance(5):
            document_text = write_tree(mutate_tree(document, choices), ascii_only=choices.chance(2))
        if choices.chance(4):  # invalid UTF-8 comes back as lone surrogates, written as CESU-8 or escapes below
            document_text = edit_text(document_text.encode("utf-8", "surrogatepass"), choices).decode(
                "utf-8", "surrogateescape")
        metadata[position] = ("sbif", document_text)
    else:
        header = mutate_tree(header, choices)
    # surrogates left unescaped become CESU-8 bytes (invalid UTF-8) in the header
    header_bytes = write_tree(header, ascii_only=choices.chance(2)).encode("utf-8", "surrogatepass")
    if choices.chance(4):
        header_bytes = edit_text(header_bytes, choices)
    return join_container(header_bytes, buffer)


def _document_place(header: JsonTree) -> Optional[Tuple[Pairs, int]]:
    """(the metadata object, the index of its `sbif` member) when the document is a string in it."""
    if not isinstance(header, Pairs):
        return None
    for key, value in header:
        if key == "__metadata__" and isinstance(value, Pairs):
            for index, (name, text) in enumerate(value):
                if name == "sbif" and isinstance(text, str) and not isinstance(text, Raw):
                    return value, index
    return None
