"""Hostile inputs for every kind of input SBIF reads, built by code (nothing large is committed), for issue #18.

Each input is a `HostileFile` (written into a directory on demand) or a `HostileStream` (protocol bytes produced
chunk by chunk, so a 1 GB line never sits in the test's memory). Its `kind` says what reads it (the list below), and
`commands(item, path, clean)` gives the real command lines that read it, so the budget test
(`test_budgets.py`), the no-internal-error test (`test_no_internal_error.py`) and anyone fixing a loader run the
same inputs through the same entries:

    from tests.attacks.hostile_inputs import hostile_files, hostile_streams, clean_inputs, commands
    clean = clean_inputs(directory)
    for item in hostile_files():
        path = item.make(directory)
        for argv in commands(item, path, clean): ...       # ["sbif", "validate", path], ["sbif-check", path], ...

Every input comes from a class of issue #18 or, for SB3's files, #21 ("attack" names it) and must end in exit status
0 or 1, with one line on stderr for a refusal, within the memory and time budgets test_budgets.py states.

Kinds, and what reads them: `sb2` (an SB2 .zip or legacy .pkl given to `sbif export`), `statistics` (a zoo
obs_rms.pkl given to `sbif export --vecnormalize`), `sb3` (an SB3 .zip given to `sbif export --loader safe`),
`sb3_statistics` (SB3's vecnormalize.pkl given to `sbif export --loader safe --vecnormalize` with a clean SB3 save),
`zoo_config` (a config.yml given to `sbif export --zoo-config`),
`sbif` (an .sbif file given to `sbif validate`, `sbif predict` and the C `sbif-check`), `obs` (observations given
to `sbif predict --obs`), `protocol` (request lines given to the Python and C protocol servers).
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import warnings
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Tuple

import numpy as np

from sbif.export.sb3.torch_storage import TENSOR_BYTES_PER_INPUT_BYTE
from sbif.format.container import write_container
from sbif.format.document import encode_document

from .sb2_like import _serialized as serialized_entry  # SB2's data_to_json entry, one home
from .sb2_like import (Build, Call, Global, NewObj, dumps, model_data, model_parameters, running_mean_std, write_pkl,
                       write_zip)
from .sb3_like import (DATA_CARRIERS, DICT_SPACE, FLOAT_STORAGE, TORCH_CARRIERS, VEC_NORMALIZE, StorageId, carried,
                       exportable_save, legacy_pth, legacy_storage, pth, save_bytes, tensor, torch_pickle,
                       vecnormalize_blob, with_data)
from .sb3_like import running_mean_std as sb3_running_mean_std

MiB = 1 << 20
GiB = 1 << 30

class HostileFile(NamedTuple):
    """A hostile input file: `make(directory)` writes it there and returns its path."""

    name: str
    kind: str
    attack: str
    make: Callable[[str], str]
    #: takes seconds to write or to read (a 100 MB header): `@pytest.mark.slow` in the tests
    slow: bool = False
    #: an .sbif file's observation for `sbif predict`, inline JSON (default: CleanInputs.observation, Box(3))
    observation: str = ""


class HostileStream(NamedTuple):
    """Hostile protocol input: `chunks()` yields the bytes written to the server's stdin, `size` their total."""

    name: str
    attack: str
    chunks: Callable[[], Iterator[bytes]]
    size: int
    slow: bool = False
    kind: str = "protocol"


class CleanInputs(NamedTuple):
    """Valid inputs the hostile ones are combined with: a model to export with hostile statistics or configs, a
    model to run hostile observations through, and an observation it accepts."""

    sb2_model: str       # a legacy .pkl, PPO2 MlpPolicy, Box(4) observations, Discrete(2) actions
    sbif_model: str      # an .sbif file, PPO2, Box(3) float32 observations
    observation: str     # inline JSON: one valid observation of sbif_model
    sb3_model: str       # an SB3 .zip written by hand, PPO MlpPolicy, Box(4) observations, Discrete(2) actions


def clean_inputs(directory: str) -> CleanInputs:
    data = model_data()
    sb2_model = write_pkl(os.path.join(directory, "clean_model.pkl"), data, model_parameters(data))
    sbif_model = _write(os.path.join(directory, "clean.sbif"), base_sbif().bytes())
    sb3_model = _write(os.path.join(directory, "clean_sb3.zip"), save_bytes(exportable_save()))
    return CleanInputs(sb2_model, sbif_model, "[[0.1, -0.2, 0.3]]", sb3_model)


def commands(item: Any, path: str, clean: CleanInputs) -> List[List[str]]:
    """The command lines that read `item` (written at `path`): `sbif ...` means the CLI's `main(argv[1:])`,
    `sbif-check` the C checker. Protocol streams are served, not passed as arguments (see `PROTOCOL_SERVERS`)."""
    output = path + ".out.sbif"
    if item.kind == "sb2":
        return [["sbif", "export", path, "-o", output]]
    if item.kind == "statistics":
        return [["sbif", "export", clean.sb2_model, "--vecnormalize", path, "-o", output]]
    if item.kind == "sb3":
        return [["sbif", "export", path, "--loader", "safe", "-o", output]]
    if item.kind == "sb3_statistics":
        return [["sbif", "export", clean.sb3_model, "--loader", "safe", "--vecnormalize", path, "-o", output]]
    if item.kind == "zoo_config":
        return [["sbif", "export", clean.sb2_model, "--zoo-config", path, "-o", output]]
    if item.kind == "sbif":
        return [["sbif", "validate", path], ["sbif", "predict", path, "--obs", item.observation or clean.observation],
                ["sbif-check", path]]
    if item.kind == "obs":
        return [["sbif", "predict", clean.sbif_model, "--obs", path]]
    raise ValueError("protocol streams are served, not passed as arguments: {}".format(item.name))


#: protocol server -> how it is started (`python` means this interpreter; `sbif-protocol` the C executable).
PROTOCOL_SERVERS = {"python": ["python", "-m", "conformance.adapters.sbif_numpy"],
                    "c": ["sbif-protocol"]}


