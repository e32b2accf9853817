"""torch's `.pth` serialization read as data, without torch: a state dict becomes an OrderedDict of NumPy arrays
bit-identical to `torch.load(...)[name].numpy()` (as C-contiguous copies).

Two formats (torch/serialization.py, `_load` and `_legacy_load`):

- the zip format (torch >= 1.6): records under one prefix: `data.pkl`, a protocol-2 pickle of the state dict
  whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` over storages named by
  persistent ids `('storage', torch.<T>Storage, key, location, numel)`; each storage's bytes in `data/<key>`;
  `byteorder` ("little" or "big"; little when absent);
- the legacy format: pickles in a row (a magic number, the protocol 1001, sys_info, the payload whose persistent
  ids are `('storage', type, key, location, numel, view_metadata)`, the list of storage keys), then for each
  listed key its int64 element count and raw bytes, in the byte order sys_info gives.

The pickles are read by the restricted unpickler (`torch_dialect`): the storage types, `_rebuild_tensor_v2`
and `_rebuild_parameter` become records checked here, nothing else but an OrderedDict. Every storage must be
exactly its element count times its item size; every tensor must lie inside its storage (offset, sizes,
strides); counts are compared with the bytes present before anything is allocated, and the tensors' copies
are charged against a budget of the input's size (`TensorBudget`): a stride of 0 could otherwise make a 4 GiB
tensor out of one float.
"""
from __future__ import annotations

import io
import struct
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ...errors import ExportError, SbifError, preview
from .. import safe_pickle
from ..archive import (MAX_FILE_BYTES, ArchiveKind, check_central_directory, check_zip_members, read_member,
                       unsafe_member_name)
from ..safe_pickle import Dialect, exception_text

#: torch's storage classes and the dtype of their elements (torch/storage.py `_dtype_to_storage_type_map`).
STORAGE_DTYPES = OrderedDict((
    ("FloatStorage", np.dtype(np.float32)), ("DoubleStorage", np.dtype(np.float64)),
    ("HalfStorage", np.dtype(np.float16)), ("LongStorage", np.dtype(np.int64)),
    ("IntStorage", np.dtype(np.int32)), ("ShortStorage", np.dtype(np.int16)),
    ("CharStorage", np.dtype(np.int8)), ("ByteStorage", np.dtype(np.uint8)),
    ("BoolStorage", np.dtype(np.bool_)),
))
#: torch storages with no NumPy dtype that holds their values exactly; refused by name.
UNSUPPORTED_STORAGES = {
    "BFloat16Storage": "bfloat16 tensors have no NumPy dtype",
    "ComplexFloatStorage": "SB3 policies hold real numbers", "ComplexDoubleStorage": "SB3 policies hold real numbers",
    "QInt8Storage": "quantized tensors are not read", "QUInt8Storage": "quantized tensors are not read",
    "QInt32Storage": "quantized tensors are not read", "QUInt4x2Storage": "quantized tensors are not read",
    "QUInt2x4Storage": "quantized tensors are not read", "UntypedStorage": "SB3 state dicts store typed tensors",
}
#: The legacy format's first two pickles (torch/serialization.py MAGIC_NUMBER, PROTOCOL_VERSION).
LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL_VERSION = 1001
#: Tensors (and storages) per file: SB3 policies have a few dozen; the biggest zoo models a few hundred.
MAX_TENSORS = 100000
#: Records a zip `.pth` may list: a storage per tensor plus torch's half dozen bookkeeping records.
MAX_RECORDS = MAX_TENSORS + 16
#: A storage key or byte order record: torch writes decimal keys ("0", "1", ...) or addresses, and "little".
MAX_KEY_CHARS = 1000
MAX_BYTEORDER_BYTES = 16
#: What the tensors' copies may take, per byte of the save file, plus a fixed allowance. A tensor is a copy of
#: the part of its storage it views; SB3 shares one features extractor under three names, so a real state dict
#: builds up to three times its storage bytes.
TENSOR_BYTES_PER_INPUT_BYTE = 4
TENSOR_BYTES_SLACK = 16 * 1024 * 1024
TORCH_ARCHIVE = ArchiveKind("a torch .pth archive", "torch")


class StorageType(NamedTuple):
    """What `torch.<name>` stands for in a pickle: a storage class, known by its element dtype."""

    name: str
    dtype: np.dtype


class StorageRef(object):
    """A storage a persistent id names: its key, dtype and element count; its bytes are found after the pickle."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class TensorRef(object):
    """What `_rebuild_tensor_v2` returns here: a view (offset, size, stride in elements) of a storage."""

    def __init__(self, storage: StorageRef, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _exact_integer(value: Any, what: str, limit: int = 1 << 62) -> int:
    """A non-negative Python integer below `limit` (never a bool): offsets, sizes, strides and counts."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise ExportError("{} is not a valid count: {}".format(what, preview(value)))
    return value


