"""Reading Stable-Baselines pickles as data: nothing in the file is ever imported, called or executed.

A pickle is a small program: GLOBAL names an importable object, REDUCE calls it. SB2 files are cloudpickle
output, so loading one with `pickle.load` runs whatever the file names. Here every global the file may name
is mapped to an inert stand-in instead:

- numpy arrays, dtypes and scalars are rebuilt by our own code from their raw bytes (`np.frombuffer`), after
  checking that the declared shape times the item size is exactly the number of bytes present;
- gym spaces, Stable-Baselines classes, cloudpickle's function-rebuilding helpers, numpy random states and
  TensorFlow activations become `Stub` classes that only record their name, call arguments and state;
- any other global (`os.system`, `builtins.eval`, ...) is refused with an `ExportError` naming it, before
  anything is called.

Before the real unpickler runs, `scan` walks the opcodes once: it checks every length against the bytes that
are actually there, refuses opcodes SB2 never writes, and bounds the opcode count, the memo and stack sizes
and the nesting of tuples (CPython hashes nested tuples recursively: a dict key nested a million levels deep
crashes the interpreter; a tuple built from shared references, 2**60 nodes on a few hundred bytes, would
hash for ever: tuples count their nodes, repeats included).

Memory is bounded by the input. Everything the unpickler builds is charged, before it is built, against a
budget of BUILT_BYTES_PER_INPUT_BYTE (2) times the pickle's size plus BUILT_BYTES_SLACK (16 MiB): the bytes
of every string, bytes object and array an allowed callable makes (`_codecs.encode`, numpy's `_frombuffer`,
`scalar`, an array's BUILD), a per-entry cost of every container an opcode or callable fills (APPEND(S),
SETITEM(S), ADDITEMS, the memo, `OrderedDict(items)`, the argument tuple a stand-in records) and a per-object
cost of everything an opcode creates. Values the file spells out (strings, bytes, numbers) cost about what
they occupy in the file; what is charged is what a pickle can make out of them by reuse: a memoised 1 MiB
string passed to `_codecs.encode` a thousand times is a thousand MiB from a 1 MiB file. Real SB2 files
build each array once from its bytes in the file (protocol 2 twice: the bytes, then the array), plus a few
hundred KiB of small objects: the zoo's pickles (600 B to 300 KiB) are charged 1.8 to 24 times their size,
all far below the fixed allowance, and big files, mostly array bytes, tend to 1 time theirs. A `.zip`'s
`:serialized:` pickles share one budget, of their `data` member's size (`BuildBudget`).

Which globals a file may name, what they become and whether persistent ids resolve is a `Dialect`: `SB2_DIALECT`
is what SB2 files need (and all this reader accepted before SB3); the SB3 loader (`sbif/export/sb3/dialect.py`)
adds gymnasium spaces, torch names and storages, and Stable-Baselines3 classes. Every dialect keeps the rules
above: stand-ins, the budget, the scan, BUILD on this load's stand-ins only.

No file can change how a later file loads in the same process. What the unpickler hands out is either fresh
for this load (stand-in classes, and every instance) or shared but out of the pickle's reach (the functions
and classes of the allowlist below): BUILD, the one opcode that sets attributes, is accepted only on a
stand-in instance this load created, whose `__setstate__` just records the state. Python's own BUILD would
set attributes on whatever lies below the state, so a statistics pickle read before the model could have
rewritten `__defaults__` of the OrderedDict stand-in for the model's parameters.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import re
from collections import OrderedDict
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from ..errors import ExportError, SbifError, preview

#: Largest pickle read at all (a legacy .pkl holds every parameter; big CNN policies are tens of MiB).
MAX_PICKLE_BYTES = 512 * 1024 * 1024
#: Opcodes per pickle: SB2 pickles have a few thousand (arrays are one opcode each).
MAX_OPCODES = 2000000
#: Nesting of tuples/frozensets (hashed recursively by CPython) and of open MARKs.
MAX_NESTING = 100
#: Entries on the unpickler's stack and memo (each costs memory even when empty).
MAX_STACK = 1000000
MAX_MEMO = 1000000
#: Different globals per pickle (SB2 files name a few dozen); each stand-in class costs about a kilobyte.
MAX_GLOBALS = 10000
#: Longest module or class name a pickle may name (SB2's longest are under 100 characters): every message
#: that names a stand-in's class stays short.
MAX_GLOBAL_NAME = 1000
#: Array dimensions: numpy's own limit is 32 (64 in numpy 2); no SB2 array has more than 4.
MAX_DIMS = 32
#: Largest declared dimension; anything bigger cannot be backed by a pickle under MAX_PICKLE_BYTES anyway.
MAX_DIM = 2 ** 40

#: Tuple (and frozenset) nodes of one value, shared ones counted each time they are reached: what hashing or
#: comparing it costs. SB2's tuples are shapes and small argument lists.
MAX_TUPLE_NODES = 1000000
#: What the unpickler may build: this many bytes per byte of pickle, plus a fixed allowance (module doc).
BUILT_BYTES_PER_INPUT_BYTE = 2
BUILT_BYTES_SLACK = 16 * 1024 * 1024
#: Charges against that budget: an object an opcode or callable creates (a container, a number, a stand-in),
#: a reference stored in a list or tuple, an entry of a dict, OrderedDict, set or the memo (CPython: about
#: 56, 8 and 105 bytes).
OBJECT_BYTES = 64
SLOT_BYTES = 8
ENTRY_BYTES = 112

#: Opcodes SB2 files never contain and that would widen what a file can do: persistent ids and the
#: extension registry resolve objects outside the pickle, out-of-band buffers need a caller-supplied list,
#: and protocol-0 text integers are parsed in quadratic time (a few MB of digits stall the process).
REFUSED_OPCODES = {
    "PERSID": "persistent ids", "BINPERSID": "persistent ids",
    "EXT1": "the copyreg extension registry", "EXT2": "the copyreg extension registry",
    "EXT4": "the copyreg extension registry",
    "NEXT_BUFFER": "out-of-band buffers", "READONLY_BUFFER": "out-of-band buffers",
    "INT": "protocol-0 text integers", "LONG": "protocol-0 text integers",
}
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
#: The newest protocol read on every Python: 5 (Python >= 3.8, what SB3 writes). Python 3.7's pickle stops at 4; of
#: protocol 5's opcodes only BYTEARRAY8 builds data (the out-of-band buffers are refused), so it is added there.
PICKLE_PROTOCOL = 5
BYTEARRAY8 = b"\x96"
if BYTEARRAY8 not in _OPCODES:
    _OPCODES[BYTEARRAY8] = pickletools.OpcodeInfo(
        name="BYTEARRAY8", code=BYTEARRAY8.decode("latin-1"), arg=pickletools.bytes8, stack_before=[],
        stack_after=[pickletools.pybytes], proto=pickle.HIGHEST_PROTOCOL,  # 3.7's OpcodeInfo refuses 5 here
        doc="Push a bytearray (protocol 5).")
_TUPLE_OPS = {"TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE", "FROZENSET"}
#: Opcodes that modify the object below their arguments and leave it on the stack.
_IN_PLACE_OPS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "BUILD", "ADDITEMS"}


# -- inert stand-ins ------------------------------------------------------------------------------------------
class Stub(object):
    """An inert stand-in for a class or function a pickle names.

    Calling it, instantiating it, or restoring its state only records what the pickle passed; nothing real is
    imported or run. `sbif_module`/`sbif_name` say which global it stands for.
    """

    sbif_module = ""
    sbif_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Stub":
        self = object.__new__(cls)
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ recorded the arguments (NEWOBJ calls only __new__)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> "Stub":
        return CallRecord(self, *args, **kwargs)

    # Containers the pickle fills with APPENDS/SETITEMS; pairs are kept unhashed, in order.
    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    @classmethod
    def reference(cls) -> str:
        return "{}.{}".format(cls.sbif_module, cls.sbif_name)

    def __repr__(self) -> str:
        return "<stub {} instance>".format(self.reference())


class CallRecord(Stub):
    """What calling a stand-in instance returns: the call, recorded (`args[0]` is the stand-in called)."""

    sbif_module, sbif_name = "<call>", "<call>"


def stub_class(module: str, name: str) -> type:
    """A new Stub subclass standing for `module.name`."""
    label = re.sub(r"\W", "_", name.split(".")[-1]) or "stub"
    return type(label, (Stub,), {"sbif_module": module, "sbif_name": name, "__module__": __name__})


BY_VALUE = "<by value>"


def by_value_class(name: str, bases: tuple) -> type:
    """A Stub subclass for a class cloudpickle stored as code (defined in a training script): its name and
    bases are kept; instances of it can then be unpickled (NEWOBJ needs a type) as inert stand-ins too."""
    cls = stub_class(BY_VALUE, name)
    cls.sbif_bases = bases
    return cls


def is_stub_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, Stub) and value is not Stub


# -- numpy, rebuilt by hand -----------------------------------------------------------------------------------
#: dtype kinds an SB2 file may hold: no objects (they would need code), no structured or datetime types.
ARRAY_KINDS = "biufcSU"
NUMERIC_CODES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"}
_TEXT_CODE = re.compile(r"^[SU][0-9]{1,6}$")


class DtypeStub(Stub):
    """`numpy.dtype(code, align, copy)` plus its pickled state, resolved only for plain numeric/text codes."""

    sbif_module, sbif_name = "numpy", "dtype"

    def resolve(self) -> np.dtype:
        code = self.args[0] if self.args else None
        if isinstance(code, bytes):
            code = code.decode("latin-1")
        if not isinstance(code, str) or not (code in NUMERIC_CODES or _TEXT_CODE.match(code)):
            raise ExportError("unsupported numpy dtype {} in the pickle (SB2 files hold plain numbers)".format(
                preview(code)))
        order = "|"
        if self.state is not None:
            state = self.state
            if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
                raise ExportError("unsupported numpy dtype state for {}: structured and sub-array dtypes are "
                                  "not part of SB2 files".format(preview(code)))
            order = state[1]
            if isinstance(order, bytes):
                order = order.decode("latin-1")
            if order not in ("<", ">", "|", "="):
                raise ExportError("numpy dtype {} has an invalid byte order".format(preview(code)))
        dtype = np.dtype(code)
        return dtype.newbyteorder(order) if order in "<>" and dtype.itemsize > 1 else dtype


class ArrayStub(Stub):
    """Stands for `numpy.ndarray`; its `__setstate__` builds the real array from the pickled bytes."""

    sbif_module, sbif_name = "numpy", "ndarray"
    array: Optional[np.ndarray] = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ExportError("invalid numpy array state in the pickle")
        shape, dtype, fortran, raw = state[-4:]
        self.array = build_array(raw, dtype, shape, bool(fortran))


def build_array(raw: Any, dtype: Any, shape: Any, fortran: bool = False, source: str = "the pickle") -> np.ndarray:
    """An array from its raw bytes, refused unless shape × itemsize is exactly the bytes present.

    `source` names where the bytes come from in error messages (a pickle, or a .npy member of an archive).
    """
    if isinstance(dtype, DtypeStub):
        dtype = dtype.resolve()
    if not isinstance(dtype, np.dtype) or dtype.kind not in ARRAY_KINDS or dtype.hasobject:
        raise ExportError("numpy array of unsupported dtype in {} (object arrays would need code)".format(source))
    shape = _check_shape(shape, source)
    if isinstance(raw, str):  # Python 2 pickles keep raw bytes in a str
        try:
            raw = raw.encode("latin-1")
        except UnicodeEncodeError:
            raise ExportError("numpy array whose raw data in {} is text that is not bytes".format(source)) from None
    if not isinstance(raw, (bytes, bytearray)):
        raise ExportError("numpy array without raw data in {} (object arrays are refused)".format(source))
    count = 1
    for dim in shape:
        count *= dim  # Python integers: a shape bomb cannot overflow
    if count * dtype.itemsize != len(raw):
        raise ExportError("numpy array declares shape {} of {} ({} bytes) but {} holds {} bytes".format(
            shape, dtype.name, count * dtype.itemsize, source, len(raw)))
    # A view of the bytes, then the one copy the array owns (bytes(raw) would be a second copy of a bytearray).
    flat = np.frombuffer(raw, dtype=dtype, count=count) if count else np.zeros(0, dtype)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


def _check_shape(shape: Any, source: str) -> Tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if (not isinstance(shape, (tuple, list)) or len(shape) > MAX_DIMS
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d <= MAX_DIM
                       for d in shape)):
        raise ExportError("numpy array with an invalid shape in {}".format(source))
    return tuple(int(d) for d in shape)


def _reconstruct(subtype: Any, shape: Any = None, code: Any = None) -> ArrayStub:
    """`numpy.core.multiarray._reconstruct`: an empty array that BUILD then fills."""
    if subtype is not ArrayStub:
        raise ExportError("numpy _reconstruct of a non-ndarray type ({}) is refused".format(_describe(subtype)))
    return ArrayStub()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """`numpy.core.numeric._frombuffer` (protocol-5 pickles with in-band buffers)."""
    return build_array(buffer, dtype, shape, order == "F")


def _scalar(dtype: Any, raw: Any = None) -> Any:
    """`numpy.core.multiarray.scalar`: a numpy scalar from exactly itemsize bytes."""
    array = build_array(raw, dtype, ())
    return array[()]


def _ordered_dict(items: Any = ()) -> "OrderedDict[Any, Any]":
    """`collections.OrderedDict`, created empty or from a list of pairs (SETITEMS fills it otherwise)."""
    if not isinstance(items, (list, tuple)) or not all(isinstance(p, tuple) and len(p) == 2 for p in items):
        raise ExportError("collections.OrderedDict with unexpected arguments in the pickle")
    return OrderedDict(items)


def _encode(text: Any, encoding: Any = "latin1") -> bytes:
    """`_codecs.encode(str, 'latin1')`: how protocol-2 pickles store bytes; nothing else is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ExportError("_codecs.encode is accepted only for protocol-2 bytes (a str and 'latin1')")
    return text.encode("latin-1")