def _write(path: str, content: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(content)
    return path


def _file(name: str, kind: str, attack: str, suffix: str, content: Callable[[], bytes], **options: Any) -> HostileFile:
    """A HostileFile whose bytes come from `content()`, written as NAME.SUFFIX."""
    return HostileFile(name, kind, attack, lambda directory: _write(os.path.join(directory, name + suffix),
                                                                    content()), **options)


# -- SB2 models and statistics: pickles --------------------------------------------------------------------------
def shared_reference_list(levels: int = 10, width: int = 10) -> List[Any]:
    """A list `levels` deep, each level `width` references to the one below: pickled in a few hundred bytes (the
    pickler memoises the shared lists), it prints as width^levels leaves (10^10: gigabytes of text for any
    `str()`, `repr()` or `{!r}` of it)."""
    value: List[Any] = ["x"]
    for _ in range(levels):
        value = [value] * width
    return value


def codecs_inflation(text_bytes: int, calls: int) -> List[Any]:
    """`calls` calls of the allowed `_codecs.encode` on one memoised string of `text_bytes` characters: the pickle
    holds the string once and a few bytes per call, unpickling builds `calls` fresh byte strings of that size."""
    text = "x" * text_bytes
    return [Call(Global("_codecs", "encode"), text, "latin1") for _ in range(calls)]


def ordered_dict_inflation(pairs: int, calls: int) -> List[Any]:
    """`calls` calls of the allowed `collections.OrderedDict` on one memoised list of `pairs` pairs: each call
    builds a new dict of them (about 100 bytes per entry) from a few bytes of pickle."""
    items = [(index, None) for index in range(pairs)]
    return [Call(Global("collections", "OrderedDict"), items) for _ in range(calls)]


def _model_pkl(**data_changes: Any) -> Callable[[], bytes]:
    def content() -> bytes:
        data = model_data()
        params = model_parameters(data)
        data.update(data_changes)
        return dumps((data, params))
    return content


def _model_zip_with(name: str, key: str, value: Any) -> Callable[[str], str]:
    """A valid SB2 .zip whose data entry `key` is `value` as SB2 writes a non-JSON value: a `:serialized:` pickle.
    (The entry is made directly: `write_zip` would first try `value` as JSON, which expands shared references.)"""
    def make(directory: str) -> str:
        data = model_data()
        path = write_zip(os.path.join(directory, name + ".zip"), data, model_parameters(data))
        with zipfile.ZipFile(path) as archive:
            members = OrderedDict((member, archive.read(member)) for member in archive.namelist())
        readable = json.loads(members["data"].decode("utf-8"))
        readable[key] = serialized_entry(value)
        members["data"] = json.dumps(readable).encode("utf-8")
        with zipfile.ZipFile(path, "w") as archive:
            for member, content in members.items():
                archive.writestr(member, content)
        return path
    return make


def _zip(name: str, attack: str, key: str, value: Callable[[], Any]) -> HostileFile:
    return HostileFile(name, "sb2", attack, lambda directory: _model_zip_with(name, key, value())(directory))


def sb2_inputs() -> List[HostileFile]:
    shared = "memory: shared references expanded by an error message (issue #18, item 2)"
    inflation = "memory: memoised values passed again and again to allowed callables (issue #18, item 2)"
    return [
        _file("shared_references_whole_file", "sb2", shared, ".pkl", lambda: dumps(shared_reference_list())),
        _file("shared_references_as_data", "sb2", shared, ".pkl",
              lambda: dumps((shared_reference_list(), OrderedDict()))),
        _file("shared_references_as_observation_space", "sb2", shared, ".pkl",
              _model_pkl(observation_space=shared_reference_list())),
        _file("shared_references_as_policy_kwargs", "sb2", shared, ".pkl",
              _model_pkl(policy_kwargs={"net_arch": shared_reference_list()})),
        _file("shared_references_as_parameters", "sb2", shared, ".pkl",
              lambda: dumps((model_data(), shared_reference_list()))),
        # 2000 x 1 MiB = 2 GiB from a 1 MiB pickle
        _file("codecs_encode_inflation", "sb2", inflation, ".pkl", _model_pkl(learning_rate=codecs_inflation(MiB,
                                                                                                            2000))),
        # 400 dicts of 50000 entries (about 2 GB) from a 0.4 MB pickle
        _file("ordered_dict_inflation", "sb2", inflation, ".pkl",
              _model_pkl(cliprange=ordered_dict_inflation(50000, 400))),
        _zip("codecs_encode_inflation_serialized_in_zip", inflation, "learning_rate",
             lambda: codecs_inflation(256 * 1024, 4000)),
        _zip("ordered_dict_inflation_serialized_in_zip", inflation, "cliprange",
             lambda: ordered_dict_inflation(20000, 2000)),
        _zip("shared_references_serialized_in_zip", shared, "learning_rate", shared_reference_list),
    ]


def array_shape_bomb(shape: Tuple[int, ...]) -> Call:
    """An ndarray as NumPy pickles one (`_reconstruct`, then BUILD) declaring `shape` float64 backed by 8 bytes."""
    return Call(Global("numpy.core.multiarray", "_reconstruct"), Global("numpy", "ndarray"), (0,), b"b",
                state=(1, shape, np.dtype("float64"), False, b"\0" * 8))


def _statistics(**state: Any) -> Callable[[], bytes]:
    return lambda: dumps(running_mean_std((4,), **state))


def statistics_inputs() -> List[HostileFile]:
    shared = "memory: shared references in statistics (issue #18, item 2)"
    inflation = "memory: inflation by allowed callables in statistics (issue #18, item 2)"
    state = "statistics that change later loads (issue #18, item 3)"
    build = Call(Global("collections", "OrderedDict"), state=(None, {"__defaults__": ([("injected", 1.0)],)}))
    return [
        _file("statistics_shared_references_as_mean", "statistics", shared, ".pkl",
              _statistics(mean=shared_reference_list())),
        _file("statistics_shared_references_whole_file", "statistics", shared, ".pkl",
              lambda: dumps(shared_reference_list())),
        _file("statistics_codecs_encode_inflation", "statistics", inflation, ".pkl",
              _statistics(count=codecs_inflation(MiB, 2000))),
        _file("statistics_ordered_dict_inflation", "statistics", inflation, ".pkl",
              _statistics(count=ordered_dict_inflation(50000, 400))),
        _file("statistics_build_on_ordered_dict", "statistics", state, ".pkl", _statistics(count=build)),
        _file("statistics_mean_shape_bomb", "statistics", "memory: an array declaring 10^12 elements", ".pkl",
              _statistics(mean=array_shape_bomb((10 ** 6, 10 ** 6)))),
    ]


# -- SB3 saves and vecnormalize.pkl: zips of pickles and torch files ---------------------------------------------
def _canary_payload(directory: str, name: str) -> Call:
    """`os.system` creating NAME.canary in `directory`: the reader refuses the global, so the file never appears."""
    return Call(Global("os", "system"), "touch " + os.path.join(directory, name + ".canary"))


def _sb3(name: str, attack: str, members: Callable[[str], Dict[str, bytes]]) -> HostileFile:
    """NAME.zip: an SB3 save of `members(directory)`."""
    return HostileFile(name, "sb3", attack, lambda directory: _write(os.path.join(directory, name + ".zip"),
                                                                     save_bytes(members(directory))))


def _sb3_carrying(carrier: str, attack: str) -> HostileFile:
    """The exportable hand-made save with a code payload where SB3 puts a pickle (`sb3_like.carried`)."""
    name = "sb3_code_in_" + carrier.replace(" ", "_").replace(".", "_")
    return _sb3(name, attack, lambda directory: carried(_canary_payload(directory, name), carrier, exportable_save()))


def _sb3_with_policy(name: str, attack: str, policy: Callable[[], bytes]) -> HostileFile:
    """The exportable hand-made save with policy.pth replaced by `policy()`."""
    return _sb3(name, attack, lambda directory: dict(exportable_save(), **{"policy.pth": policy()}))


def _sb3_with_data(name: str, attack: str, **entries: Callable[[], Any]) -> HostileFile:
    """The exportable hand-made save with `data` entries replaced (bytes: a `:serialized:` pickle of them)."""
    return _sb3(name, attack, lambda directory: with_data(exportable_save(), **{key: value()
                                                                               for key, value in entries.items()}))


def _one_tensor(storage: StorageId, offset: int, size: tuple, stride: tuple, content: bytes,
                **options: Any) -> Callable[[], bytes]:
    """A policy.pth whose state dict is one tensor `w` viewing `storage`, whose record holds `content`."""
    return lambda: pth({"w": tensor(storage, offset, size, stride)}, {"0": content}, **options)


def _with_sizes(blob: bytes, member: str, declared: int) -> bytes:
    """A zip whose central directory and local header say `member` expands to `declared` bytes (what it holds is
    unchanged)."""
    name = member.encode("utf-8")
    edited = bytearray(blob)
    for signature, size_offset, name_offset in ((b"PK\x01\x02", 24, 46), (b"PK\x03\x04", 22, 30)):
        start = 0
        while True:
            start = blob.find(signature, start)
            if start < 0:
                break
            if blob[start + name_offset:start + name_offset + len(name)] == name:
                edited[start + size_offset:start + size_offset + 4] = struct.pack("<I", declared)
            start += 4
    return bytes(edited)


def _deflated(members: Dict[str, bytes]) -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return stream.getvalue()


def _duplicate_policy() -> bytes:
    """The exportable save with a second policy.pth appended (zipfile warns; the reader must refuse)."""
    stream = io.BytesIO(save_bytes(exportable_save()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(stream, "a") as archive:
            archive.writestr("policy.pth", exportable_save()["policy.pth"])
    return stream.getvalue()


def _two_prefixes() -> bytes:
    """A policy.pth holding two archives' data.pkl (torch writes one prefix)."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("a/data.pkl", torch_pickle({}))
        archive.writestr("b/data.pkl", torch_pickle({}))
    return stream.getvalue()


def _traversal_inside_policy() -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("archive/data.pkl", torch_pickle({}))
        archive.writestr("../archive/data/0", b"")
    return stream.getvalue()


def _first_half(blob: bytes) -> bytes:
    return blob[:len(blob) // 2]


def _storage_id(pid: tuple) -> StorageId:
    storage = StorageId("0", 1)
    storage.pid = pid
    return storage


def sb3_inputs() -> List[HostileFile]:
    """Hostile SB3 saves, one of each class `test_sb3_hostile.py` tests against the reader, as the CLI reads them.
    Each is the exportable hand-made save (`sb3_like.exportable_save`) with one trick."""
    code = "code in a pickle of an SB3 save: a :serialized: data entry or a torch file (issue #21)"
    tensors = "memory: a torch storage or tensor declaring more than the file holds (issue #21)"
    torch_file = "a torch file torch would not write (issue #21)"
    shared = "memory: shared references expanded by an error message, in an SB3 save (issues #18, #21)"
    inflation = "memory: memoised values passed again and again to allowed callables, in an SB3 save (issue #18)"
    zip_trick = "zip tricks in an SB3 save (issue #21)"
    spaces = "spaces and kwargs SB3 cannot have written (issue #21)"
    carriers = [_sb3_carrying(carrier, code) for carrier in DATA_CARRIERS + TORCH_CARRIERS]
    overlapping = (TENSOR_BYTES_PER_INPUT_BYTE + 1) * (64 * MiB) // 4
    return carriers + [
        _sb3("sb3_code_nested_in_an_sb3_class", code, lambda directory: carried(
            Call(Global("stable_baselines3.common.policies", "ActorCriticPolicy"),
                 _canary_payload(directory, "nested")), "policy_class", exportable_save())),
        _sb3("sb3_code_in_an_entry_never_unpickled", code, lambda directory: with_data(
            exportable_save(), lr_schedule=dumps(_canary_payload(directory, "lr_schedule"), 4))),
        _sb3_with_policy("sb3_build_on_a_torch_global", code, lambda: pth(
            Build(Global("collections", "OrderedDict"), (None, {"__defaults__": ([("injected", 1.0)],)})), {})),
        _sb3_with_policy("sb3_storage_bomb", tensors,
                         _one_tensor(StorageId("0", 2 ** 60), 0, (2 ** 30, 2 ** 30), (2 ** 30, 1), b"\0" * 16)),
        _sb3_with_policy("sb3_storage_shorter_than_its_tensor", tensors,
                         _one_tensor(StorageId("0", 4), 0, (8,), (1,), b"\0" * 16)),
        _sb3_with_policy("sb3_stride_reaching_outside_the_storage", tensors,
                         _one_tensor(StorageId("0", 4), 1, (2, 2), (3, 1), b"\0" * 16)),
        _sb3_with_policy("sb3_zero_stride_view_beyond_the_tensor_budget", tensors,
                         _one_tensor(StorageId("0", 1), 0, (overlapping,), (0,), b"\0" * 4)),
        _sb3_with_policy("sb3_storage_record_shorter_than_declared", tensors,
                         _one_tensor(StorageId("0", 4), 0, (4,), (1,), b"\0" * 15)),
        _sb3_with_policy("sb3_legacy_storage_of_2_60_elements", tensors, lambda: legacy_pth(
            {"w": tensor(legacy_storage("k", 2 ** 60), 0, (4,), (1,))}, ["k"], {"k": (2 ** 60, b"\0" * 16)})),
        _sb3_with_policy("sb3_legacy_magic_number", torch_file, lambda: b"".join(
            pickle.dumps(value, 2) for value in (12345, 1001, {"little_endian": True})) + torch_pickle({})),
        _sb3_with_policy("sb3_bfloat16_storage", torch_file, _one_tensor(
            StorageId("0", 2, Global("torch", "BFloat16Storage")), 0, (2,), (1,), b"\0" * 4)),
        _sb3_with_policy("sb3_byte_order_middle", torch_file,
                         _one_tensor(StorageId("0", 1), 0, (1,), (1,), b"\0" * 4, byteorder=b"middle")),
        _sb3_with_policy("sb3_storage_key_traversal", torch_file, _one_tensor(
            _storage_id(("storage", FLOAT_STORAGE, "../../etc/passwd", "cpu", 1)), 0, (1,), (1,), b"\0" * 4)),
        _sb3_with_policy("sb3_state_dict_not_a_dict", torch_file, lambda: pth([1, 2], {})),
        _sb3_with_data("sb3_persistent_id_in_data", torch_file, observation_space=lambda: torch_pickle(
            StorageId("0", 1))),
        _sb3_with_data("sb3_shared_references_as_policy_kwargs", shared,
                       policy_kwargs=lambda: dumps({"net_arch": shared_reference_list()}, 4)),
        _sb3_with_data("sb3_shared_references_as_observation_space", shared,
                       observation_space=lambda: dumps(shared_reference_list(), 4)),
        _sb3_with_data("sb3_codecs_encode_inflation_as_policy_kwargs", inflation,
                       policy_kwargs=lambda: dumps({"net_arch": codecs_inflation(256 * 1024, 4000)}, 4)),
        _sb3_with_data("sb3_bytearray8_declaring_2_60_bytes", inflation, action_space=lambda: (
            b"\x80\x05\x96" + (2 ** 60).to_bytes(8, "little") + b"abc.")),
        _sb3_with_data("sb3_nested_dict_space", spaces, observation_space=lambda: dumps(
            NewObj(DICT_SPACE, {"spaces": {"inner": NewObj(DICT_SPACE, {"spaces": {}})}}), 4)),
        _sb3_with_data("sb3_policy_kwargs_not_a_dict", spaces, policy_kwargs=lambda: dumps([4, 4], 4)),
        _sb3("sb3_member_named_dotdot", zip_trick, lambda directory: dict(exportable_save(), **{"../data": b"x"})),
        _sb3_with_policy("sb3_traversal_inside_policy_pth", zip_trick, _traversal_inside_policy),
        _sb3_with_policy("sb3_policy_pth_with_two_prefixes", zip_trick, _two_prefixes),
        _sb3("sb3_without_policy_pth", zip_trick, lambda directory: {
            member: content for member, content in exportable_save().items() if member != "policy.pth"}),
        _sb3("sb3_forty_extra_members", zip_trick, lambda directory: dict(
            exportable_save(), **{"extra{}".format(index): b"" for index in range(40)})),
        _sb3_with_policy("sb3_garbage_policy_pth", zip_trick, lambda: b"PK\x03\x04garbage"),
        _file("sb3_policy_pth_twice", "sb3", zip_trick, ".zip", _duplicate_policy),
        _file("sb3_member_declaring_4_gib", "sb3", zip_trick, ".zip",
              lambda: _with_sizes(save_bytes(exportable_save()), "policy.pth", 0xFFFFFFF0)),
        _file("sb3_member_understating_its_size", "sb3", zip_trick, ".zip",
              lambda: _with_sizes(_deflated(dict(exportable_save(), data=exportable_save()["data"] + b" " * MiB)),
                                  "data", 100)),
        _file("sb3_deflate_bomb", "sb3", zip_trick, ".zip",
              lambda: _deflated(dict(exportable_save(), **{"system_info.txt.bak": b"\0" * (80 * MiB)}))),
        _file("sb3_data_deflate_bomb", "sb3", zip_trick, ".zip",
              lambda: _deflated(dict(exportable_save(), data=exportable_save()["data"] + b" " * (65 * MiB)))),
        _file("sb3_truncated_save", "sb3", zip_trick, ".zip", lambda: _first_half(save_bytes(exportable_save()))),
    ]


def _vecnormalize(**changes: Any) -> Callable[[], bytes]:
    """A VecNormalize pickle of Box(4) statistics, with `changes` to its state."""
    def content() -> bytes:
        state = {"norm_obs": True, "obs_rms": sb3_running_mean_std(4), "epsilon": 1e-8, "clip_obs": 10.0}
        state.update(changes)
        return dumps(NewObj(VEC_NORMALIZE, state))
    return content


def _running_mean_std_with(**state: Any) -> NewObj:
    running = sb3_running_mean_std(4)
    return NewObj(running.cls, dict(running.state, **state))


def sb3_statistics_inputs() -> List[HostileFile]:
    """Hostile vecnormalize.pkl files, given to `sbif export` of the clean SB3 save with `--vecnormalize`."""
    code = "code in SB3's vecnormalize.pkl (issue #21)"
    huge = "memory: a huge RunningMeanStd in SB3's vecnormalize.pkl (issues #18, #21)"
    numbers = "statistics SB3 cannot have written (issue #21)"

    def code_file(directory: str) -> str:
        return _write(os.path.join(directory, "sb3_vecnormalize_code.pkl"),
                      dumps(_canary_payload(directory, "vecnormalize")))
    return [
        HostileFile("sb3_vecnormalize_code", "sb3_statistics", code, code_file),
        _file("sb3_vecnormalize_code_as_obs_rms", "sb3_statistics", code, ".pkl", _vecnormalize(
            obs_rms=Call(Global("builtins", "eval"), "1"))),
        _file("sb3_vecnormalize_mean_shape_bomb", "sb3_statistics", huge, ".pkl", _vecnormalize(
            obs_rms=_running_mean_std_with(mean=array_shape_bomb((10 ** 6, 10 ** 6))))),
        _file("sb3_vecnormalize_shared_references_as_mean", "sb3_statistics", huge, ".pkl", _vecnormalize(
            obs_rms=_running_mean_std_with(mean=shared_reference_list()))),
        _file("sb3_vecnormalize_codecs_encode_inflation", "sb3_statistics", huge, ".pkl", _vecnormalize(
            obs_rms=_running_mean_std_with(count=codecs_inflation(MiB, 2000)))),
        _file("sb3_vecnormalize_build_on_ordered_dict", "sb3_statistics", numbers, ".pkl", _vecnormalize(
            obs_rms=Build(Global("collections", "OrderedDict"), (None, {"__defaults__": ([("injected", 1.0)],)})))),
        _file("sb3_vecnormalize_clip_obs_negative", "sb3_statistics", numbers, ".pkl", _vecnormalize(clip_obs=-1.0)),
        _file("sb3_vecnormalize_epsilon_400_digits", "sb3_statistics", numbers, ".pkl",
              _vecnormalize(epsilon=10 ** 400)),
        _file("sb3_vecnormalize_statistics_of_5_for_4_observations", "sb3_statistics", numbers, ".pkl",
              _vecnormalize(obs_rms=sb3_running_mean_std(5))),
        _file("sb3_vecnormalize_dict_statistics_for_a_box", "sb3_statistics", numbers, ".pkl", vecnormalize_blob),
    ]


# -- zoo config.yml --------------------------------------------------------------------------------------------
def billion_laughs(levels: int = 9, width: int = 10) -> bytes:
    """A config whose `normalize` is an alias of `width`^`levels` leaves, in a few hundred bytes."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        lines.append("a{0}: &a{0} [{1}]".format(level, ", ".join(["*a{}".format(level - 1)] * width)))
    lines.append("normalize: *a{}".format(levels - 1))
    return ("\n".join(lines) + "\n").encode("ascii")


def _ordered_dict_yaml(pairs: str) -> bytes:
    return ("!!python/object/apply:collections.OrderedDict\n- " + pairs + "\n").encode("ascii")


def _zoo(name: str, attack: str, content: Callable[[], bytes]) -> HostileFile:
    """NAME/config.yml with valid statistics (obs_rms.pkl) beside it, as the zoo lays a model's folder out."""
    def make(directory: str) -> str:
        folder = os.path.join(directory, name)
        os.makedirs(folder, exist_ok=True)
        _write(os.path.join(folder, "obs_rms.pkl"), dumps(running_mean_std((4,))))
        return _write(os.path.join(folder, "config.yml"), content())
    return HostileFile(name, "zoo_config", attack, make)


def zoo_config_inputs() -> List[HostileFile]:
    budget = "memory: alias expansion in an error message (issue #18, item 2)"
    internal = "internal error instead of a clear one (issue #18, item 4)"
    return [
        _zoo("billion_laughs", budget, billion_laughs),
        _zoo("billion_laughs_as_key", budget,
              lambda: billion_laughs().replace(b"normalize: *a8", b"? *a8\n: 1")),
        _zoo("config_not_utf8", internal, lambda: b"normalize: true\npolicy: \xff\xfeMlp\n"),
        _zoo("ordered_dict_int_key", internal, lambda: _ordered_dict_yaml("- [1, true]")),
        _zoo("ordered_dict_unhashable_key", internal,
              lambda: _ordered_dict_yaml("- [[normalize, x], true]")),
        _zoo("ordered_dict_not_pairs", internal,
              lambda: _ordered_dict_yaml("- [normalize, true, extra]")),
        _zoo("lists_50k_deep", internal,
              lambda: b"normalize: " + b"[" * 50000 + b"]" * 50000 + b"\n"),
        _zoo("mappings_50k_deep", internal,
              lambda: b"normalize: " + b"{a: " * 50000 + b"1" + b"}" * 50000 + b"\n"),
        _zoo("clip_obs_4000_digits", internal,
              lambda: b"normalize: \"{'clip_obs': " + b"7" * 4000 + b"}\"\n"),
        _zoo("clip_obs_4000_digit_float", internal,
              lambda: b"normalize: \"{'clip_obs': 1" + b"0" * 4000 + b".5}\"\n"),
        _zoo("yaml_integer_4000_digits", internal,
              lambda: b"normalize: true\nn_envs: " + b"9" * 4000 + b"\n"),
        _zoo("normalize_kwargs_nested", internal,
              lambda: b"normalize: \"" + b"(" * 900 + b"1" + b")" * 900 + b"\"\n"),
        _zoo("frame_stack_huge", internal,
              lambda: b"normalize: true\nframe_stack: " + b"9" * 30 + b"\n"),
    ]


# -- .sbif files ---------------------------------------------------------------------------------------------------
class SbifParts(NamedTuple):
    """An .sbif file as its document and tensors, written without any validation (so it can be wrong)."""

    document: Dict[str, Any]
    tensors: "OrderedDict[str, np.ndarray]"

    def bytes(self) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "file.sbif")
            write_container(path, self.tensors, encode_document(self.document))
            with open(path, "rb") as handle:
                return handle.read()


def base_sbif(family: str = "mlp") -> SbifParts:
    """A valid file to start from: the reader-refusal corpus's base (PPO2, Box(3), Discrete(2)), or (`cnn`) the
    `conformance.models` CNN example on 36x36x1 uint8 images, where nature_cnn's last convolution outputs 1x1 (so
    that convolution's strides can be anything and the file stays statically valid)."""
    import copy

    from conformance.malformed.make_corpus import BASE_SPEC
    from conformance.models import EXAMPLES, build_model

    cnn = EXAMPLES["cnn"]
    spec = BASE_SPEC if family == "mlp" else dict(cnn, observation=dict(cnn["observation"], shape=[36, 36, 1]))
    model = build_model(spec)
    return SbifParts(copy.deepcopy(model.document), OrderedDict(model.tensors))


def reduced_to_one(name: str, rank: int, batched: bool) -> Tuple[List[Dict[str, Any]], str]:
    """Nodes that average a value of `rank` dimensions down to [B, 1] (`batched`) or [1], and the name of the
    result: reduce_mean keeps the rank (the last dimension becomes 1), so each step but the last squeezes it."""
    nodes = []
    while rank > (2 if batched else 1):
        nodes.append({"op": "reduce_mean", "inputs": [name], "outputs": [name + "/mean"]})
        nodes.append({"op": "squeeze", "inputs": [name + "/mean"], "outputs": [name + "/mean/squeezed"],
                      "attrs": {"axis": rank - 1}})
        name, rank = name + "/mean/squeezed", rank - 1
    nodes.append({"op": "reduce_mean", "inputs": [name], "outputs": [name + "/mean"]})
    return nodes, name + "/mean"


def _with_nodes(parts: SbifParts, tensors: Dict[str, np.ndarray], nodes: List[Dict[str, Any]],
                into_logits: str) -> SbifParts:
    """`parts` plus parameter `tensors` and graph `nodes`, whose output `into_logits` ([B, 1] or [1]) is added to
    the logits ([B, 2]), so every `predict` computes them."""
    document = parts.document
    for name, array in tensors.items():
        document["tensors"].append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                                    "origin": "parameter"})
    graph = document["graph"]
    index = next(i for i, node in enumerate(graph) if "logits" in node["outputs"])
    graph[index]["outputs"] = ["logits/before"]
    graph[index + 1:index + 1] = nodes + [{"op": "add", "inputs": ["logits/before", into_logits],
                                           "outputs": ["logits"]}]
    return SbifParts(document, OrderedDict(list(parts.tensors.items()) + list(tensors.items())))