def _integer_tuple(value: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > safe_pickle.MAX_DIMS:
        raise ExportError("{} is not a tuple of at most {} integers: {}".format(
            what, safe_pickle.MAX_DIMS, preview(value)))
    return tuple(_exact_integer(item, what, safe_pickle.MAX_DIM + 1) for item in value)


def _no_hooks(hooks: Any) -> None:
    """Tensors SB3 saves carry an empty OrderedDict of backward hooks; a hook would be code."""
    if hooks is not None and not (isinstance(hooks, dict) and not hooks):
        raise ExportError("a tensor in the pickle carries backward hooks; state dicts have none")


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> TensorRef:
    """`torch._utils._rebuild_tensor_v2`: the tensor's place in its storage, checked once the storage is read."""
    if not isinstance(storage, StorageRef):
        raise ExportError("_rebuild_tensor_v2 of something that is not a storage ({})".format(
            type(storage).__name__))
    size, stride = _integer_tuple(size, "a tensor's size"), _integer_tuple(stride, "a tensor's stride")
    if len(size) != len(stride):
        raise ExportError("a tensor has {} sizes but {} strides".format(len(size), len(stride)))
    if not isinstance(requires_grad, bool):
        raise ExportError("a tensor's requires_grad is not a boolean: {}".format(preview(requires_grad)))
    _no_hooks(backward_hooks)
    if metadata is not None and not (isinstance(metadata, dict) and not metadata):
        raise ExportError("a tensor carries metadata (conjugate or negative bits?) that state dicts do not have")
    return TensorRef(storage, _exact_integer(storage_offset, "a tensor's storage offset"), size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> TensorRef:
    """`torch._utils._rebuild_parameter`: an nn.Parameter, read as the tensor it wraps."""
    if not isinstance(data, TensorRef):
        raise ExportError("_rebuild_parameter of something that is not a tensor ({})".format(type(data).__name__))
    _no_hooks(backward_hooks)
    return data


TORCH_SPECIAL: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): safe_pickle.SB2_DIALECT.special[("collections", "OrderedDict")],
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
TORCH_SPECIAL.update((("torch", name), StorageType(name, dtype)) for name, dtype in STORAGE_DTYPES.items())
TORCH_REFUSED = {("torch", name): "{}; SBIF reads float16/32/64, integer and bool tensors".format(reason)
                 for name, reason in UNSUPPORTED_STORAGES.items()}


class _Storages(object):
    """The storages one pickle names (persistent ids), one record per key, shared by the tensors that view it."""

    def __init__(self, what: str, legacy: bool):
        self.what, self.legacy = what, legacy
        self.by_key: "OrderedDict[str, StorageRef]" = OrderedDict()

    def resolve(self, pid: Any) -> StorageRef:
        """torch's `persistent_load`: ('storage', type, key, location, numel) (+ view_metadata when legacy)."""
        length = 6 if self.legacy else 5
        if not isinstance(pid, tuple) or len(pid) != length or pid[0] != "storage":
            raise ExportError("a persistent id that is not a torch storage: {}".format(preview(pid)))
        storage_type, key, location, numel = pid[1:5]
        if self.legacy and pid[5] is not None:
            raise ExportError("a storage view (view_metadata) in a legacy torch file; SB3 never saves one")
        if not isinstance(storage_type, StorageType):
            raise ExportError("a storage whose type is not a torch storage class: {}".format(preview(storage_type)))
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS or unsafe_member_name(key) \
                or not isinstance(location, str):
            raise ExportError("a storage with an invalid key {} or location".format(preview(key)))
        numel = _exact_integer(numel, "storage {}'s element count".format(preview(key)))
        known = self.by_key.get(key)
        if known is None:
            if len(self.by_key) >= MAX_TENSORS:
                raise ExportError("more than {} storages".format(MAX_TENSORS))
            known = self.by_key[key] = StorageRef(key, storage_type.dtype, numel)
        elif known.dtype != storage_type.dtype or known.numel != numel:
            raise ExportError("storage {} is named twice with different types or sizes".format(preview(key)))
        return known


def torch_dialect(storages: Optional[_Storages] = None) -> Dialect:
    """The dialect of torch's pickles: an OrderedDict (its `_metadata` dropped), tensors over `storages`."""
    return Dialect("SB3", "tensors of numbers in an OrderedDict (a torch state dict)", TORCH_SPECIAL,
                   lambda module, name: False, TORCH_REFUSED,
                   storages.resolve if storages is not None else None, frozenset(["_metadata"]))


class TensorBudget(object):
    """What the tensors of one save may build: TENSOR_BYTES_PER_INPUT_BYTE × the save's bytes + the slack."""

    def __init__(self, input_bytes: int):
        self.limit = TENSOR_BYTES_PER_INPUT_BYTE * input_bytes + TENSOR_BYTES_SLACK
        self.input_bytes, self.built = input_bytes, 0

    def charge(self, nbytes: int, what: str) -> None:
        self.built += nbytes
        if self.built > self.limit:
            raise ExportError("{}: the tensors take more than {} bytes from a {}-byte file (at most {} x the file "
                              "+ {} MiB; tensors overlapping their storage?); refused".format(
                                  what, self.limit, self.input_bytes, TENSOR_BYTES_PER_INPUT_BYTE,
                                  TENSOR_BYTES_SLACK >> 20))


def read_pth(blob: bytes, what: str, input_bytes: int, budget: TensorBudget) -> "OrderedDict[str, np.ndarray]":
    """The name -> array dict a `.pth` file holds (either format); `input_bytes` is the size of the file the user
    gave, which bounds what nested archives may expand to."""
    try:
        if blob[:4] == b"PK\x03\x04":
            return _read_zip_pth(blob, what, input_bytes, budget)
        if blob[:2] == b"\x80\x02":
            return _read_legacy_pth(blob, what, budget)
    except SbifError:
        raise
    except Exception as exc:  # zipfile, struct, zlib errors: a corrupt file
        raise ExportError("{}: not a readable torch file (truncated or corrupt?): {}".format(
            what, exception_text(exc))) from None
    raise ExportError("{}: neither torch's zip format nor its legacy pickle format".format(what))


def _read_zip_pth(blob: bytes, what: str, input_bytes: int,
                  budget: TensorBudget) -> "OrderedDict[str, np.ndarray]":
    check_central_directory(io.BytesIO(blob), len(blob), what, MAX_RECORDS, TORCH_ARCHIVE)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        infos = check_zip_members(archive.infolist(), what, None, MAX_FILE_BYTES, input_bytes, TORCH_ARCHIVE)
        prefixes = [name[:-len("/data.pkl")] for name in infos
                    if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(prefixes) != 1:
            raise ExportError("{}: a torch archive has one <name>/data.pkl record; this one has {}".format(
                what, len(prefixes)))
        prefix = prefixes[0] + "/"
        order = _byte_order(archive, infos.get(prefix + "byteorder"), what)
        storages = _Storages(what, legacy=False)
        tree = _load_pickle(read_member(archive, infos[prefix + "data.pkl"], what), what + ": data.pkl", storages)
        raw: Dict[str, bytes] = {}
        for key, storage in storages.by_key.items():
            record = prefix + "data/" + key
            info = infos.get(record)
            if info is None:
                raise ExportError("{}: storage {} has no record {}".format(what, preview(key), preview(record)))
            _check_storage_size(storage, info.file_size, what)
            raw[key] = read_member(archive, info, what)
    return _state_dict(tree, raw, order, what, budget)


def _byte_order(archive: zipfile.ZipFile, info: Optional[zipfile.ZipInfo], what: str) -> str:
    """'<' or '>' from the `byteorder` record (torch writes it since 1.13; older files are little-endian)."""
    if info is None:
        return "<"
    if info.file_size > MAX_BYTEORDER_BYTES:
        raise ExportError("{}: the byteorder record is {} bytes long".format(what, info.file_size))
    text = read_member(archive, info, what)
    if text not in (b"little", b"big"):
        raise ExportError("{}: unknown byte order {} (torch writes little or big)".format(what, preview(text)))
    return "<" if text == b"little" else ">"


def _check_storage_size(storage: StorageRef, nbytes: int, what: str) -> None:
    """A storage is exactly its element count times its item size: compared before its bytes are read."""
    if storage.numel * storage.dtype.itemsize != nbytes:
        raise ExportError("{}: storage {} declares {} elements of {} ({} bytes) but its record holds {} "
                          "bytes".format(what, preview(storage.key), storage.numel, storage.dtype.name,
                                         storage.numel * storage.dtype.itemsize, nbytes))


def _load_pickle(blob: bytes, what: str, storages: Optional[_Storages]) -> Any:
    return safe_pickle.loads(blob, what, dialect=torch_dialect(storages))


def _read_legacy_pth(blob: bytes, what: str, budget: TensorBudget) -> "OrderedDict[str, np.ndarray]":
    position = 0
    records: List[Any] = []
    for label in ("its magic number", "its protocol version", "its sys_info"):
        end = position + safe_pickle.pickle_length(blob[position:], "{}: {}".format(what, label),
                                                   torch_dialect())
        records.append(_load_pickle(blob[position:end], "{}: {}".format(what, label), None))
        position = end
    magic, protocol, sys_info = records
    if magic != LEGACY_MAGIC_NUMBER or protocol != LEGACY_PROTOCOL_VERSION:
        raise ExportError("{}: not a torch file (magic number {}, protocol {})".format(
            what, preview(magic), preview(protocol)))
    if not isinstance(sys_info, dict) or not isinstance(sys_info.get("little_endian"), bool):
        raise ExportError("{}: the legacy torch file's sys_info does not say its byte order".format(what))
    order = "<" if sys_info["little_endian"] else ">"
    storages = _Storages(what, legacy=True)
    end = position + safe_pickle.pickle_length(blob[position:], what, torch_dialect(storages))
    tree = _load_pickle(blob[position:end], what, storages)
    position = end
    end = position + safe_pickle.pickle_length(blob[position:], what + ": its storage keys", torch_dialect())
    keys = _load_pickle(blob[position:end], what + ": its storage keys", None)
    position = end
    if not isinstance(keys, list) or sorted(keys) != sorted(storages.by_key) or len(set(keys)) != len(keys):
        raise ExportError("{}: the legacy torch file lists storage keys {} for the storages {} its tensors "
                          "name".format(what, preview(keys), preview(list(storages.by_key))))
    raw: Dict[str, bytes] = {}
    for key in keys:
        storage = storages.by_key[key]
        if len(blob) - position < 8:
            raise ExportError("{}: the legacy torch file ends before storage {}".format(what, preview(key)))
        numel = struct.unpack(order + "q", blob[position:position + 8])[0]
        if numel != storage.numel:
            raise ExportError("{}: storage {} holds {} elements where its tensors' record says {}".format(
                what, preview(key), numel, storage.numel))
        position += 8
        _check_storage_size(storage, min(len(blob) - position, storage.numel * storage.dtype.itemsize), what)
        raw[key] = blob[position:position + storage.numel * storage.dtype.itemsize]
        position += len(raw[key])
    return _state_dict(tree, raw, order, what, budget)


def _state_dict(tree: Any, raw: Dict[str, bytes], order: str, what: str,
                budget: TensorBudget) -> "OrderedDict[str, np.ndarray]":
    """The pickle's dict of tensors as arrays, each checked against its storage and copied out of it."""
    if not isinstance(tree, dict) or not all(isinstance(name, str) for name in tree):
        raise ExportError("{}: the torch file does not hold a dict of named tensors (a state dict)".format(what))
    if len(tree) > MAX_TENSORS:
        raise ExportError("{}: more than {} tensors".format(what, MAX_TENSORS))
    flat: Dict[str, np.ndarray] = {}
    arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, tensor in tree.items():
        if not isinstance(tensor, TensorRef):
            raise ExportError("{}: {} is not a tensor".format(what, preview(name)))
        storage = tensor.storage
        if storage.key not in flat:
            flat[storage.key] = np.frombuffer(raw[storage.key], dtype=storage.dtype.newbyteorder(order)
                                              if storage.dtype.itemsize > 1 else storage.dtype)
        arrays[name] = _tensor_array(tensor, flat[storage.key], "{}: tensor {}".format(what, preview(name)), budget)
    return arrays


def _tensor_array(tensor: TensorRef, storage: np.ndarray, what: str, budget: TensorBudget) -> np.ndarray:
    """The tensor's elements, in native byte order and C order, once its view is known to lie inside the storage."""
    count = 1
    for dim in tensor.size:
        count *= dim
    if count:
        last = tensor.offset + sum((dim - 1) * step for dim, step in zip(tensor.size, tensor.stride))
        if last >= storage.size:
            raise ExportError("{} (offset {}, size {}, stride {}) reaches element {} of a {}-element storage; "
                              "refused".format(what, tensor.offset, tensor.size, tensor.stride, last, storage.size))
    elif tensor.offset > storage.size:
        raise ExportError("{} starts at element {} of a {}-element storage".format(what, tensor.offset, storage.size))
    native = storage.dtype.newbyteorder("=")
    budget.charge(count * native.itemsize, what)
    if not count:
        return np.zeros(tensor.size, dtype=native)
    view = np.lib.stride_tricks.as_strided(storage[tensor.offset:], shape=tensor.size,
                                           strides=tuple(step * storage.itemsize for step in tensor.stride),
                                           writeable=False)
    return np.array(view, dtype=native, order="C")  # a copy the caller owns, its bytes swapped where needed


__all__ = ["STORAGE_DTYPES", "TensorBudget", "read_pth", "torch_dialect"]
