"""Hostile SB3 saves and statistics: refused by `read_sb3_save` / `read_sb3_vecnormalize` with a one-line
ExportError, never run (a canary file the payload would create never appears), never a traceback.

The saves are written by `sb3_like` (sb2_like's pickler, globals by name, never imported, and a persistent-id
writer for torch's `data.pkl`). The tricks are applied to two valid bases: a small save SB3 itself made (where SB3
is installed) and one written by hand without torch or SB3 (so the SB2 environment, Python 3.7, runs them too).
"""
import base64
import io
import os
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbif.errors import ExportError, SbifError
from sbif.export.exporter import export
from sbif.export.safe_pickle import loads
from sbif.export.sb3.dialect import SB3_DATA_DIALECT
from sbif.export.sb3.save_file import ClassRef, read_sb3_save
from sbif.export.sb3.torch_storage import TENSOR_BYTES_PER_INPUT_BYTE, torch_dialect
from sbif.export.sb3.vecnormalize import read_sb3_vecnormalize

from .sb2_like import Build, Call, Global, NewObj, dumps
from .sb3_like import (DICT_SPACE, FLOAT_STORAGE, ORDERED_DICT, RUNNING_MEAN_STD, TEXT_SPACE, TORCH_CARRIERS,
                       TUPLE_SPACE, VEC_NORMALIZE, StorageId, carried, handmade_save, legacy_pth, legacy_storage, pth,
                       tensor, torch_pickle, vecnormalize_blob, with_data, write_save)
from .test_attacks import BUILD_STATES, PAYLOAD_NAMES, assert_one_line, payloads
from .test_fuzz import EDITS, TRUNCATION, corrupt


def sb3_save(directory):
    """The members of a small PPO save made by SB3 itself."""
    gym = pytest.importorskip("gymnasium")
    sb3 = pytest.importorskip("stable_baselines3")
    path = os.path.join(str(directory), "ppo.zip")
    sb3.PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=8, batch_size=8, device="cpu",
            policy_kwargs=dict(net_arch=[4])).save(path)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module", params=["made by SB3", "handmade"])
def real_save(request, tmp_path_factory):
    """A valid save's members, which each test makes hostile."""
    return sb3_save(tmp_path_factory.mktemp("sb3")) if request.param == "made by SB3" else handmade_save()


def test_the_handmade_save_is_valid(tmp_path):
    save = read_sb3_save(write_save(tmp_path, handmade_save()))
    assert save.policy_class == ClassRef("stable_baselines3.common.policies", "ActorCriticPolicy")
    assert save.observation_space.high.tolist() == [1.0, 2.0, np.inf, 4.0] and save.action_space.n == 2
    assert save.state_dict["action_net.weight"].tolist() == [[0, 1], [2, 3]]
    assert save.state_dict["action_net.bias"].tolist() == [4, 5] and save.sb3_version == "2.9.2"


def refused_small(path, *fragments):
    """`refused`, with at most 8 MiB allocated on the way (what the bomb declares is never allocated)."""
    tracemalloc.start()
    try:
        refused(path, *fragments)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


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
    return write_save(directory, carried(payload, carrier, members))


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
    payload = dumps(payloads(canary)["os.system"][0], 4)
    save = read_sb3_save(write_save(tmp_path, with_data(real_save, lr_schedule=payload, clip_range=payload)))
    assert save.data["lr_schedule"][":serialized:"] == base64.b64encode(payload).decode("ascii")
    assert not os.path.exists(canary)


def test_the_payloads_run_with_torch_load(tmp_path):
    """The .pth carrier's bytes do run code with torch's own unpickler (weights_only=False)."""
    torch = pytest.importorskip("torch")
    canary = str(tmp_path / "canary")
    torch.load(io.BytesIO(pth(payloads(canary)["os.system"][0], {})), weights_only=False)
    assert os.path.exists(canary)


# -- storages and tensors ---------------------------------------------------------------------------------------
def state_dict_file(directory, real_save, tree, storages, **options):
    return write_save(directory, dict(real_save, **{"policy.pth": pth(tree, storages, **options)}))


def test_a_storage_bomb_is_refused_before_allocating(real_save, tmp_path):
    tree = {"w": tensor(StorageId("0", 2 ** 60), 0, (2 ** 30, 2 ** 30), (2 ** 30, 1))}
    refused_small(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 16}), "storage '0'",
                  "1152921504606846976", "holds 16 bytes")


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
    refused_small(state_dict_file(tmp_path, real_save, tree, {"0": b"\x00" * 4}), "tensors take more than")


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
@pytest.mark.parametrize("space, fragment", [
    (NewObj(TUPLE_SPACE, {"spaces": ()}), "a 'Tuple' space is not supported"),
    (NewObj(TEXT_SPACE, {"max_length": 3}), "a 'Text' space is not supported"),
    (NewObj(DICT_SPACE, {"spaces": {"inner": NewObj(DICT_SPACE, {"spaces": {}})}}), "nested 'Dict' space"),
    (3, "not a gymnasium or gym space"),
])
def test_unsupported_spaces_are_refused_by_name(space, fragment, real_save, tmp_path):
    refused(write_save(tmp_path, with_data(real_save, observation_space=dumps(space, 4))), "observation_space",
            fragment)