def broadcast_bomb() -> bytes:
    """Three 1024-element tensors ([1024,1,1], [1,1024,1], [1,1,1024]) whose sum broadcasts to 2^30 float32
    (4 GiB) at any batch, in a file of about 17 KB."""
    side = 1024
    tensors = OrderedDict((name, np.ones(shape, np.float32)) for name, shape in
                          (("bomb/a", (side, 1, 1)), ("bomb/b", (1, side, 1)), ("bomb/c", (1, 1, side))))
    reduce, result = reduced_to_one("bomb/abc", 3, batched=False)
    nodes = [{"op": "add", "inputs": ["bomb/a", "bomb/b"], "outputs": ["bomb/ab"]},
             {"op": "add", "inputs": ["bomb/ab", "bomb/c"], "outputs": ["bomb/abc"]}] + reduce
    return _with_nodes(base_sbif(), tensors, nodes, result).bytes()


def one_hot_bomb(depth: int = 1 << 34) -> bytes:
    """The observation ([B, 3]) cast to int64 and one-hot encoded with `depth` 2^34: a [B, 3, 2^34] float32 value,
    192 GiB at batch 1."""
    reduce, result = reduced_to_one("bomb/one_hot", 3, batched=True)
    nodes = [{"op": "cast", "inputs": ["obs"], "outputs": ["bomb/index"], "attrs": {"to": "int64"}},
             {"op": "one_hot", "inputs": ["bomb/index"], "outputs": ["bomb/one_hot"], "attrs": {"depth": depth}}]
    return _with_nodes(base_sbif(), OrderedDict(), nodes + reduce, result).bytes()


