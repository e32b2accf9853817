"""A Stable-Baselines3 (or sb3-contrib) `.zip` save, read as plain data: no torch, no SB3, no code from the file.

SB3's `save_to_zip_file` writes `data` (JSON of the model's attributes; values JSON cannot hold are
`{":type:": ..., ":serialized:": base64 cloudpickle, ...}`), `policy.pth` (torch's serialization of the policy's
state dict), `pytorch_variables.pth` (`tensors.pth` before SB3 0.9), optimizer states, `_stable_baselines3_version`
and `system_info.txt`. Only what inference needs is decoded: the four `data` entries below (schedules and other
entries are functions pickled by value, never unpickled here), the state dicts, the version.

Pickles are read by the restricted unpickler in SB3's dialect (`dialect.py`); torch's files by `torch_storage`.
The zip is checked as SB2's is (`archive.py`), with SB3's members and caps.
"""
from __future__ import annotations

import os
import re
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from ...errors import ExportError, SbifError, preview
from ..archive import (MAX_FILE_BYTES, ArchiveKind, MiB, check_central_directory, check_zip_members, json_member,
                       read_member)
from ..safe import (MAX_KWARG_VALUES, _count, _numeric_array, _nvec, decode_data, space_dtype,  # SB2's checks
                    space_shape)
from ..safe_pickle import BY_VALUE, BuildBudget, Stub, exception_text, is_stub_class, materialize, stub_reference
from ..sb2_files import describe_source
from .dialect import SB3_DATA_DIALECT, SPACE_MODULES
from .torch_storage import TensorBudget, read_pth

POLICY_MEMBER = "policy.pth"
DATA_MEMBER = "data"
VERSION_MEMBER = "_stable_baselines3_version"
#: pytorch_variables.pth, named tensors.pth before SB3 0.9 (`load_from_zip_file` reads either).
VARIABLE_MEMBERS = ("pytorch_variables.pth", "tensors.pth")
#: Members SB3 writes and SB2 never does.
SB3_ONLY_MEMBERS = (POLICY_MEMBER, VERSION_MEMBER) + VARIABLE_MEMBERS
#: Uncompressed caps of the members read; the others (optimizer states, system_info.txt) are never read and
#: are bounded by the archive's expansion limit only.
MEMBER_CAPS = {DATA_MEMBER: 64 * MiB, POLICY_MEMBER: MAX_FILE_BYTES, VARIABLE_MEMBERS[0]: 64 * MiB,
               VARIABLE_MEMBERS[1]: 64 * MiB, VERSION_MEMBER: 64}
#: Members an SB3 archive may list: it writes 6 to 8.
MAX_SB3_MEMBERS = 32
#: Members a zip may list for `is_sb3_save` to look at its names (a cheap listing): read_sb3_save then refuses more
#: than MAX_SB3_MEMBERS by name, SB2's reader what SB2 would not write.
MAX_RECOGNISED_MEMBERS = 1024
SB3_ARCHIVE = ArchiveKind("an SB3 model archive", "SB3")
#: The `data` entries decoded from their pickles; every other entry stays the JSON SB3 wrote.
DECODED_KEYS = ("policy_class", "policy_kwargs", "observation_space", "action_space")
_VERSION = re.compile(r"^[0-9A-Za-z.+_-]{1,64}$")
#: Nesting of policy kwargs (net_arch is a list in a dict; optimizer_kwargs a tuple in a dict).
MAX_KWARG_DEPTH = 32


class ClassRef(NamedTuple):
    """A class the file names, never imported: `torch.nn.modules.activation.ReLU` is ("torch.nn.modules.activation",
    "ReLU"); a class the training script defined (pickled by value) has module `safe_pickle.BY_VALUE`."""

    module: str
    name: str


class SpaceRecord(NamedTuple):
    """A gymnasium (or gym) space as data.

    kind: box, discrete, multi_discrete, multi_binary or dict. shape and dtype (a NumPy name; None for dict) as the
    space has them. box: low and high, full arrays of `shape` in `dtype`, exactly the pickled bounds. discrete: n
    and start. multi_discrete: nvec and start (arrays). multi_binary: n, the number of bits (gymnasium's n may be a
    shape, which `shape` keeps). dict: spaces, in the pickle's key order.
    """

    kind: str
    shape: Tuple[int, ...]
    dtype: Optional[str]
    low: Optional[np.ndarray] = None
    high: Optional[np.ndarray] = None
    n: Optional[int] = None
    nvec: Optional[np.ndarray] = None
    start: Union[None, int, np.ndarray] = None
    spaces: Optional["OrderedDict[str, SpaceRecord]"] = None