def _bytes(*args: Any) -> bytes:
    """`bytes()`: protocol 2 writes an empty bytes object as a call to it; nothing else is accepted."""
    if args:
        raise ExportError("bytes() is accepted only without arguments (protocol-2 empty bytes)")
    return b""


def _reconstructor(cls: Any, base: Any = None, state: Any = None) -> Stub:
    """`copyreg._reconstructor` (protocol 0/1 objects), for stand-in classes only."""
    if not is_stub_class(cls):
        raise ExportError("copyreg._reconstructor of {} is refused".format(_describe(cls)))
    return cls.__new__(cls)


# -- the allowlist --------------------------------------------------------------------------------------------
_SPECIAL: Dict[Tuple[str, str], Any] = {
    ("numpy", "ndarray"): ArrayStub,
    ("numpy", "dtype"): DtypeStub,
    ("collections", "OrderedDict"): _ordered_dict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _encode,
    ("builtins", "bytes"): _bytes,
    ("__builtin__", "bytes"): _bytes,
}
for _numpy in ("numpy.core", "numpy._core"):
    _SPECIAL[(_numpy + ".multiarray", "_reconstruct")] = _reconstruct
    _SPECIAL[(_numpy + ".multiarray", "scalar")] = _scalar
    _SPECIAL[(_numpy + ".numeric", "_frombuffer")] = _frombuffer