def reshaped_constant(shape: List[Any]) -> bytes:
    """A float32 constant reshaped to `shape` (a boolean dimension, or dimensions whose product wraps int64) and
    averaged into the logits."""
    reduce, result = reduced_to_one("odd/reshaped", len(shape), batched=False)
    nodes = [{"op": "constant", "inputs": [], "outputs": ["odd/constant"], "attrs": {"value": 1.0,
                                                                                    "dtype": "float32"}},
             {"op": "reshape", "inputs": ["odd/constant"], "outputs": ["odd/reshaped"], "attrs": {"shape": shape}}]
    return _with_nodes(base_sbif(), OrderedDict(), nodes + reduce, result).bytes()


def conv2d_strides(strides: List[Any]) -> bytes:
    """The CNN base with its last convolution's strides replaced (its output stays 1x1 for any positive strides)."""
    parts = base_sbif("cnn")
    convolution = [node for node in parts.document["graph"] if node["op"] == "conv2d"][-1]
    convolution["attrs"]["strides"] = strides
    return parts.bytes()


def empty_tensors_header(count: int = 1500000) -> bytes:
    """A valid file whose safetensors header also lists `count` empty tensors (about 84 MB of header, under the
    100 MB limit): a reader that builds an object per entry before checking them against the document spends
    gigabytes and tens of seconds."""
    base = base_sbif().bytes()
    length = struct.unpack("<Q", base[:8])[0]
    header_text = base[8:8 + length].rstrip(b" ")
    data = base[8 + length:]
    entry = '"{}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}},'
    extra = "".join(entry.format(index) for index in range(count)).encode("ascii")
    header = b"{" + extra + header_text[1:]
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