class Sb3Save(NamedTuple):
    """What one SB3 `.zip` holds, as plain data (module doc); `read_sb3_save` builds it. `data` is SB3's JSON,
    its four pickled entries replaced by the plain values the fields below hold (no stand-in leaves the reader)."""

    sb3_version: Optional[str]
    data: Dict[str, Any]
    policy_class: ClassRef
    policy_kwargs: Dict[str, Any]
    observation_space: SpaceRecord
    action_space: SpaceRecord
    state_dict: "OrderedDict[str, np.ndarray]"
    pytorch_variables: "OrderedDict[str, np.ndarray]"
    source: Dict[str, str]


def is_sb3_save(path: str) -> bool:
    """Whether `path` is a zip holding SB3's `data` and a member only SB3 writes (so a save missing `policy.pth`
    or listing too many members is still refused as the SB3 save it is): read from the central directory only
    (after checking its size), never raising, whatever the file is."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                return False
            check_central_directory(handle, size, path, MAX_RECOGNISED_MEMBERS, SB3_ARCHIVE)
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        return DATA_MEMBER in names and any(member in names for member in SB3_ONLY_MEMBERS)
    except Exception:  # whatever makes the file unreadable makes it no SB3 save; read_sb3_save says why
        return False


def read_sb3_save(path: str) -> Sb3Save:
    """An SB3 save as data; ExportError (one line, naming the member and the problem) for anything else."""
    members = _read_members(path)
    readable = json_member(members[DATA_MEMBER], DATA_MEMBER, path)
    if not isinstance(readable, dict):
        raise ExportError("{}: the data member is not a JSON object".format(path))
    for key in ("policy_class", "observation_space", "action_space"):
        if key not in readable:
            raise ExportError("{}: the data member has no {}; is this an SB3 model?".format(path, key))
    serialized = {key: readable[key] for key in DECODED_KEYS if key in readable}
    decoded = decode_data(serialized, path, BuildBudget(len(members[DATA_MEMBER])), SB3_DATA_DIALECT)
    plain = {
        "policy_class": _policy_class(decoded["policy_class"], path),
        "policy_kwargs": _policy_kwargs(decoded.get("policy_kwargs"), path),
        "observation_space": space_record(decoded["observation_space"], "{}: observation_space".format(path)),
        "action_space": space_record(decoded["action_space"], "{}: action_space".format(path)),
    }
    data = dict(readable)
    data.update((key, value) for key, value in plain.items() if key in readable)
    file_bytes = os.path.getsize(path)
    budget = TensorBudget(file_bytes)  # one for both state dicts of the save
    variables_member = next((name for name in VARIABLE_MEMBERS if name in members), None)
    return Sb3Save(
        sb3_version=_version(members.get(VERSION_MEMBER), path),
        data=data,
        state_dict=read_pth(members[POLICY_MEMBER], "{}: {}".format(path, POLICY_MEMBER), file_bytes, budget),
        pytorch_variables=OrderedDict() if variables_member is None else read_pth(
            members[variables_member], "{}: {}".format(path, variables_member), file_bytes, budget),
        source=describe_source(path),
        **plain
    )


def _read_members(path: str) -> Dict[str, bytes]:
    """The members this reader uses, after the archive's checks (`archive.py`)."""
    if not os.path.isfile(path):
        raise ExportError("no such file: {}".format(path))
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise ExportError("{}: the file is {} bytes; the safe loader reads at most {}".format(
            path, size, MAX_FILE_BYTES))
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                raise ExportError("{}: not a zip archive, so not an SB3 save".format(path))
            check_central_directory(handle, size, path, MAX_SB3_MEMBERS, SB3_ARCHIVE)
        with zipfile.ZipFile(path) as archive:
            infos = check_zip_members(archive.infolist(), path, None, MEMBER_CAPS, size, SB3_ARCHIVE)
            missing = [name for name in (DATA_MEMBER, POLICY_MEMBER) if name not in infos]
            if missing:
                raise ExportError("{}: the archive has no {} member; an SB3 save holds data and policy.pth".format(
                    path, " or ".join(missing)))
            wanted = (DATA_MEMBER, POLICY_MEMBER, VERSION_MEMBER) + VARIABLE_MEMBERS
            return {name: read_member(archive, infos[name], path) for name in wanted if name in infos}
    except SbifError:
        raise
    except Exception as exc:  # zipfile raises BadZipFile, EOFError, OSError, zlib and struct errors
        raise ExportError("{}: not a readable zip archive (truncated or corrupt?): {}".format(
            path, exception_text(exc))) from None


