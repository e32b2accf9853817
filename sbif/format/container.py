"""The safetensors container: a checked reader (zero-copy over mmap) and a writer.

We parse the header ourselves so that every defect is reported by name and every declared shape is checked
against the real byte counts before a single array is created. Writing is ours too, so that exports are
byte-for-byte reproducible; the `safetensors` package itself reads every file we write (tested).
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from typing import Dict, Mapping, Tuple

import numpy as np

from ..errors import FileFormatError, preview
from ..ops.nn import MAX_DIM, exact_count
from .strict_json import StrictJsonError, loads_strict, outside_strings

#: Largest header we accept, as the safetensors reference implementation does (100 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: Most dimensions a tensor or graph value has (SPEC sections 2 and 3.5): NumPy 1.x's limit, so a file loads alike
#: on every NumPy and in the C runtime.
MAX_RANK = 32
#: Most tensors a header lists, and most keys its `__metadata__` has (SPEC section 2): hundreds of times what an SB2
#: policy needs (about 50 tensors), and low enough that a header's objects stay within a few MiB (each entry becomes
#: Python objects twenty times the size of its text).
MAX_ENTRIES = 2 ** 14
#: What a header within those limits can hold at most, counted before it is parsed: objects (the header,
#: `__metadata__` and one per tensor), arrays (a shape and data_offsets per tensor) and commas (between the header's
#: members, `__metadata__`'s, and per tensor at most 2 between its keys, 31 in a shape of MAX_RANK dimensions and 1 in
#: data_offsets).
_MOST_OBJECTS = MAX_ENTRIES + 2
_MOST_ARRAYS = 2 * MAX_ENTRIES
_MOST_COMMAS = 2 * MAX_ENTRIES + MAX_ENTRIES * (2 + (MAX_RANK - 1) + 1)
#: Bytes of header text scanned per NumPy pass when counting (a few bytes of working memory each).
_SCAN_CHUNK = 1 << 20

#: safetensors dtype code -> little-endian NumPy dtype.
DTYPE_CODES = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("uint8"),
    "I8": np.dtype("int8"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}
CODE_OF_DTYPE = {dtype.name: code for code, dtype in DTYPE_CODES.items()}


def dtype_code(dtype: np.dtype) -> str:
    """The safetensors code of a NumPy dtype, e.g. float32 -> 'F32'."""
    try:
        return CODE_OF_DTYPE[np.dtype(dtype).name]
    except KeyError:
        raise FileFormatError("dtype {} cannot be stored in a safetensors file".format(np.dtype(dtype))) from None


def read_container(path: str) -> Tuple[Dict[str, str], Dict[str, np.ndarray]]:
    """Read a safetensors file: its `__metadata__` map and read-only arrays that view the mapped file."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise FileFormatError("cannot open {}: {}".format(path, exc.strerror or exc)) from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size < 8:
            raise FileFormatError("{}: truncated file ({} bytes; a safetensors file starts with an 8-byte header "
                                  "length)".format(path, size))
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > MAX_HEADER_BYTES:
            raise FileFormatError("{}: header length {} exceeds the {} byte limit (is this a safetensors "
                                  "file?)".format(path, header_len, MAX_HEADER_BYTES))
        if 8 + header_len > size:
            raise FileFormatError("{}: truncated file: header says {} bytes but only {} follow".format(
                path, header_len, size - 8))
        metadata, entries = parse_header(handle.read(header_len), path)
        data_start = 8 + header_len
        data_len = size - data_start
        check_layout(entries, data_len, path)
        if data_len == 0:
            return metadata, {name: _shaped(np.zeros(0, dtype), shape, name, path)
                              for name, (dtype, shape, _) in entries.items()}
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    tensors = {}
    for name, (dtype, shape, (begin, end)) in entries.items():
        count = (end - begin) // dtype.itemsize
        array = np.frombuffer(mapped, dtype=dtype, count=count, offset=data_start + begin)
        tensors[name] = _shaped(array, shape, name, path)
    return metadata, tensors