#: One observation of the CNN base (36x36x1 uint8), inline JSON.
IMAGE_OBSERVATION = json.dumps(np.full((1, 36, 36, 1), 7, np.uint8).tolist(), separators=(",", ":"))


def sbif_inputs() -> List[HostileFile]:
    memory = "memory: a small file whose graph needs huge values (issue #18, item 2)"
    internal = "a file validate accepts but predict crashes on (issue #18, item 4)"
    return [
        _file("broadcast_4_gib", "sbif", memory, ".sbif", broadcast_bomb),
        _file("one_hot_192_gib", "sbif", memory, ".sbif", one_hot_bomb),
        _file("reshape_shape_holds_true", "sbif", internal, ".sbif", lambda: reshaped_constant([True])),
        _file("reshape_shape_holds_true_twice", "sbif", internal, ".sbif", lambda: reshaped_constant([True, True])),
        _file("reshape_count_wraps_int64", "sbif", internal, ".sbif",
              lambda: reshaped_constant([274177, 67280421310721])),
        _file("conv2d_strides_2_62", "sbif", internal, ".sbif", lambda: conv2d_strides([1 << 62, 1 << 62]),
              observation=IMAGE_OBSERVATION),
        _file("conv2d_strides_2_63", "sbif", internal, ".sbif", lambda: conv2d_strides([1 << 63, 1]),
              observation=IMAGE_OBSERVATION),
        _file("conv2d_strides_true", "sbif", internal, ".sbif", lambda: conv2d_strides([True, True]),
              observation=IMAGE_OBSERVATION),
        _file("empty_tensors_1_5_million", "sbif", "memory and time: a 84 MB header of 1.5 M empty tensors "
              "(issue #18, item 2)", ".sbif", empty_tensors_header, slow=True),
    ]