def _version(raw: Optional[bytes], path: str) -> Optional[str]:
    if raw is None:
        return None
    text = raw.decode("latin-1").strip()
    if not _VERSION.match(text):
        raise ExportError("{}: {} is not a version: {}".format(path, VERSION_MEMBER, preview(text)))
    return text


def class_ref(value: Any) -> Optional[ClassRef]:
    """The ClassRef of a stand-in class (one the file names, or one it defines by value), else None."""
    if not is_stub_class(value):
        return None
    module, name = stub_reference(value)
    return ClassRef(module, name)


def _policy_class(value: Any, path: str) -> ClassRef:
    reference = class_ref(value)
    if reference is None:
        raise ExportError("{}: policy_class is not a pickled class: {}".format(path, preview(value)))
    return reference


def _policy_kwargs(value: Any, path: str) -> Dict[str, Any]:
    """policy_kwargs as plain data (classes as ClassRefs, torch.device as None), or {} when the file has none."""
    what = "{}: policy_kwargs".format(path)
    if value is None:
        return {}
    if not isinstance(value, dict) or ":serialized:" in value:
        raise ExportError("{} is not a dict of keyword arguments".format(what))
    return _plain(value, what, 0, [0])


def _plain(value: Any, what: str, depth: int, count: List[int]) -> Any:
    """`value` with tuples as lists, numpy scalars as numbers, classes as ClassRefs and devices as None. Values
    are counted as they are reached (shared references each time) within MAX_KWARG_VALUES."""
    count[0] += 1
    if count[0] > MAX_KWARG_VALUES or depth > MAX_KWARG_DEPTH:
        raise ExportError("{} holds more than {} values or nests deeper than {} (shared references?); "
                          "refused".format(what, MAX_KWARG_VALUES, MAX_KWARG_DEPTH))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(item, "{}[{}]".format(what, index), depth + 1, count) for index, item in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ExportError("{} has keys that are not text".format(what))
        return {key: _plain(item, "{}[{}]".format(what, preview(key)), depth + 1, count)
                for key, item in value.items()}
    reference = class_ref(value)
    if reference is not None:
        return reference
    if isinstance(value, Stub) and stub_reference(value) == ("torch", "device"):
        return None  # where the model trained; inference here is on the CPU
    kind = stub_reference(value) if isinstance(value, Stub) else None
    raise ExportError("{} is {}, which is not plain data, a class or a device".format(
        what, "an object of " + preview(".".join(kind)) if kind is not None else "a " + type(value).__name__))


