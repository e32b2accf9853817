"""SB3 saves made without torch or SB3, and the places a hostile one hides a pickle, for the attack tests and the
hostile-input harness.

What `sb2_like` is for SB2: its pickler (`Global`s written by name, never imported) plus a persistent-id writer for
torch's `data.pkl`, so a test writes exactly what SB3 and torch put in a save (or what an attacker would) in either
environment, Python 3.7 with neither torch nor SB3 included.
"""
from __future__ import annotations

import base64
import io
import json
import os
import pickle
import zipfile
from typing import Any, Dict, List, Optional

import numpy as np

from .sb2_like import Call, Global, NewObj, Writer, dumps, named_class

FLOAT_STORAGE = Global("torch", "FloatStorage")
REBUILD_TENSOR = Global("torch._utils", "_rebuild_tensor_v2")
ORDERED_DICT = Global("collections", "OrderedDict")
BOX = named_class("gymnasium.spaces.box", "Box")
DISCRETE = named_class("gymnasium.spaces.discrete", "Discrete")
TUPLE_SPACE = named_class("gymnasium.spaces.tuple", "Tuple")
DICT_SPACE = named_class("gymnasium.spaces.dict", "Dict")
TEXT_SPACE = named_class("gymnasium.spaces.text", "Text")
ACTOR_CRITIC_POLICY = Global("stable_baselines3.common.policies", "ActorCriticPolicy")
VEC_NORMALIZE = named_class("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize")
RUNNING_MEAN_STD = named_class("stable_baselines3.common.running_mean_std", "RunningMeanStd")
#: torch's legacy (pre-1.6) files open with this magic number, then the protocol version and sys_info.
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
#: Where SB3 puts a pickle in a save, as `carried` names them: a `data` entry decoded by the reader, or a torch file.
DATA_CARRIERS = ("policy_kwargs", "observation_space", "action_space", "policy_class")
TORCH_CARRIERS = ("policy.pth", "legacy policy.pth", "pytorch_variables.pth")


class StorageId(object):
    """A persistent id torch writes for a storage: ('storage', type, key, location, numel)."""

    def __init__(self, key: str, numel: int, storage_type: Global = FLOAT_STORAGE) -> None:
        self.pid = ("storage", storage_type, key, "cpu", numel)


class TorchWriter(Writer):
    """sb2_like's pickler, writing StorageIds as BINPERSID as torch does."""

    def persistent_id(self, obj: Any) -> Optional[tuple]:
        return obj.pid if isinstance(obj, StorageId) else None


def torch_pickle(obj: Any) -> bytes:
    stream = io.BytesIO()
    TorchWriter(stream, 2).dump(obj)
    return stream.getvalue()


def tensor(storage: StorageId, offset: int, size: tuple, stride: tuple) -> Call:
    """torch's `_rebuild_tensor_v2` of a view of `storage`, as a state dict pickles each tensor."""
    return Call(REBUILD_TENSOR, storage, offset, size, stride, False, Call(ORDERED_DICT))


def pth(tree: Any, storages: Dict[str, bytes], byteorder: bytes = b"little") -> bytes:
    """A torch zip-format file: `archive/data.pkl` pickling `tree` (or those bytes), `archive/data/<key>` for each
    storage."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("archive/data.pkl", tree if isinstance(tree, bytes) else torch_pickle(tree))
        archive.writestr("archive/byteorder", byteorder)
        for key, content in storages.items():
            archive.writestr("archive/data/" + key, content)
        archive.writestr("archive/version", b"3\n")
    return stream.getvalue()


def legacy_header(little_endian: bool = True) -> bytes:
    """The three pickles a legacy torch file opens with: magic number, protocol version, sys_info."""
    return b"".join(pickle.dumps(value, 2) for value in (LEGACY_MAGIC, LEGACY_PROTOCOL,
                                                          {"little_endian": little_endian}))


def legacy_pth(tree: Any, keys: List[str], storages: Dict[str, tuple], little_endian: bool = True) -> bytes:
    """torch's legacy format: the header, the payload, the storage keys, then per key its int64 element count and
    bytes (`storages`: key -> (count written, raw bytes))."""
    order = "<" if little_endian else ">"
    body = b"".join(np.array(storages[key][0], order + "i8").tobytes() + storages[key][1] for key in keys)
    return legacy_header(little_endian) + torch_pickle(tree) + torch_pickle(keys) + body


def legacy_storage(key: str, numel: int) -> StorageId:
    storage = StorageId(key, numel)
    storage.pid = storage.pid + (None,)  # the legacy id's view_metadata
    return storage


def serialized(value: Any) -> Dict[str, str]:
    """SB3's `data_to_json` entry of a value JSON cannot hold (protocol 4: Python 3.7 writes no higher)."""
    return {":type:": "<class 'object'>", ":serialized:": base64.b64encode(dumps(value, 4)).decode("ascii")}