def test_shared_references_in_policy_kwargs(real_save, tmp_path):
    """A 10-level list of 10 shared references (10^10 leaves) is refused when walked, in one short line."""
    nested = [1]
    for _ in range(10):
        nested = [nested] * 10
    refused(write_save(tmp_path, with_data(real_save, policy_kwargs=dumps({"net_arch": nested}, 4))),
            "policy_kwargs", "more than")


def test_the_handmade_vecnormalize_is_valid(tmp_path):
    path = str(tmp_path / "vecnormalize.pkl")
    with open(path, "wb") as handle:
        handle.write(vecnormalize_blob())
    normalization = read_sb3_vecnormalize(path)
    assert normalization.norm_obs_keys == ["b", "a"] and normalization.obs_rms["a"].var.tolist() == [2.0] * 3


def test_hostile_vecnormalize_numbers(tmp_path):
    statistics = NewObj(RUNNING_MEAN_STD, {"mean": np.zeros(3), "var": np.ones(3), "count": 1.0})
    path = str(tmp_path / "vecnormalize.pkl")
    for state, fragment in (({"norm_obs": True, "obs_rms": statistics, "epsilon": 1e-8, "clip_obs": -1.0}, "positive"),
                            ({"norm_obs": "yes", "obs_rms": statistics, "epsilon": 1e-8, "clip_obs": 1.0}, "boolean"),
                            ({"norm_obs": True, "obs_rms": statistics, "epsilon": 10 ** 400, "clip_obs": 1.0},
                             "epsilon"),
                            ({"norm_obs": True, "obs_rms": 5, "epsilon": 1e-8, "clip_obs": 1.0}, "RunningMeanStd")):
        with open(path, "wb") as handle:
            handle.write(dumps(NewObj(VEC_NORMALIZE, state)))
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


@pytest.mark.parametrize("broken, fragment", [
    (lambda members: {k: v for k, v in members.items() if k != "policy.pth"}, "no policy.pth member"),
    (lambda members: dict(members, **{"extra{}".format(i): b"" for i in range(40)}), "an SB3 model archive has 32"),
])
def test_sbif_export_refuses_a_broken_sb3_save_as_an_sb3_save(broken, fragment, real_save, tmp_path):
    """`sbif export` tells an SB3 save by `data` and any member only SB3 writes: one missing policy.pth or listing too
    many members is refused for what SB3 saves hold, not as an SB2 archive with unexpected members."""
    message = refused(write_save(tmp_path, broken(real_save)), fragment, reader=lambda path: export(path))
    assert "SB2" not in message, message


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


# -- legacy torch files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("little_endian", [True, False])
def test_a_legacy_file_in_either_byte_order(little_endian, real_save, tmp_path):
    values = np.array([1.5, -2.0, 3.25], np.float32)
    raw = values.astype(values.dtype.newbyteorder("<" if little_endian else ">")).tobytes()
    tree = {"w": tensor(legacy_storage("k", 3), 1, (2,), (1,))}
    save = read_sb3_save(write_save(tmp_path, dict(real_save, **{"policy.pth": legacy_pth(
        tree, ["k"], {"k": (3, raw)}, little_endian)})))
    assert save.state_dict["w"].tolist() == [-2.0, 3.25] and save.state_dict["w"].dtype.isnative


@pytest.mark.parametrize("keys, storages, fragment", [
    (["k"], {"k": (4, b"\x00" * 8)}, "holds 8 bytes"),
    (["k"], {"k": (5, b"\x00" * 20)}, "holds 5 elements"),
    ([], {}, "lists storage keys"),
    (["k", "k"], {"k": (4, b"\x00" * 16)}, "lists storage keys"),
    (["k", "other"], {"k": (4, b"\x00" * 16), "other": (1, b"\x00" * 4)}, "lists storage keys"),
])
def test_legacy_storages_that_do_not_match(keys, storages, fragment, real_save, tmp_path):
    tree = {"w": tensor(legacy_storage("k", 4), 0, (4,), (1,))}
    refused(write_save(tmp_path, dict(real_save, **{"policy.pth": legacy_pth(tree, keys, storages)})), fragment)