GYM_SPACES = {"Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple", "Space"}
RANDOM_STATE_NAMES = {"__RandomState_ctor", "__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor",
                      "RandomState", "Generator", "MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"}
CLOUDPICKLE_MODULES = {"cloudpickle", "cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast"}
CLOUDPICKLE_HELPERS = {
    "_builtin_type", "_make_skel_func", "_fill_function", "_make_function", "_function_setstate",
    "_make_empty_cell", "_make_cell", "_make_code", "_make_skeleton_class", "_make_skeleton_enum",
    "_rehydrate_skeleton_class", "_class_setstate", "_enum_setstate", "_make_typevar", "_make_dict_keys",
    "_make_dict_values", "_make_dict_items", "_gen_ellipsis", "_gen_not_implemented", "subimport",
    "dynamic_subimport", "_get_dynamic_module", "_lookup_class_or_track",
}
#: What cloudpickle writes for classes defined in a training script (type constructors and decorators).
BUILTIN_STUBS = {("builtins", n) for n in ("type", "object", "staticmethod", "classmethod", "property")} | {
    ("abc", "ABCMeta"), ("abc", "ABC"), ("enum", "EnumMeta"), ("enum", "Enum")}
TF_MODULE_WRAPPER = "TFModuleWrapper"
_POLICY_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]*Policy$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def allowed_stub(module: str, name: str) -> bool:
    """Whether `module.name` is something SB2 files refer to and may stand in as an inert Stub."""
    top = module.split(".")[0]
    short = name.split(".")[-1]
    if (module, name) in BUILTIN_STUBS:
        return True
    if top == "stable_baselines":
        return True  # policies, noise, memory, schedules, replay-buffer enums, algorithm classes
    if module == "gym.spaces" or module.startswith("gym.spaces."):
        return name in GYM_SPACES
    if module.startswith("numpy.random"):
        return name in RANDOM_STATE_NAMES
    if module in CLOUDPICKLE_MODULES:
        return name in CLOUDPICKLE_HELPERS
    if top in ("tensorflow", "tensorflow_core"):
        from .activations import ACTIVATIONS, ALIASES

        return short in ACTIVATIONS or short in ALIASES or short == TF_MODULE_WRAPPER
    if top == "utils":
        return True  # the rl-baselines-zoo helper module (custom policies, schedules)
    return bool(_POLICY_NAME.match(short))  # a user's policy class, referenced by import path


