"""Hostile SB3 saves and statistics: refused by `read_sb3_save` / `read_sb3_vecnormalize` with a one-line
ExportError, never run (a canary file the payload would create never appears), never a traceback.

Written with `sb2_like`'s pickler (globals by name, never imported) and a persistent-id writer for torch's
`data.pkl`; a real small SB3 save (made by SB3, when it is installed) is the base the tricks are applied to.
"""
import base64
import io
import json
import os
import pickle
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbif.errors import ExportError, SbifError
from sbif.export.sb3.save_file import read_sb3_save
from sbif.export.sb3.torch_storage import TENSOR_BYTES_PER_INPUT_BYTE
from sbif.export.sb3.vecnormalize import read_sb3_vecnormalize

from .sb2_like import Call, Global, NewObj, Writer, dumps, named_class
from .test_attacks import PAYLOAD_NAMES, assert_one_line, payloads
from .test_fuzz import EDITS, TRUNCATION, corrupt

torch = pytest.importorskip("torch")
sb3 = pytest.importorskip("stable_baselines3")

FLOAT_STORAGE = Global("torch", "FloatStorage")
REBUILD_TENSOR = Global("torch._utils", "_rebuild_tensor_v2")
ORDERED_DICT = Global("collections", "OrderedDict")


class StorageId(object):
    """A persistent id torch writes for a storage: ('storage', type, key, location, numel)."""

    def __init__(self, key, numel, storage_type=FLOAT_STORAGE):
        self.pid = ("storage", storage_type, key, "cpu", numel)


class TorchWriter(Writer):
    """sb2_like's pickler, writing StorageIds as BINPERSID as torch does."""

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, StorageId) else None


def torch_pickle(obj):
    stream = io.BytesIO()
    TorchWriter(stream, 2).dump(obj)
    return stream.getvalue()


def tensor(storage, offset, size, stride):
    return Call(REBUILD_TENSOR, storage, offset, size, stride, False, Call(ORDERED_DICT))