# -- spaces ---------------------------------------------------------------------------------------------------
def space_record(value: Any, what: str, nested: bool = False) -> SpaceRecord:
    """A pickled gymnasium or gym space as a SpaceRecord, each attribute checked; spaces an SB3 policy cannot
    take (Tuple, Text, Graph, Sequence, OneOf, a Dict inside a Dict) refused by name."""
    reference = stub_reference(value) if isinstance(value, Stub) else None
    if reference is None or is_stub_class(value) or not any(
            reference[0] == module or reference[0].startswith(module + ".") for module in SPACE_MODULES):
        raise ExportError("{} is not a gymnasium or gym space".format(what))
    kind = reference[1].split(".")[-1]
    state = value.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]  # (__dict__, slots)
    if not isinstance(state, dict):
        raise ExportError("{}: the pickled {} has no attributes".format(what, kind))
    try:  # gymnasium spells private attributes `_shape`, `_np_random`; old gym `shape`, `np_random`
        attrs = {key.lstrip("_"): materialize(item) for key, item in state.items() if isinstance(key, str)}
    except SbifError as exc:
        raise ExportError("{}: {}".format(what, exc)) from None
    if kind == "Box":
        return _box(attrs, what)
    if kind == "Discrete":
        return SpaceRecord("discrete", (), _dtype_name(attrs.get("dtype"), "int64", what),
                           n=_count(attrs.get("n"), what + ".n"), start=_start(attrs.get("start"), (), what))
    if kind == "MultiDiscrete":
        nvec = _nvec(attrs.get("nvec"), what + ".nvec")
        return SpaceRecord("multi_discrete", nvec.shape, _dtype_name(attrs.get("dtype"), nvec.dtype.name, what),
                           nvec=nvec, start=_start(attrs.get("start"), nvec.shape, what))
    if kind == "MultiBinary":
        n = attrs.get("n")
        dims = n.tolist() if isinstance(n, np.ndarray) else n
        shape = space_shape(list(dims) if isinstance(dims, (list, tuple)) else [dims], what + ".n")
        bits = 1
        for dim in shape:
            bits *= dim
        return SpaceRecord("multi_binary", shape, _dtype_name(attrs.get("dtype"), "int8", what), n=bits)
    if kind == "Dict" and not nested:
        spaces = attrs.get("spaces")
        if not isinstance(spaces, dict) or not all(isinstance(key, str) for key in spaces):
            raise ExportError("{}: the Dict space's spaces are not a dict named by text".format(what))
        return SpaceRecord("dict", (), None, spaces=OrderedDict(
            (key, space_record(space, "{}[{}]".format(what, preview(key)), True)) for key, space in spaces.items()))
    raise ExportError("{}: a {}{} space is not supported (SB3 policies take Box, Discrete, MultiDiscrete, "
                      "MultiBinary and a Dict of those)".format(what, "nested " if nested and kind == "Dict" else "",
                                                                preview(kind)))


def _box(attrs: Dict[str, Any], what: str) -> SpaceRecord:
    """Box bounds as full arrays of the space's shape and dtype, exactly (gym stores them so; a bound of one
    element is broadcast, and one in another dtype must convert without changing a value)."""
    dtype = space_dtype(attrs.get("dtype"), what)
    low, high = _numeric_array(attrs.get("low"), what + ".low"), _numeric_array(attrs.get("high"), what + ".high")
    declared = attrs.get("shape")
    shape = space_shape(declared if isinstance(declared, (tuple, list)) else low.shape, what)
    bounds = []
    for name, bound in (("low", low), ("high", high)):
        if bound.shape != shape and bound.size != 1:
            raise ExportError("{}: Box {} of shape {} does not fit its shape {}".format(what, name, bound.shape, shape))
        with np.errstate(all="ignore"):
            full = np.broadcast_to(bound, shape).astype(dtype)
            exact = np.array_equal(full.astype(bound.dtype), np.broadcast_to(bound, shape))
        if not exact:  # NaN is never equal to itself: refused here too
            raise ExportError("{}: Box {} is NaN or does not convert exactly to its dtype {}".format(
                what, name, dtype.name))
        bounds.append(np.ascontiguousarray(full))
    return SpaceRecord("box", shape, dtype.name, low=bounds[0], high=bounds[1])


def _dtype_name(value: Any, default: str, what: str) -> str:
    """A space's dtype name (gym's Discrete had none in old versions: `default`)."""
    return default if value is None else space_dtype(value, what).name


def _start(value: Any, shape: Tuple[int, ...], what: str) -> Union[int, np.ndarray]:
    """gymnasium's `start` (0 where the space or the gym version has none): an integer, or an array of `shape`."""
    if value is None:
        return 0 if shape == () else np.zeros(shape, dtype=np.int64)
    start = _numeric_array(value, what + ".start")
    if start.dtype.kind not in "iu" or start.shape != shape:
        raise ExportError("{}.start is not an integer {} of shape {}".format(what, "array" if shape else "", shape))
    return int(start) if shape == () else start


__all__ = ["BY_VALUE", "ClassRef", "Sb3Save", "SpaceRecord", "class_ref", "is_sb3_save", "read_sb3_save",
           "space_record"]