class Dialect(NamedTuple):
    """What one kind of file may name, and how its pickles are read (module doc).

    `files` names the writer in messages ("SB2": "SB2 model files do not need it", "not an SB2 pickle");
    `accepts` says, in a refusal, what the reader accepts. `special` maps globals to this module's own callables
    (numpy rebuilt by hand, OrderedDict...), `allowed_stub` says which other globals become inert stand-ins, and
    `refused` names globals refused with a reason of their own (a dtype the reader does not support). A dialect
    with a `persistent_load` accepts BINPERSID and hands it each persistent id (torch names its storages so).
    `dropped_state` lists the attributes a BUILD on an OrderedDict may set; they are accepted and dropped (torch
    state dicts carry `_metadata`, which only torch's own loader reads).
    """

    files: str
    accepts: str
    special: Mapping[Tuple[str, str], Any]
    allowed_stub: Callable[[str, str], bool]
    refused: Mapping[Tuple[str, str], str] = {}
    persistent_load: Optional[Callable[[Any], Any]] = None
    dropped_state: FrozenSet[str] = frozenset()


#: SB2's files: pickled gym spaces, Stable-Baselines objects, TensorFlow activations, numpy data.
SB2_DIALECT = Dialect("SB2", "numpy arrays, gym spaces, Stable-Baselines names and TensorFlow activations",
                      _SPECIAL, allowed_stub)


# -- what each opcode builds, charged before it runs --------------------------------------------------------
def built_limit(input_bytes: int) -> int:
    """Bytes the unpickler may build from pickles read out of `input_bytes` bytes of input (module doc)."""
    return BUILT_BYTES_PER_INPUT_BYTE * input_bytes + BUILT_BYTES_SLACK