def pth(tree, storages, byteorder=b"little"):
    """A torch zip-format file: `archive/data.pkl` pickling `tree`, `archive/data/<key>` for each storage."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("archive/data.pkl", tree if isinstance(tree, bytes) else torch_pickle(tree))
        archive.writestr("archive/byteorder", byteorder)
        for key, content in storages.items():
            archive.writestr("archive/data/" + key, content)
        archive.writestr("archive/version", b"3\n")
    return stream.getvalue()


@pytest.fixture(scope="module")
def real_save(tmp_path_factory):
    """The members of a real, small PPO save, made by SB3."""
    gym = pytest.importorskip("gymnasium")
    path = str(tmp_path_factory.mktemp("sb3") / "ppo.zip")
    sb3.PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=8, batch_size=8, device="cpu",
            policy_kwargs=dict(net_arch=[4])).save(path)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_save(directory, members, name="attack.zip"):
    path = os.path.join(str(directory), name)
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return path


def with_data(members, **entries):
    """The members with `data` entries replaced (a value of bytes becomes a `:serialized:` pickle)."""
    data = json.loads(members["data"])
    for key, value in entries.items():
        data[key] = {":type:": "<class 'object'>",
                     ":serialized:": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value
    return dict(members, data=json.dumps(data).encode("utf-8"))


def refused(path, *fragments, reader=read_sb3_save):
    with pytest.raises(ExportError) as caught:
        reader(path)
    message = str(caught.value)
    assert_one_line(message)
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- code in a pickle -------------------------------------------------------------------------------------------
SB3_CARRIERS = ("policy_kwargs", "observation_space", "action_space", "policy_class", "policy.pth", "legacy policy.pth",
                "pytorch_variables.pth", "vecnormalize.pkl")
TORCH_CARRIERS = ("policy.pth", "legacy policy.pth", "pytorch_variables.pth")
#: torch's dialect names no class at all: the outer global of these payloads is refused before the one they carry.
TORCH_FIRST_REFUSAL = {"copyreg with a real class": "copyreg._reconstructor",
                       "nested reduce": "stable_baselines3.common.policies.ActorCriticPolicy"}


def sb3_payloads(canary):
    """test_attacks' payloads, with the nested one wrapped in an SB3 class (SB2's are refused here first)."""
    cases = payloads(canary)
    cases["nested reduce"] = (Call(Global("stable_baselines3.common.policies", "ActorCriticPolicy"),
                                   Call(Global("os", "system"), "touch " + canary)), "os.system")
    return cases


def carry(payload, carrier, members, directory):
    """A file holding `payload` where SB3 would put a pickle."""
    if carrier == "vecnormalize.pkl":
        path = os.path.join(str(directory), "vecnormalize.pkl")
        with open(path, "wb") as handle:
            handle.write(dumps(payload))
        return path
    if carrier in ("policy.pth", "pytorch_variables.pth"):
        return write_save(directory, dict(members, **{carrier: pth(payload, {})}))
    if carrier == "legacy policy.pth":
        legacy = b"".join(pickle.dumps(value, 2) for value in (0x1950a86a20f9469cfc6c, 1001, {"little_endian": True}))
        return write_save(directory, dict(members, **{"policy.pth": legacy + torch_pickle(payload)}))
    return write_save(directory, with_data(members, **{carrier: dumps(payload, 5)}))


@pytest.mark.parametrize("carrier", SB3_CARRIERS)
@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_code_payload_is_refused_and_never_runs(name, carrier, real_save, tmp_path):
    canary = str(tmp_path / "canary")
    payload, global_name = sb3_payloads(canary)[name]
    path = carry(payload, carrier, real_save, tmp_path)
    reader = read_sb3_vecnormalize if carrier == "vecnormalize.pkl" else read_sb3_save
    if carrier in TORCH_CARRIERS:
        global_name = TORCH_FIRST_REFUSAL.get(name, global_name)
    message = refused(path, global_name, "refusing to load the global", reader=reader)
    assert not os.path.exists(canary), message


def test_entries_other_than_the_four_are_never_unpickled(real_save, tmp_path):
    """Schedules are functions pickled by value: SB3 unpickles them, this reader never does."""
    canary = str(tmp_path / "canary")
    payload = dumps(payloads(canary)["os.system"][0], 5)
    save = read_sb3_save(write_save(tmp_path, with_data(real_save, lr_schedule=payload, clip_range=payload)))
    assert save.data["lr_schedule"][":serialized:"] == base64.b64encode(payload).decode("ascii")
    assert not os.path.exists(canary)


def test_the_payloads_run_with_torch_load(tmp_path):
    """The .pth carrier's bytes do run code with torch's own unpickler (weights_only=False)."""
    canary = str(tmp_path / "canary")
    torch.load(io.BytesIO(pth(payloads(canary)["os.system"][0], {})), weights_only=False)
    assert os.path.exists(canary)


# -- storages and tensors ---------------------------------------------------------------------------------------
def state_dict_file(directory, real_save, tree, storages, **options):
    return write_save(directory, dict(real_save, **{"policy.pth": pth(tree, storages, **options)}))


def test_a_storage_bomb_is_refused_before_allocating(real_save, tmp_path):
    tree = {"w": tensor(StorageId("0", 2 ** 60), 0, (2 ** 30, 2 ** 30), (2 ** 30, 1))}
    refused(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 16}), "storage '0'", "1152921504606846976",
            "holds 16 bytes")


def test_a_storage_shorter_than_its_tensor(real_save, tmp_path):
    tree = {"w": tensor(StorageId("0", 4), 0, (8,), (1,))}
    refused(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 16}), "'w'", "reaches element 7",
            "4-element storage")


def test_a_stride_reaching_outside_the_storage(real_save, tmp_path):
    tree = {"w": tensor(StorageId("0", 4), 1, (2, 2), (3, 1))}
    refused(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 16}), "'w'", "stride (3, 1)",
            "reaches element 5")


def test_overlapping_views_are_bounded_by_the_tensor_budget(real_save, tmp_path):
    """A stride of 0 views one float as a huge tensor: its copy is charged before it is made."""
    size = (TENSOR_BYTES_PER_INPUT_BYTE + 1) * (64 << 20) // 4
    tree = {"w": tensor(StorageId("0", 1), 0, (size,), (0,))}
    refused(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 4}), "tensors take more than")


def test_a_storage_record_missing_or_of_the_wrong_size(real_save, tmp_path):
    tree = {"w": tensor(StorageId("0", 4), 0, (4,), (1,))}
    refused(state_dict_file(tmp_path, real_save, tree, {}), "storage '0' has no record")
    refused(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 15}), "declares 4 elements", "holds 15 bytes")


@pytest.mark.parametrize("storage, fragment", [("BFloat16Storage", "bfloat16"), ("ComplexFloatStorage", "real"),
                                               ("UntypedStorage", "typed"), ("MadeUpStorage", "torch.MadeUpStorage")])
def test_unsupported_storage_types_are_refused_by_name(storage, fragment, real_save, tmp_path):
    tree = {"w": tensor(StorageId("0", 2, Global("torch", storage)), 0, (2,), (1,))}
    refused(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 8}), "torch." + storage, fragment)


def test_a_byte_order_torch_does_not_write(real_save, tmp_path):
    tree = {"w": tensor(StorageId("0", 1), 0, (1,), (1,))}
    refused(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 4}, byteorder=b"middle"), "byte order")


@pytest.mark.parametrize("bad, fragment", [
    (("storage", FLOAT_STORAGE, "0", "cpu", -1), "valid count"),
    (("storage", FLOAT_STORAGE, "../../etc/passwd", "cpu", 1), "invalid key"),
    (("storage", Global("builtins", "object"), "0", "cpu", 1), "builtins.object"),
    (("module", FLOAT_STORAGE, "0", "cpu", 1), "not a torch storage"),
    (("storage", FLOAT_STORAGE, "0", "cpu", True), "valid count"),
])
def test_malformed_persistent_ids(bad, fragment, real_save, tmp_path):
    storage = StorageId("0", 1)
    storage.pid = bad
    refused(state_dict_file(tmp_path, real_save, {"w": tensor(storage, 0, (1,), (1,))}, {"0": b"\x00" * 4}), fragment)


def test_persistent_ids_are_refused_outside_torch_files(real_save, tmp_path):
    payload = torch_pickle(StorageId("0", 1))
    refused(write_save(tmp_path, with_data(real_save, observation_space=payload)), "persistent ids", "BINPERSID")


def test_a_tensor_that_is_not_in_a_state_dict(real_save, tmp_path):
    refused(state_dict_file(tmp_path, real_save, [1, 2], {}), "not hold a dict of named tensors")
    refused(state_dict_file(tmp_path, real_save, {"w": 3}, {}), "'w' is not a tensor")


# -- spaces, kwargs, statistics ---------------------------------------------------------------------------------
TUPLE_SPACE = named_class("gymnasium.spaces.tuple", "Tuple")
DICT_SPACE = named_class("gymnasium.spaces.dict", "Dict")
TEXT_SPACE = named_class("gymnasium.spaces.text", "Text")


@pytest.mark.parametrize("space, fragment", [
    (NewObj(TUPLE_SPACE, {"spaces": ()}), "a 'Tuple' space is not supported"),
    (NewObj(TEXT_SPACE, {"max_length": 3}), "a 'Text' space is not supported"),
    (NewObj(DICT_SPACE, {"spaces": {"inner": NewObj(DICT_SPACE, {"spaces": {}})}}), "nested 'Dict' space"),
    (3, "not a gymnasium or gym space"),
])
def test_unsupported_spaces_are_refused_by_name(space, fragment, real_save, tmp_path):
    refused(write_save(tmp_path, with_data(real_save, observation_space=dumps(space, 5))), "observation_space", fragment)


def test_shared_references_in_policy_kwargs(real_save, tmp_path):
    """A 10-level list of 10 shared references (10^10 leaves) is refused when walked, in one short line."""
    nested = [1]
    for _ in range(10):
        nested = [nested] * 10
    refused(write_save(tmp_path, with_data(real_save, policy_kwargs=dumps({"net_arch": nested}, 5))),
            "policy_kwargs", "more than")


def test_hostile_vecnormalize_numbers(tmp_path):
    vec_normalize = named_class("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize")
    running = named_class("stable_baselines3.common.running_mean_std", "RunningMeanStd")
    import numpy as np

    statistics = NewObj(running, {"mean": np.zeros(3), "var": np.ones(3), "count": 1.0})
    path = str(tmp_path / "vecnormalize.pkl")
    for state, fragment in (({"norm_obs": True, "obs_rms": statistics, "epsilon": 1e-8, "clip_obs": -1.0}, "positive"),
                            ({"norm_obs": "yes", "obs_rms": statistics, "epsilon": 1e-8, "clip_obs": 1.0}, "boolean"),
                            ({"norm_obs": True, "obs_rms": statistics, "epsilon": 10 ** 400, "clip_obs": 1.0},
                             "epsilon"),
                            ({"norm_obs": True, "obs_rms": 5, "epsilon": 1e-8, "clip_obs": 1.0}, "RunningMeanStd")):
        with open(path, "wb") as handle:
            handle.write(dumps(NewObj(vec_normalize, state)))
        refused(path, fragment, reader=read_sb3_vecnormalize)


# -- zip tricks -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../data", "/etc/passwd", "C:\\Windows\\data", "a/../../b"])
def test_path_traversal_member_names(name, real_save, tmp_path):
    refused(write_save(tmp_path, dict(real_save, **{name: b"x"})), "path traversal")


def test_path_traversal_inside_policy_pth(real_save, tmp_path):
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("archive/data.pkl", torch_pickle({}))
        archive.writestr("../archive/data/0", b"")
    refused(write_save(tmp_path, dict(real_save, **{"policy.pth": stream.getvalue()})), "policy.pth", "path traversal")


def test_duplicate_member_names(real_save, tmp_path):
    path = write_save(tmp_path, real_save)
    with zipfile.ZipFile(path, "a") as archive:
        with pytest.warns(UserWarning):
            archive.writestr("policy.pth", real_save["policy.pth"])
    refused(path, "'policy.pth' twice")


def test_missing_members(real_save, tmp_path):
    for member in ("data", "policy.pth"):
        refused(write_save(tmp_path, {k: v for k, v in real_save.items() if k != member}), "no " + member + " member")


def test_zip_bomb_and_declared_sizes(real_save, tmp_path):
    bomb = str(tmp_path / "bomb.zip")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in real_save.items():
            archive.writestr(name, content)
        archive.writestr("system_info.txt.bak", b"\x00" * (80 << 20))
    refused(bomb, "zip bomb")
    data_bomb = str(tmp_path / "data_bomb.zip")
    with zipfile.ZipFile(data_bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in real_save.items():
            archive.writestr(name, content + (b" " * (65 << 20) if name == "data" else b""))
    refused(data_bomb, "'data' expands to")


def test_a_directory_listing_too_many_members(real_save, tmp_path):
    path = write_save(tmp_path, dict(real_save, **{"extra{}".format(i): b"" for i in range(40)}))
    refused(path, "lists", "an SB3 model archive has 32 at most")


def test_policy_pth_with_too_many_prefixes(real_save, tmp_path):
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("a/data.pkl", torch_pickle({}))
        archive.writestr("b/data.pkl", torch_pickle({}))
    refused(write_save(tmp_path, dict(real_save, **{"policy.pth": stream.getvalue()})), "has 2")


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04garbage", b"\x80\x02garbage"])
def test_garbage_members(content, real_save, tmp_path):
    for member in ("data", "policy.pth", "pytorch_variables.pth"):
        refused(write_save(tmp_path, dict(real_save, **{member: content})), member)


# -- random corruption ------------------------------------------------------------------------------------------
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(edits=EDITS, truncation=TRUNCATION, member=st.sampled_from(["", "data", "policy.pth"]))
def test_corrupted_saves_give_a_result_or_an_export_error(edits, truncation, member, real_save, tmp_path):
    """Byte edits of the whole file, or of one member inside a valid zip: a result or an SbifError, nothing else."""
    if member:
        path = write_save(tmp_path, dict(real_save, **{member: corrupt(real_save[member], edits, truncation)}),
                          "fuzz.zip")
    else:
        with open(write_save(tmp_path, real_save, "base.zip"), "rb") as handle:
            blob = corrupt(handle.read(), edits, truncation)
        path = str(tmp_path / "fuzz.zip")
        with open(path, "wb") as handle:
            handle.write(blob)
    try:
        read_sb3_save(path)
    except SbifError as exc:
        assert_one_line(str(exc))