def test_a_legacy_file_with_another_magic_number(real_save, tmp_path):
    blob = b"".join(pickle.dumps(value, 2) for value in (12345, 1001, {"little_endian": True})) + torch_pickle({})
    refused(write_save(tmp_path, dict(real_save, **{"policy.pth": blob})), "not a torch file")


# -- state shared between loads ---------------------------------------------------------------------------------
SB3_SHARED_GLOBALS = sorted(set(SB3_DATA_DIALECT.special) | set(torch_dialect().special))


def shared_state(objects):
    return [(dict(getattr(obj, "__dict__", {})), getattr(obj, "__defaults__", None),
             getattr(obj, "__kwdefaults__", None)) for obj in objects]


@pytest.mark.parametrize("state", sorted(BUILD_STATES))
@pytest.mark.parametrize("reference", SB3_SHARED_GLOBALS, ids=".".join)
def test_build_on_an_sb3_or_torch_global_is_refused(reference, state):
    """What SB3's and torch's dialects map globals to is shared by every load: BUILD on it is refused by name."""
    for dialect in (SB3_DATA_DIALECT, torch_dialect()):
        if reference not in dialect.special:
            continue
        before = shared_state(dialect.special.values())
        with pytest.raises(ExportError) as caught:
            loads(torch_pickle(Build(Global(*reference), BUILD_STATES[state])), "hostile.pkl", dialect=dialect)
        message = str(caught.value)
        assert "BUILD" in message and reference[1] in message, message
        assert_one_line(message)
        assert shared_state(dialect.special.values()) == before


def test_torch_metadata_is_dropped_and_nothing_else_is_set():
    """torch state dicts BUILD `_metadata` on their OrderedDict: accepted and dropped in torch's dialect only."""
    state_dict = loads(torch_pickle(Build(Call(ORDERED_DICT), {"_metadata": {"": {"version": 1}}})),
                       dialect=torch_dialect())
    assert state_dict == {} and not hasattr(state_dict, "_metadata")
    for state in ({"_metadata": {}, "update": 1}, (None, {"_metadata": {}}), {"__class__": 1}):
        with pytest.raises(ExportError, match="BUILD"):
            loads(torch_pickle(Build(Call(ORDERED_DICT), state)), dialect=torch_dialect())
    with pytest.raises(ExportError, match="BUILD"):
        loads(dumps(Build(Call(ORDERED_DICT), {"_metadata": {}})), dialect=SB3_DATA_DIALECT)


# -- pickle protocol 5 on every Python --------------------------------------------------------------------------
def test_protocol_5_reads_on_every_python():
    """SB3 writes protocol 5 (Python >= 3.8); Python 3.7's pickle stops at 4, and the reader still reads it. Its
    out-of-band buffers stay refused."""
    blob = b"\x80\x05\x96" + (3).to_bytes(8, "little") + b"abc."
    assert loads(blob, dialect=SB3_DATA_DIALECT) == bytearray(b"abc")
    with pytest.raises(ExportError, match="out-of-band|unknown opcode 0x97"):  # 3.7's pickletools lacks it
        loads(b"\x80\x05\x97.", dialect=SB3_DATA_DIALECT)
    with pytest.raises(ExportError, match="BYTEARRAY8"):
        loads(b"\x80\x05\x96" + (2 ** 60).to_bytes(8, "little") + b"abc.", dialect=SB3_DATA_DIALECT)
    with pytest.raises(ExportError, match="protocol: 6"):
        loads(b"\x80\x06N.", dialect=SB3_DATA_DIALECT)


@FUZZ
@given(edits=EDITS, truncation=TRUNCATION)
def test_corrupted_vecnormalize_gives_a_result_or_an_export_error(edits, truncation, tmp_path):
    path = str(tmp_path / "vecnormalize.pkl")
    with open(path, "wb") as handle:
        handle.write(corrupt(vecnormalize_blob(), edits, truncation))
    try:
        read_sb3_vecnormalize(path)
    except SbifError as exc:
        assert_one_line(str(exc))


@FUZZ
@given(edits=EDITS, truncation=TRUNCATION, little_endian=st.booleans())
def test_corrupted_legacy_torch_files_give_a_result_or_an_export_error(edits, truncation, little_endian, tmp_path):
    order = "<" if little_endian else ">"
    tree = {"w": tensor(legacy_storage("k", 3), 1, (2,), (1,)), "v": tensor(legacy_storage("k", 3), 0, (3,), (1,))}
    blob = legacy_pth(tree, ["k"], {"k": (3, np.arange(3, dtype=order + "f4").tobytes())}, little_endian)
    path = write_save(tmp_path, dict(handmade_save(), **{"policy.pth": corrupt(blob, edits, truncation)}))
    try:
        read_sb3_save(path)
    except SbifError as exc:
        assert_one_line(str(exc))