# -- --obs files -----------------------------------------------------------------------------------------------
def npy_bytes(descr: str, shape: Any, payload: bytes, fortran_order: bool = False) -> bytes:
    """A version 1.0 .npy with a hand-written header (so it can declare any shape)."""
    header = "{{'descr': {!r}, 'fortran_order': {}, 'shape': {!r}, }}".format(descr, fortran_order, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin-1") + payload


def saved_npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def obs_inputs() -> List[HostileFile]:
    size = "memory: an observation file declaring more than it holds (issue #18, item 2)"
    odd = "silently accepted non-numeric observations (issue #18, item 6)"
    internal = "internal error instead of a clear one (issue #18, item 4)"
    return [
        _file("npy_shape_4e9_by_4", "obs", size, ".npy", lambda: npy_bytes("<f4", (4000000000, 4), b"\0" * 64)),
        _file("npy_shape_2_63", "obs", size, ".npy", lambda: npy_bytes("<f4", (2 ** 63 - 1,), b"\0" * 64)),
        _file("npy_shape_negative", "obs", size, ".npy", lambda: npy_bytes("<f4", (-1, 3), b"\0" * 64)),
        _file("npy_header_truncated", "obs", size, ".npy", lambda: saved_npy(np.zeros((1, 3), np.float32))[:40]),
        _file("npy_complex", "obs", odd, ".npy", lambda: saved_npy(np.array([[1 + 2j, 0, 3j]], np.complex64))),
        _file("npy_datetime", "obs", odd, ".npy",
              lambda: saved_npy(np.array([["2020-01-01", "2021-01-01", "2022-01-01"]], "datetime64[D]"))),
        _file("npy_timedelta", "obs", odd, ".npy", lambda: saved_npy(np.array([[1, 2, 3]], "timedelta64[s]"))),
        _file("npy_structured", "obs", odd, ".npy",
              lambda: saved_npy(np.zeros(1, dtype=[("a", "<f4"), ("b", "<f4"), ("c", "<f4")]))),
        _file("npy_subarray_dtype", "obs", odd, ".npy", lambda: npy_bytes("('<f4', (3,))", (1,), b"\0" * 12)),
        _file("npy_object", "obs", odd, ".npy",
              lambda: saved_npy(np.array([[0.1, None, "x"]], dtype=object), allow_pickle=True)),
        _file("npy_strings", "obs", odd, ".npy", lambda: saved_npy(np.array([["0.1", "0.2", "0.3"]]))),
        _file("npy_bytes", "obs", odd, ".npy", lambda: saved_npy(np.array([[b"a", b"b", b"c"]]))),
        _file("json_integer_4000_digits", "obs", internal, ".json",
              lambda: b"[[" + b"9" * 4000 + b", 0.0, 0.0]]"),
        _file("json_integer_300_digits", "obs", internal, ".json", lambda: b"[[" + b"9" * 300 + b", 0.0, 0.0]]"),
        _file("json_nested_100k", "obs", internal, ".json", lambda: b"[" * 100000 + b"]" * 100000),
        _file("json_nan", "obs", odd, ".json", lambda: b"[[NaN, 0.0, 0.0]]"),
        _file("json_infinity", "obs", odd, ".json", lambda: b"[[-Infinity, 0.0, 0.0]]"),
        _file("json_number_beyond_double", "obs", odd, ".json", lambda: b"[[1e400, 0.0, 0.0]]"),
        _file("json_not_utf8", "obs", internal, ".json", lambda: b"[[0.5, 0.0, \xff\xfe]]"),
        _file("json_strings", "obs", odd, ".json", lambda: b'[["0.1", "0.2", "0.3"]]'),
        _file("json_ragged", "obs", odd, ".json", lambda: b"[[0.1, 0.2, 0.3], [0.1]]"),
        _file("json_object", "obs", odd, ".json", lambda: b'{"obs": [0.1, 0.2, 0.3]}'),
        _file("json_duplicate_keys", "obs", odd, ".json", lambda: b'{"a": [0.1, 0.2, 0.3], "a": [1, 2, 3]}'),
    ]


# -- protocol lines ----------------------------------------------------------------------------------------------
SHUTDOWN = b'{"type":"shutdown"}\n'


def _stream(name: str, attack: str, parts: List[bytes], slow: bool = False) -> HostileStream:
    """A stream of `parts` then a shutdown request (a server that survived the parts answers `bye`)."""
    return HostileStream(name, attack, lambda: iter(list(parts) + [SHUTDOWN]),
                         sum(len(part) for part in parts) + len(SHUTDOWN), slow)


def long_line(total: int, chunk: int = 4 * MiB, newline: bool = False) -> HostileStream:
    """A request line of `total` bytes (a load request whose model name never ends), produced chunk by chunk."""
    start = b'{"type":"load","id":1,"model":"'

    def chunks() -> Iterator[bytes]:
        yield start
        remaining = total - len(start)
        block = b"a" * chunk
        while remaining > 0:
            yield block[:remaining]
            remaining -= chunk
        if newline:
            yield b'"}\n'
            yield SHUTDOWN

    name = "line_{}_mib{}".format(total // MiB, "" if newline else "_no_newline")
    return HostileStream(name, "memory: a request line with no end (issue #18, item 2)", chunks,
                         total + (len(SHUTDOWN) + 3 if newline else 0), slow=total >= 64 * MiB)


def protocol_streams() -> List[HostileStream]:
    internal = "a server crash instead of an errored answer (issue #18, item 4)"
    deep = b"[" * 1000000 + b"]" * 1000000 + b"\n"
    return [
        long_line(GiB),
        long_line(300 * MiB, newline=True),
        long_line(8 * MiB, newline=True),
        _stream("json_nested_1m", internal, [deep]),
        _stream("json_nested_100k_in_request", internal,
                [b'{"type":"op","id":2,"op":"add","inputs":' + b"[" * 100000 + b"]" * 100000 + b"}\n"]),
        _stream("json_integer_5000_digits", internal, [b'{"type":"load","id":' + b"7" * 5000 + b',"model":"x"}\n']),
        _stream("json_number_1e400", internal, [b'{"type":"load","id":1e400,"model":"x"}\n']),
        _stream("json_nan_id", internal, [b'{"type":"load","id":NaN,"model":"x"}\n']),
        _stream("tensor_shape_2_62", internal,
                [b'{"type":"op","id":3,"op":"add","inputs":[{"dtype":"float32","shape":[4611686018427387904,'
                 b'4611686018427387904],"data":[]},{"dtype":"float32","shape":[1],"data":[1]}]}\n']),
        _stream("tensor_float_digits", internal,
                [b'{"type":"op","id":4,"op":"neg","inputs":[{"dtype":"float32","shape":[1],"data":[1'
                 + b"0" * 5000 + b']}]}\n']),
        _stream("not_utf8", internal, [b'{"type":"load","id":5,"model":"\xff\xfe"}\n']),
        _stream("not_an_object", internal, [b'[1, 2, 3]\n', b'"hello"\n', b'null\n']),
        _stream("duplicate_keys", internal, [b'{"type":"load","type":"run","id":6,"model":"x"}\n']),
        _stream("op_n_outputs_huge", internal,
                [b'{"type":"op","id":7,"op":"split","n_outputs":' + b"9" * 30 + b',"inputs":[]}\n']),
        _stream("op_attrs_bomb", internal,
                [b'{"type":"op","id":8,"op":"one_hot","attrs":{"depth":68719476736},"inputs":[{"dtype":"int64",'
                 b'"shape":[1],"data":[0]}]}\n']),
    ]


def hostile_files() -> List[HostileFile]:
    """Every hostile input file, of every kind but protocol streams."""
    return (sb2_inputs() + statistics_inputs() + sb3_inputs() + sb3_statistics_inputs() + zoo_config_inputs()
            + sbif_inputs() + obs_inputs())


def hostile_streams() -> List[HostileStream]:
    return protocol_streams()


# -- running a command under a memory and time budget ----------------------------------------------------------
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
C_BUILD = os.path.join(ROOT, "runtimes", "c", "build")
#: Modules the CLI and the protocol server import lazily, imported before the budget is set: the budget is for
#: what an input costs, not for mapping the interpreter's own code (shared libraries take address space).
PRELOADED = ("numpy", "yaml", "sbif.cli", "sbif.errors", "sbif.export", "sbif.export.exporter", "sbif.export.safe",
             "sbif.export.safe_pickle", "sbif.export.live", "sbif.export.her", "sbif.export.zoo_config",
             "sbif.export.normalization", "sbif.export.sb3.safe", "sbif.export.sb3.build", "sbif.export.sb3.statistics",
             "sbif.export.sb3.vecnormalize", "sbif.format", "sbif.runtime", "conformance.cli", "conformance.protocol",
             "conformance.adapters.sbif_numpy")


class Outcome(NamedTuple):
    """How a command ended: its exit status (negative: killed by that signal; None: still running at the time
    bound, then killed), its output, and for Python commands the address space it started from (after imports)
    and the most it reached (VmPeak), in bytes."""

    returncode: Any
    stdout: bytes
    stderr: bytes
    seconds: float
    baseline: int = 0
    peak: int = 0


def budgeted_child() -> None:
    """The child of `run_budgeted` for `sbif ...` and `python ...` commands: import everything, read this process's
    address space (VmSize), limit it (RLIMIT_AS) to that plus the budget, then run the command's main in-process
    and report the baseline and VmPeak on the file descriptor named by SBIF_BUDGET_REPORT."""
    import atexit
    import importlib
    import resource
    import sys

    argv, budget = json.loads(sys.argv[1]), int(sys.argv[2])
    for module in PRELOADED:
        importlib.import_module(module)
    from sbif import cli

    cli.build_parser()
    baseline = _vm_status()["VmSize"]
    report = os.fdopen(int(os.environ["SBIF_BUDGET_REPORT"]), "w")
    atexit.register(lambda: report.write(json.dumps({"baseline": baseline, "peak": _vm_status()["VmPeak"]})))
    resource.setrlimit(resource.RLIMIT_AS, (baseline + budget, baseline + budget))
    if argv[0] == "sbif":
        sys.exit(cli.main(argv[1:]))
    from conformance.adapters import sbif_numpy

    sys.exit(sbif_numpy.main([]))


def _vm_status(pid: Any = "self") -> Dict[str, int]:
    """VmSize, VmPeak (and the other Vm* lines) of a process, in bytes."""
    values = {}
    with open("/proc/{}/status".format(pid)) as status:
        for line in status:
            if line.startswith("Vm"):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0]) * 1024
    return values