class BuildBudget(object):
    """What the unpickler may still build for one input: a pickle, or every pickle of one .zip `data` member
    (they share one budget, so the fixed allowance is not granted once per `:serialized:` entry)."""

    def __init__(self, input_bytes: int, builder: str = "the pickle",
                 likely_cause: str = "values stored once and used again and again?"):
        self.input_bytes, self.limit, self.built = input_bytes, built_limit(input_bytes), 0
        self.builder, self.likely_cause = builder, likely_cause

    def charge(self, cost: int) -> None:
        """Count `cost` bytes about to be built; refuse once the total passes the limit."""
        self.built += cost
        if self.built > self.limit:
            raise ExportError("{} builds more than {} bytes of values from {} bytes of input (the safe loader "
                              "allows {} x the input + {} MiB; {}); refused".format(
                                  self.builder, self.limit, self.input_bytes, BUILT_BYTES_PER_INPUT_BYTE,
                                  BUILT_BYTES_SLACK >> 20, self.likely_cause))


def _data_bytes(value: Any) -> int:
    """What a callable may copy out of one argument: the bytes of a string or bytes object (`_codecs.encode`,
    numpy's buffers become as many bytes), an entry per element of a container (`OrderedDict(items)`)."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, (tuple, list, dict, set, frozenset)):
        return ENTRY_BYTES * len(value)
    return 0


def _arguments_cost(arguments: Any) -> int:
    """A call's result and its copy of the arguments (a stand-in records them), plus what it copies out of each."""
    if not isinstance(arguments, (tuple, list, dict)):
        return OBJECT_BYTES
    values = arguments.values() if isinstance(arguments, dict) else arguments
    return OBJECT_BYTES + sum(ENTRY_BYTES + _data_bytes(value) for value in values)


def _state_cost(state: Any) -> int:
    """BUILD: an array's state tuple holds its raw bytes, copied into the array; other states are recorded."""
    parts = state if isinstance(state, (tuple, list)) else (state,)
    return OBJECT_BYTES + sum(_data_bytes(part) for part in parts)


def _object_cost(unpickler: Any) -> int:
    return OBJECT_BYTES


def _marked(unpickler: Any) -> list:
    """The objects above the innermost MARK (the pure-Python unpickler keeps them as its current stack)."""
    return unpickler.stack