def parse_header(raw: bytes, path: str = "<bytes>"):
    """Decode the JSON header (strict JSON, as the document) into (metadata, {name: (dtype, shape, (begin, end))}),
    checking every field."""
    _check_structure_counts(raw, path)
    try:
        header = loads_strict(raw.decode("utf-8"))
    except StrictJsonError as exc:
        raise FileFormatError("{}: the header {}".format(path, exc)) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FileFormatError("{}: the header is not valid JSON ({})".format(path, exc)) from None
    if not isinstance(header, dict):
        raise FileFormatError("{}: the header must be a JSON object".format(path))
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise FileFormatError("{}: __metadata__ must map strings to strings".format(path))
    if len(header) > MAX_ENTRIES or len(metadata) > MAX_ENTRIES:
        raise FileFormatError("{}: the header lists {} tensors and {} metadata keys: at most {} of each".format(
            path, len(header), len(metadata), MAX_ENTRIES))
    entries = {}
    for name, entry in header.items():
        where = "{}: tensor {}".format(path, preview(name))
        if "\x00" in name:  # the C API names tensors with C strings, which end at the first NUL
            raise FileFormatError("{}: a tensor name may not contain U+0000".format(where))
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise FileFormatError("{} needs exactly the keys dtype, shape, data_offsets".format(where))
        dtype = DTYPE_CODES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise FileFormatError("{} has unknown dtype {}".format(where, preview(entry["dtype"])))
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise FileFormatError("{} has an invalid shape {}".format(where, preview(shape)))
        if len(shape) > MAX_RANK or any(d > MAX_DIM for d in shape):
            raise FileFormatError("{} has shape {}: at most {} dimensions, each at most {}".format(
                where, preview(shape), MAX_RANK, MAX_DIM))
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets) \
                or offsets[0] > offsets[1]:
            raise FileFormatError("{} has invalid data_offsets {}".format(where, preview(offsets)))
        nbytes = exact_count(shape) * dtype.itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise FileFormatError("{}: shape {} of {} needs {} bytes but data_offsets span {}".format(
                where, preview(shape), dtype.name, preview(nbytes), preview(offsets[1] - offsets[0])))
        entries[name] = (dtype, tuple(shape), (offsets[0], offsets[1]))
    return metadata, entries


def _check_structure_counts(raw: bytes, path: str) -> None:
    """Refuse, before it is parsed, a header with more objects, arrays or commas outside its strings than one
    within MAX_ENTRIES tensors and metadata keys can have: parsed, each JSON value becomes a Python object many times
    the size of its text (an empty tensor entry's 50 bytes take about a kilobyte), so the limits must hold before
    the objects exist. Such a header breaks a rule of SPEC section 2 (too many tensors or keys, or a value no entry
    may hold), so this refuses nothing that the checks after parsing would accept."""
    objects = arrays = commas = 0
    for chunk, outside in outside_strings(raw, _SCAN_CHUNK):
        objects += int(np.count_nonzero((chunk == ord("{")) & outside))
        arrays += int(np.count_nonzero((chunk == ord("[")) & outside))
        commas += int(np.count_nonzero((chunk == ord(",")) & outside))
        if objects > _MOST_OBJECTS or arrays > _MOST_ARRAYS or commas > _MOST_COMMAS:
            raise FileFormatError("{}: the header holds more than {} objects, {} arrays or {} commas: more than a "
                                  "header of at most {} tensors and {} metadata keys can have".format(
                                      path, _MOST_OBJECTS, _MOST_ARRAYS, _MOST_COMMAS, MAX_ENTRIES, MAX_ENTRIES))


def check_layout(entries, data_len: int, path: str) -> None:
    """The tensors must tile the data buffer exactly: in bounds, contiguous, no overlap, no gap."""
    position = 0
    for name, (_, _, (begin, end)) in sorted(entries.items(), key=lambda item: item[1][2]):
        if begin != position:
            problem = "overlaps the previous tensor" if begin < position else "leaves a gap before it"
            raise FileFormatError("{}: tensor {} at byte {} {}".format(path, preview(name), preview(begin), problem))
        if end > data_len:
            raise FileFormatError("{}: truncated file: tensor {} ends at byte {} of a {} byte data buffer".format(
                path, preview(name), preview(end), data_len))
        position = end
    if position != data_len:
        raise FileFormatError("{}: {} trailing bytes after the last tensor".format(path, data_len - position))


def write_container(path: str, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write a safetensors file, atomically (a partial file never takes the final name) and reproducibly:
    the same tensors and metadata always give the same bytes (keys sorted, data in the mapping's order, header
    padded with spaces to 8 bytes as the safetensors reference writer does)."""
    header: Dict[str, object] = {"__metadata__": {key: metadata[key] for key in sorted(metadata)}}
    arrays = []
    offset = 0
    for name, array in tensors.items():
        if "\x00" in name:  # parse_header refuses it: no file is written that no reader reads
            raise FileFormatError("tensor {}: a tensor name may not contain U+0000".format(preview(name)))
        array = np.asarray(array)
        code = dtype_code(array.dtype)
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        arrays.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    temporary = "{}.partial-{}".format(path, os.getpid())
    try:
        with open(temporary, "wb") as out:
            out.write(struct.pack("<Q", len(encoded)))
            out.write(encoded)
            for data in arrays:
                out.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _shaped(array: np.ndarray, shape: Tuple[int, ...], name: str, path: str) -> np.ndarray:
    """`array` reshaped to a declared shape, which NumPy may be unable to represent (rank > 32, huge dims of an
    empty tensor)."""
    try:
        return array.reshape(shape)
    except (ValueError, OverflowError) as exc:
        raise FileFormatError("{}: tensor {} has shape {}, which NumPy cannot represent ({})".format(
            path, preview(name), preview(list(shape)), exc)) from None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