def c_baseline() -> int:
    """The address space of the idle C protocol server (libc, its code, stdio buffers), measured: the C
    executables' budgets are set on top of it."""
    import subprocess
    import time

    process = subprocess.Popen([os.path.join(C_BUILD, "sbif-protocol")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    try:
        process.stdin.write(b'{"type":"hello"}\n')
        process.stdin.flush()
        process.stdout.readline()
        time.sleep(0.05)
        return _vm_status(process.pid)["VmSize"]
    finally:
        process.stdin.close()
        process.wait()


def run_budgeted(argv: List[str], budget: int, timeout: float, stdin: Any = None,
                 c_base: int = 0) -> Outcome:
    """Run `argv` (`sbif ...`: the CLI's main; `python -m conformance.adapters.sbif_numpy`: the protocol server;
    `sbif-check`/`sbif-protocol`: the C executables, whose address space is limited to `c_base` + `budget`) with
    at most `budget` bytes of address space beyond what it starts with and `timeout` seconds, feeding it the
    chunks of `stdin` (an iterable of bytes) if given."""
    import resource
    import subprocess
    import sys
    import threading
    import time

    environment = dict(os.environ, PYTHONPATH=ROOT, SBIF_BACKEND="numpy")
    environment.pop("SBIF_DEBUG", None)
    read_end = write_end = None
    if argv[0] in ("sbif-check", "sbif-protocol"):
        command = [os.path.join(C_BUILD, argv[0])] + argv[1:]
        limit = c_base + budget

        def limit_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        preexec, fds = limit_memory, ()
    else:
        read_end, write_end = os.pipe()
        environment["SBIF_BUDGET_REPORT"] = str(write_end)
        code = "from tests.attacks.hostile_inputs import budgeted_child; budgeted_child()"
        command = [sys.executable, "-c", code, json.dumps(argv if argv[0] == "sbif" else ["protocol"]), str(budget)]
        preexec, fds = None, (write_end,)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=environment,
                               preexec_fn=preexec, pass_fds=fds)
    if write_end is not None:
        os.close(write_end)
    collected: Dict[str, bytes] = {}

    def collect(name: str, stream: Any) -> None:
        collected[name] = stream.read()

    def feed() -> None:
        try:
            for chunk in stdin:
                process.stdin.write(chunk)
            process.stdin.close()
        except (BrokenPipeError, OSError, ValueError):  # the server stopped reading: its answer says why
            pass

    threads = [threading.Thread(target=collect, args=("stdout", process.stdout), daemon=True),
               threading.Thread(target=collect, args=("stderr", process.stderr), daemon=True)]
    if stdin is not None:
        threads.append(threading.Thread(target=feed, daemon=True))
    for thread in threads:
        thread.start()
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        returncode = None
    seconds = time.perf_counter() - start
    for thread in threads:
        thread.join(timeout=10)
    report: Dict[str, int] = {}
    if read_end is not None:
        with os.fdopen(read_end) as handle:
            text = handle.read()
        report = json.loads(text) if text else {}
    return Outcome(returncode, collected.get("stdout", b""), collected.get("stderr", b""), seconds,
                   report.get("baseline", 0), report.get("peak", 0))


if __name__ == "__main__":  # write every file input into a directory: python -m tests.attacks.hostile_inputs DIR
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "hostile"
    os.makedirs(target, exist_ok=True)
    for hostile in hostile_files():
        print(json.dumps({"name": hostile.name, "kind": hostile.kind, "path": hostile.make(target)}))