def handmade_save() -> Dict[str, bytes]:
    """The members of a valid SB3 PPO save written without torch or SB3: Box(4) observations, Discrete(2)
    actions, one 2x2 float32 weight and its bias in policy.pth (read by the reader, too few layers to export)."""
    low, high = np.full(4, -1.5, np.float32), np.array([1.0, 2.0, np.inf, 4.0], np.float32)
    data = {"policy_class": serialized(ACTOR_CRITIC_POLICY), "policy_kwargs": {"net_arch": [4]},
            "observation_space": serialized(NewObj(BOX, {"dtype": np.dtype(np.float32), "_shape": (4,), "low": low,
                                                         "high": high, "_np_random": None})),
            "action_space": serialized(NewObj(DISCRETE, {"n": np.int64(2), "start": np.int64(0), "_shape": (),
                                                         "dtype": np.dtype(np.int64), "_np_random": None})),
            "n_envs": 1, "learning_rate": 0.0003}
    weights = np.arange(6, dtype=np.float32)
    tree = {"action_net.weight": tensor(StorageId("0", 6), 0, (2, 2), (2, 1)),
            "action_net.bias": tensor(StorageId("0", 6), 4, (2,), (1,))}
    return {"data": json.dumps(data).encode("utf-8"), "policy.pth": pth(tree, {"0": weights.tobytes()}),
            "pytorch_variables.pth": pth({}, {}), "_stable_baselines3_version": b"2.9.2"}


#: PPO MlpPolicy with net_arch [4] on Box(4) observations and Discrete(2) actions: each parameter's shape, in the
#: order SB3's state dict lists them.
EXPORTABLE_PARAMETERS = (("mlp_extractor.policy_net.0.weight", (4, 4)), ("mlp_extractor.policy_net.0.bias", (4,)),
                         ("mlp_extractor.value_net.0.weight", (4, 4)), ("mlp_extractor.value_net.0.bias", (4,)),
                         ("action_net.weight", (2, 4)), ("action_net.bias", (2,)),
                         ("value_net.weight", (1, 4)), ("value_net.bias", (1,)))


def exportable_save() -> Dict[str, bytes]:
    """`handmade_save` as PPO, with every parameter its policy has (views of one storage): `sbif export` writes a
    file from it."""
    sizes = [int(np.prod(shape)) for _, shape in EXPORTABLE_PARAMETERS]
    offsets = np.cumsum([0] + sizes)
    storage = StorageId("0", int(offsets[-1]))
    tree = {}
    for (name, shape), offset in zip(EXPORTABLE_PARAMETERS, offsets):
        tree[name] = tensor(storage, int(offset), shape, (shape[1], 1) if len(shape) == 2 else (1,))
    weights = np.sin(np.arange(offsets[-1], dtype=np.float32))
    # clip_range: what tells PPO from A2C (a schedule SB3 pickles by value; the reader only sees it is there)
    return with_data(dict(handmade_save(), **{"policy.pth": pth(tree, {"0": weights.tobytes()})}),
                     clip_range=dumps(0.2, 4))


def save_bytes(members: Dict[str, bytes]) -> bytes:
    """A zip of `members`, in their order."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return stream.getvalue()


def write_save(directory: Any, members: Dict[str, bytes], name: str = "attack.zip") -> str:
    path = os.path.join(str(directory), name)
    with open(path, "wb") as handle:
        handle.write(save_bytes(members))
    return path


def with_data(members: Dict[str, bytes], **entries: Any) -> Dict[str, bytes]:
    """The members with `data` entries replaced (a value of bytes becomes a `:serialized:` pickle)."""
    data = json.loads(members["data"])
    for key, value in entries.items():
        data[key] = {":type:": "<class 'object'>",
                     ":serialized:": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value
    return dict(members, data=json.dumps(data).encode("utf-8"))


def carried(payload: Any, carrier: str, members: Dict[str, bytes]) -> Dict[str, bytes]:
    """The members with `payload` pickled where SB3 would put a pickle: a `data` entry (DATA_CARRIERS) or a torch
    file (TORCH_CARRIERS; "legacy policy.pth" is policy.pth in torch's legacy format)."""
    if carrier in ("policy.pth", "pytorch_variables.pth"):
        return dict(members, **{carrier: pth(payload, {})})
    if carrier == "legacy policy.pth":
        return dict(members, **{"policy.pth": legacy_header() + torch_pickle(payload)})
    if carrier in DATA_CARRIERS:
        return with_data(members, **{carrier: dumps(payload, 4)})
    raise ValueError("no such carrier in an SB3 save: " + carrier)


def running_mean_std(size: int) -> NewObj:
    """SB3's RunningMeanStd of `size` values."""
    return NewObj(RUNNING_MEAN_STD, {"mean": np.linspace(-1, 1, size), "var": np.full(size, 2.0), "count": 9.0})


def vecnormalize_blob() -> bytes:
    """A valid VecNormalize pickle of a Dict observation, old style (`obs_keys`, a set), written by hand."""
    statistics = {"b": running_mean_std(2), "a": running_mean_std(3)}
    return dumps(NewObj(VEC_NORMALIZE, {"norm_obs": True, "obs_rms": statistics, "epsilon": 1e-8, "clip_obs": 10.0,
                                        "obs_keys": Call(Global("builtins", "set"), ["a", "b"]),
                                        "ret_rms": running_mean_std(1)}), 2)