#: Opcode -> bytes it is about to build, computed from the stack before it runs (default: one object).
_OPCODE_COSTS = {
    "APPEND": lambda u: SLOT_BYTES,
    "APPENDS": lambda u: SLOT_BYTES * len(_marked(u)),
    "SETITEM": lambda u: ENTRY_BYTES,
    "SETITEMS": lambda u: ENTRY_BYTES * (len(_marked(u)) // 2),
    "ADDITEMS": lambda u: ENTRY_BYTES * len(_marked(u)),
    "LIST": lambda u: OBJECT_BYTES + SLOT_BYTES * len(_marked(u)),
    "TUPLE": lambda u: OBJECT_BYTES + SLOT_BYTES * len(_marked(u)),
    "TUPLE1": lambda u: OBJECT_BYTES + SLOT_BYTES,
    "TUPLE2": lambda u: OBJECT_BYTES + 2 * SLOT_BYTES,
    "TUPLE3": lambda u: OBJECT_BYTES + 3 * SLOT_BYTES,
    "DICT": lambda u: OBJECT_BYTES + ENTRY_BYTES * (len(_marked(u)) // 2),
    "FROZENSET": lambda u: OBJECT_BYTES + ENTRY_BYTES * len(_marked(u)),
    "PUT": lambda u: ENTRY_BYTES, "BINPUT": lambda u: ENTRY_BYTES, "LONG_BINPUT": lambda u: ENTRY_BYTES,
    "MEMOIZE": lambda u: ENTRY_BYTES,
    "REDUCE": lambda u: _arguments_cost(u.stack[-1] if u.stack else None),
    "NEWOBJ": lambda u: _arguments_cost(u.stack[-1] if u.stack else None),
    "NEWOBJ_EX": lambda u: _arguments_cost(u.stack[-2] if len(u.stack) > 1 else None) + _arguments_cost(
        u.stack[-1] if u.stack else None),
    "OBJ": lambda u: _arguments_cost(_marked(u)[1:]),
    "INST": lambda u: _arguments_cost(_marked(u)),
    "BUILD": lambda u: _state_cost(u.stack[-1] if u.stack else None),
}
#: Opcodes that build nothing: they move references, or mark and end the stream.
_FREE_OPCODES = {"GET", "BINGET", "LONG_BINGET", "DUP", "MARK", "POP", "POP_MARK", "PROTO", "FRAME", "STOP",
                 "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE"}


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """An unpickler whose globals are the inert stand-ins above and whose BUILD only fills stand-in instances;
    anything else raises ExportError.

    It is Python's pure-Python unpickler (`pickle._Unpickler`, in every Python 3) because the C one's opcodes
    cannot be overridden: its BUILD sets attributes on any object with no `__setstate__`, such as the shared
    functions of the allowlist. SB2 pickles have a few thousand opcodes, so the speed does not matter.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def load_proto(self) -> None:
        """PROTO, up to PICKLE_PROTOCOL whatever this Python's pickle module writes."""
        proto = self.read(1)[0]
        if not 0 <= proto <= PICKLE_PROTOCOL:
            raise ValueError("unsupported pickle protocol: %d" % proto)
        self.proto = proto

    def load_bytearray8(self) -> None:
        """BYTEARRAY8 where this Python's unpickler lacks it (3.7); the scan checked its length."""
        self.charge(OBJECT_BYTES)
        length = int.from_bytes(self.read(8), "little")
        self.append(bytearray(self.read(length)))

    dispatch[pickle.PROTO[0]] = load_proto
    dispatch.setdefault(BYTEARRAY8[0], load_bytearray8)

    def __init__(self, data: bytes, budget: Optional["BuildBudget"] = None, dialect: Dialect = SB2_DIALECT):
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.dialect = dialect
        self.classes: Dict[Tuple[str, str], type] = {}  # per load: a file cannot grow a process-wide cache
        self.class_count = 0
        self.budget = budget if budget is not None else BuildBudget(len(data))

    def charge(self, cost: int) -> None:
        self.budget.charge(cost)

    def load_build(self) -> None:
        """BUILD, accepted only on an instance of a stand-in (created by this load, so nothing shared changes):
        arrays, dtypes, gym spaces and SB2 objects are the only things SB2 pickles restore state on."""
        state = self.stack.pop()
        target = self.stack[-1]
        if self.dialect.dropped_state and type(target) is OrderedDict and isinstance(state, dict) \
                and all(isinstance(key, str) for key in state) and set(state) <= self.dialect.dropped_state:
            return  # an OrderedDict this load created (`_ordered_dict`); the state is never set on it
        if not issubclass(type(target), Stub):
            raise ExportError("the pickle restores state (BUILD) on {}; only the arrays, dtypes and stand-in "
                              "objects it creates take state; refused".format(_describe(target, self.dialect.special)))
        type(target).__setstate__(target, state)

    dispatch[pickle.BUILD[0]] = load_build

    def charged(opcode: Any, run: Any) -> Any:
        """`run` (the unpickler's handler of `opcode`), after charging what it is about to build."""
        cost = _OPCODE_COSTS.get(opcode.name, _object_cost)

        def run_charged(self: "SafeUnpickler") -> None:
            self.charge(cost(self))
            run(self)

        return run_charged

    for _opcode in pickletools.opcodes:
        _code = _opcode.code.encode("latin-1")[0]
        if _code in dispatch and _opcode.name not in _FREE_OPCODES:
            dispatch[_code] = charged(_opcode, dispatch[_code])
    del charged, _opcode, _code

    def stub_class(self, module: str, name: str) -> type:
        key = (module, name)
        if key not in self.classes:
            self.count_class()
            self.classes[key] = stub_class(module, name)
        return self.classes[key]

    def skeleton_class(self, type_constructor: Any = None, name: Any = None, bases: Any = (), *rest: Any) -> type:
        """cloudpickle's `_make_skeleton_class(type, name, bases, type_kwargs, tracker_id, extra)`, inert."""
        if not isinstance(name, str) or not isinstance(bases, tuple) or len(name) > MAX_GLOBAL_NAME:
            raise ExportError("cloudpickle _make_skeleton_class with unexpected arguments: a class named {} with "
                              "bases {} (a name of at most {} characters and a tuple)".format(
                                  preview(name), preview(bases), MAX_GLOBAL_NAME))
        self.count_class()
        return by_value_class(name, bases)

    def count_class(self) -> None:
        self.class_count += 1
        if self.class_count > MAX_GLOBALS:
            raise ExportError("the pickle defines more than {} different classes; refused".format(MAX_GLOBALS))

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str) or len(module) > MAX_GLOBAL_NAME \
                or len(name) > MAX_GLOBAL_NAME or not _DOTTED.match(module) or not _DOTTED.match(name):
            raise ExportError("the pickle names a malformed global {}; refused".format(
                preview("{}.{}".format(module, name))))
        reason = self.dialect.refused.get((module, name))
        if reason is not None:
            raise ExportError("refusing to load the global {}: {}".format(preview("{}.{}".format(module, name)),
                                                                          reason))
        special = self.dialect.special.get((module, name))
        if special is not None:
            return special
        if module in CLOUDPICKLE_MODULES and name == "_make_skeleton_class":
            return self.skeleton_class
        if self.dialect.allowed_stub(module, name):
            return self.stub_class(module, name)
        raise ExportError(
            "refusing to load the global {}: {} model files do not need it and loading it could run code "
            "(the safe loader accepts {})".format(preview("{}.{}".format(module, name)), self.dialect.files,
                                                  self.dialect.accepts))

    def persistent_load(self, pid: Any) -> Any:
        if self.dialect.persistent_load is None:
            raise ExportError("the pickle uses persistent ids, which {} files never do".format(self.dialect.files))
        return self.dialect.persistent_load(pid)


def loads(data: bytes, what: str = "pickle", budget: Optional[BuildBudget] = None,
          dialect: Dialect = SB2_DIALECT) -> Any:
    """The object a pickle describes, with every global replaced by an inert stand-in (see module doc), as
    `dialect` allows.

    `budget` is shared by the pickles of one input (a .zip's `data` member); by default the pickle has its own.
    """
    scan(data, what, dialect)
    try:
        return SafeUnpickler(data, budget, dialect).load()
    except SbifError as exc:  # raised by our stand-ins: say which file
        raise type(exc)("{}: {}".format(what, exc)) from None
    except Exception as exc:  # pickle, EOF, type, value, memory errors: all are a bad file
        raise ExportError("{}: the pickle is corrupt or not an {} pickle ({})".format(
            what, dialect.files, exception_text(exc))) from None


# -- the opcode scan ------------------------------------------------------------------------------------------
def scan(data: bytes, what: str = "pickle", dialect: Dialect = SB2_DIALECT) -> int:
    """Walk every opcode once without building anything; refuse what the unpickler should never see.

    Returns the number of opcodes. Lengths are read by `pickletools` from the bytes that are there (a
    declared 2**60-byte string is refused, never allocated).
    """
    return _walk(data, what, dialect)[0]


def pickle_length(data: bytes, what: str = "pickle", dialect: Dialect = SB2_DIALECT) -> int:
    """The bytes of the first pickle in `data`, through its STOP opcode, scanned as `scan` does: where the next
    record of a stream of pickles starts (torch's legacy format writes several in a row)."""
    return _walk(data, what, dialect)[1]


def _walk(data: bytes, what: str, dialect: Dialect) -> Tuple[int, int]:
    """`scan`'s walk: (the number of opcodes, the offset just past STOP)."""
    refused = {name: reason for name, reason in REFUSED_OPCODES.items()
               if not (name == "BINPERSID" and dialect.persistent_load is not None)}
    if len(data) > MAX_PICKLE_BYTES:
        raise ExportError("{}: the pickle is {} bytes; the safe loader reads at most {}".format(
            what, len(data), MAX_PICKLE_BYTES))
    stream = io.BytesIO(data)
    machine = _StackMachine(what)
    count = 0
    while True:
        position = stream.tell()
        code = stream.read(1)
        if not code:
            raise ExportError("{}: the pickle is truncated (it ends after {} bytes, before its STOP opcode)".format(
                what, len(data)))
        op = _OPCODES.get(code)
        if op is None:
            raise ExportError("{}: corrupt pickle: unknown opcode 0x{:02x} at byte {}".format(what, code[0], position))
        if op.name in refused:
            raise ExportError("{}: the pickle uses {} ({} at byte {}), which {} files never do; refused".format(
                what, refused[op.name], op.name, position, dialect.files))
        count += 1
        if count > MAX_OPCODES:
            raise ExportError("{}: the pickle has more than {} opcodes; refused".format(what, MAX_OPCODES))
        try:
            arg = op.arg.reader(stream) if op.arg is not None else None
        except Exception as exc:  # pickletools raises ValueError on short or malformed arguments
            raise ExportError("{}: the pickle is truncated or corrupt at byte {} ({}: {})".format(
                what, position, op.name, exception_text(exc))) from None
        if op.name == "STOP":
            return count, stream.tell()
        machine.step(op, arg, position)


class _StackMachine(object):
    """The unpickler's stack, marks and memo, tracking only how deeply each tuple is nested and how many tuple
    nodes it reaches (what hashing it walks: shared references count each time)."""

    def __init__(self, what: str):
        self.what = what
        self.stack: List[Tuple[int, int]] = []  # per object: (tuple nesting depth, tuple nodes); (0, 0) if no tuple
        self.marks: List[int] = []  # stack length at each open MARK
        self.memo: Dict[int, Tuple[int, int]] = {}

    def fail(self, problem: str, position: int) -> None:
        raise ExportError("{}: refused pickle: {} (at byte {})".format(self.what, problem, position))

    def step(self, op: Any, arg: Any, position: int) -> None:
        name = op.name
        if name == "MARK":
            if len(self.marks) >= MAX_NESTING:
                self.fail("more than {} nested MARKs".format(MAX_NESTING), position)
            self.marks.append(len(self.stack))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            top = self.pop(1, position)[0]
            self.push(top, position)
            if len(self.memo) >= MAX_MEMO:
                self.fail("more than {} memo entries".format(MAX_MEMO), position)
            self.memo[len(self.memo) if name == "MEMOIZE" else int(arg)] = top
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in self.memo:
                self.fail("memo entry {} read before it is stored".format(arg), position)
            self.push(self.memo[int(arg)], position)
        elif name == "DUP":
            top = self.pop(1, position)[0]
            self.push(top, position)
            self.push(top, position)
        elif name == "POP" and self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()  # POP with nothing above the mark removes the mark
        elif name not in ("PROTO", "FRAME"):
            self.apply(op, name, position)

    def apply(self, op: Any, name: str, position: int) -> None:
        before = op.stack_before
        items: List[Tuple[int, int]] = []
        if pickletools.markobject in before:
            items = self.pop_to_mark(position)
            below = self.pop(before.index(pickletools.markobject), position)
        else:
            below = self.pop(len(before), position)
        if name in _IN_PLACE_OPS:
            self.push(below[0], position)
            return
        for _ in op.stack_after:
            entry = (0, 0)
            if name in _TUPLE_OPS:
                parts = items + below
                entry = (1 + max([depth for depth, _ in parts] + [0]), 1 + sum(nodes for _, nodes in parts))
                if entry[0] > MAX_NESTING:
                    self.fail("tuples nested more than {} levels deep".format(MAX_NESTING), position)
                if entry[1] > MAX_TUPLE_NODES:
                    self.fail("a tuple reaching more than {} tuples through shared references (hashing it would "
                              "never end)".format(MAX_TUPLE_NODES), position)
            self.push(entry, position)

    def push(self, entry: Tuple[int, int], position: int) -> None:
        if len(self.stack) >= MAX_STACK:
            self.fail("more than {} objects on the stack".format(MAX_STACK), position)
        self.stack.append(entry)

    def pop(self, count: int, position: int) -> List[Tuple[int, int]]:
        floor = self.marks[-1] if self.marks else 0
        if count > len(self.stack) - floor:
            self.fail("stack underflow", position)
        if not count:
            return []
        popped = self.stack[-count:]
        del self.stack[-count:]
        return popped

    def pop_to_mark(self, position: int) -> List[Tuple[int, int]]:
        if not self.marks:
            self.fail("an opcode needs a MARK that is not there", position)
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items


# -- helpers --------------------------------------------------------------------------------------------------
def exception_text(exc: BaseException) -> str:
    """An exception met while reading a file, for a one-line message: its type and a bounded preview of its
    argument. Never `str(exc)`: a KeyError's text is the repr of its key, which a file can make gigabytes
    long with shared references."""
    argument = exc.args[0] if len(exc.args) == 1 else exc.args
    if isinstance(argument, str):
        lines = argument.strip().splitlines()
        argument = lines[0] if lines else ""
    return "{}: {}".format(type(exc).__name__, preview(argument))


def _describe(value: Any, special: Mapping[Tuple[str, str], Any] = _SPECIAL) -> str:
    """What a value from the pickle is, in a few words: the global a stand-in or allowlisted callable (of
    `special`, the reading dialect's) stands for (clipped: the file chooses the name), else its type."""
    if is_stub_class(value):
        return "the class " + preview(value.reference())
    if getattr(value, "__func__", None) is SafeUnpickler.skeleton_class:
        return "the global cloudpickle._make_skeleton_class"
    for (module, name), known in special.items():
        if value is known:
            return "the global {}.{}".format(module, name)
    if isinstance(value, Stub):
        return "an instance of " + preview(type(value).reference())
    return "a {} value".format(type(value).__name__)


def stub_reference(value: Any) -> Optional[Tuple[str, str]]:
    """(module, name) of a stand-in class or of an instance of one; None for anything else."""
    if is_stub_class(value):
        return value.sbif_module, value.sbif_name
    if isinstance(value, Stub):
        return type(value).sbif_module, type(value).sbif_name
    return None


def referenced_globals(value: Any) -> List[Tuple[str, str]]:
    """(module, name), once each, of every global that the stand-ins in `value` (what `loads` returned) stand
    for: the classes and functions a real unpickler would import to rebuild it. The live loader stands in for
    those this interpreter cannot import, as this reader did (`live.stand_ins`).

    Walks containers and what each stand-in recorded (call arguments, state, items, the bases of a class pickled
    by value), each object once: linear in what the unpickler built, which its budget bounds.
    """
    found: "OrderedDict[Tuple[str, str], None]" = OrderedDict()
    pending = [value]
    seen = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if is_stub_class(item):
            if item.sbif_module not in (BY_VALUE, CallRecord.sbif_module):
                found[(item.sbif_module, item.sbif_name)] = None
            pending.extend(getattr(item, "sbif_bases", ()))
        elif isinstance(item, Stub):
            pending.extend([type(item), item.args, item.kwargs, item.state, item.items])
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
    return list(found)


def materialize(value: Any) -> Any:
    """An ArrayStub's array, or the value itself."""
    if isinstance(value, ArrayStub):
        if value.array is None:
            raise ExportError("a numpy array in the pickle has no data")
        return value.array
    if isinstance(value, DtypeStub):
        return value.resolve()
    return value


__all__ = ["ArrayStub", "BY_VALUE", "BuildBudget", "Dialect", "DtypeStub", "SB2_DIALECT", "SafeUnpickler", "Stub",
           "allowed_stub", "build_array", "built_limit", "exception_text", "is_stub_class",
           "loads", "materialize", "pickle_length", "referenced_globals", "scan", "stub_reference"]
