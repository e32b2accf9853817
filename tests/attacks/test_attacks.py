"""Hostile and broken SB2 files against the safe loader: each is refused with an SbifError that says why,
nothing in it runs (a canary file the payload would create never appears), memory stays bounded (bombs
are refused from their declared sizes, before anything is allocated), what is checked is what is loaded, and
no file changes how a later one loads in the same process. README.md lists the classes of attack.

Runs in both environments; neither SB2 nor TensorFlow is needed (`sb2_like` writes the files by hand).
"""
import io
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from sbif.cli import main as sbif_main
from sbif.errors import ExportError, SbifError
from sbif.export import build_sbif
from sbif.export.safe import describe_safe_file
from sbif.export.safe_pickle import _SPECIAL, CallRecord, SafeUnpickler, Stub, loads

from .sb2_like import (Build, Call, Global, NewObj, PairsDict, doubling_tuple, dumps, make_model_files, model_data,
                       model_parameters, named_class, reused_calls, running_mean_std, shared_nesting, write_pkl,
                       write_zip)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1 << 20
#: Peak Python/numpy allocation allowed while refusing one bomb (tracemalloc sees bytes, lists and arrays).
BOMB_MEMORY_LIMIT = 32 * MiB
#: Longest refusal message: one line, with any value from the file previewed, never echoed whole.
MAX_MESSAGE = 600


def payloads(canary):
    """name -> (pickled object that would create `canary` if run, the global the refusal must name)."""
    touch = "touch " + canary
    python = "open({!r}, 'w').close()".format(canary)
    os_module = Call(Global("builtins", "__import__"), "os")
    return {
        "os.system": (Call(Global("os", "system"), touch), "os.system"),
        "posix.system": (Call(Global("posix", "system"), touch), "posix.system"),
        "nt.system": (Call(Global("nt", "system"), touch), "nt.system"),
        "builtins.eval": (Call(Global("builtins", "eval"), python), "builtins.eval"),
        "builtins.exec": (Call(Global("builtins", "exec"), python), "builtins.exec"),
        "python2 eval": (Call(Global("__builtin__", "eval"), python), "__builtin__.eval"),
        "subprocess.Popen": (Call(Global("subprocess", "Popen"), ["touch", canary]), "subprocess.Popen"),
        "getattr chain": (Call(Call(Global("builtins", "getattr"), os_module, "system"), touch), "builtins.getattr"),
        "nested reduce": (Call(Global("stable_baselines.common.policies", "MlpPolicy"),
                               Call(Global("os", "system"), touch)), "os.system"),
        "importlib": (Call(Call(Global("importlib", "import_module"), "os"), touch), "importlib.import_module"),
        "numpy.load": (Call(Global("numpy", "load"), canary, None, True), "numpy.load"),
        "copyreg with a real class": (Call(Global("copyreg", "_reconstructor"), Global("subprocess", "Popen"),
                                           Global("builtins", "object"), None), "subprocess.Popen"),
    }


PAYLOAD_NAMES = sorted(payloads("x"))
CARRIERS = ("whole pickle", "pkl observation_space", "pkl parameters", "zip data entry")


def carry(payload, carrier, directory):
    """A file holding `payload` where SB2 would put a pickled value."""
    path = os.path.join(str(directory), "attack")
    data = model_data()
    params = model_parameters(data)
    if carrier == "whole pickle":
        with open(path + ".pkl", "wb") as handle:
            handle.write(dumps(payload))
        return path + ".pkl"
    if carrier == "pkl observation_space":
        return write_pkl(path + ".pkl", dict(data, observation_space=payload), params)
    if carrier == "pkl parameters":
        return write_pkl(path + ".pkl", data, payload)
    return write_zip(path + ".zip", dict(data, learning_rate=payload), params)


def refused(path, *fragments):
    """describe_safe_file(path) raises an SbifError whose message holds every fragment; returns it."""
    with pytest.raises(SbifError) as caught:
        describe_safe_file(path)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_one_line(message):
    assert "\n" not in message.strip() and len(message) <= MAX_MESSAGE, message


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_code_payload_is_refused_and_never_runs(name, carrier, tmp_path):
    canary = str(tmp_path / "canary")
    payload, global_name = payloads(canary)[name]
    message = refused(carry(payload, carrier, tmp_path), global_name)
    assert "refusing to load the global" in message
    assert not os.path.exists(canary)


def test_the_payloads_are_real(tmp_path):
    """The same bytes do run code with Python's own unpickler: the refusals above are what stops them."""
    import pickle

    for name in ("os.system", "builtins.eval", "getattr chain"):
        canary = str(tmp_path / name.replace(" ", "_"))
        pickle.loads(dumps(payloads(canary)[name][0]))
        assert os.path.exists(canary), name


def test_allowed_names_stay_inert(tmp_path):
    """Calling stand-ins (a stub of cloudpickle's subimport, its result, an SB2 class) records, never runs:
    a file whose schedule is such a chain still exports, and nothing happens."""
    canary = str(tmp_path / "canary")
    chain = Call(Call(Global("cloudpickle.cloudpickle", "subimport"), "os"), "touch " + canary)
    schedule = Call(Global("cloudpickle.cloudpickle", "_fill_function"),
                    Call(Global("cloudpickle.cloudpickle", "_make_skel_func"), chain, 0, {}), {})
    data = model_data(learning_rate=schedule, cliprange=Call(Global("stable_baselines.common.policies",
                                                                     "MlpPolicy"), "touch " + canary))
    for path in (write_pkl(str(tmp_path / "m.pkl"), data, model_parameters(data)),
                 write_zip(str(tmp_path / "m.zip"), data, model_parameters(data))):
        build_sbif(describe_safe_file(path))
    assert not os.path.exists(canary)


def test_cli_refuses_and_names_the_global(tmp_path, capsys):
    canary = str(tmp_path / "canary")
    path = carry(payloads(canary)["os.system"][0], "pkl observation_space", tmp_path)
    assert sbif_main(["export", path, "-o", str(tmp_path / "out.sbif")]) == 1
    assert "os.system" in capsys.readouterr().err
    assert not os.path.exists(canary) and not os.path.exists(str(tmp_path / "out.sbif"))


# -- bombs ----------------------------------------------------------------------------------------------------
def array_state(shape, dtype, raw):
    """An ndarray pickled as numpy does: _reconstruct(ndarray, (0,), b'b') then BUILD with this state."""
    return Call(Global("numpy.core.multiarray", "_reconstruct"), Global("numpy", "ndarray"), (0,), b"b",
                state=(1, shape, np.dtype(dtype), False, raw))


def bounded(function):
    """Run `function`, return its result; fail if it allocated more than BOMB_MEMORY_LIMIT at its peak."""
    tracemalloc.start()
    try:
        return function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < BOMB_MEMORY_LIMIT, "peak allocation {} bytes".format(peak)


def refused_bounded(path, *fragments):
    return bounded(lambda: refused(path, *fragments))


def test_shape_bomb_in_a_pickle(tmp_path):
    """A 10^12-element array backed by 8 bytes: refused from its declared size, nothing allocated."""
    bomb = array_state((10 ** 6, 10 ** 6), "float64", b"\0" * 8)
    data = model_data()
    path = write_pkl(str(tmp_path / "bomb.pkl"), data, {"model/pi/w:0": bomb})
    refused_bounded(path, "declares shape (1000000, 1000000)", "8 bytes")


@pytest.mark.parametrize("shape", [(2 ** 40, 2 ** 40, 2 ** 40), (-1, 8), (2 ** 63,), tuple([1] * 40), "8"])
def test_malformed_array_shapes(shape, tmp_path):
    path = write_pkl(str(tmp_path / "bomb.pkl"), model_data(), {"x": array_state(shape, "float32", b"\0" * 32)})
    refused_bounded(path, "numpy array")


def test_object_arrays_are_refused(tmp_path):
    """Object arrays hold pickled objects, not bytes; even harmless ones are refused."""
    path = write_pkl(str(tmp_path / "objects.pkl"), model_data(), [np.array([1, "two"], dtype=object)])
    refused(path, "dtype")


def test_scalar_with_wrong_length(tmp_path):
    scalar = Call(Global("numpy.core.multiarray", "scalar"), np.dtype("float64"), b"\0" * 3)
    refused(write_pkl(str(tmp_path / "scalar.pkl"), model_data(gamma=scalar), None), "3 bytes")


def test_space_shape_bomb(tmp_path):
    """A Box whose shape is 10^10 elements with scalar bounds would be broadcast: refused first."""
    box = Call(Global("copyreg", "_reconstructor"), Global("gym.spaces.box", "Box"), Global("builtins", "object"),
               None, state={"low": np.zeros((), np.float32), "high": np.ones((), np.float32),
                            "shape": (10 ** 5, 10 ** 5), "dtype": np.dtype("float32")})
    data = model_data(observation_space=box)
    refused_bounded(write_pkl(str(tmp_path / "space.pkl"), data, model_parameters(model_data())),
                    "10000000000 elements")


def test_length_bomb_in_the_opcodes(tmp_path):
    """A BINBYTES8 declaring 2^62 bytes: pickletools reads what is there; nothing of that size is allocated."""
    path = str(tmp_path / "length.pkl")
    with open(path, "wb") as handle:
        handle.write(b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 62) + b"abc.")
    refused_bounded(path, "truncated or corrupt")


def test_deeply_nested_tuples(tmp_path):
    """A dict key nested 10^6 tuples deep crashes CPython's hash (C recursion): refused before unpickling."""
    path = str(tmp_path / "deep.pkl")
    with open(path, "wb") as handle:
        handle.write(b"\x80\x04}K\x01" + b"\x85" * 10 ** 6 + b"K\x02s.")
    refused_bounded(path, "nested more than")


def test_many_marks(tmp_path):
    path = str(tmp_path / "marks.pkl")
    with open(path, "wb") as handle:
        handle.write(b"\x80\x04" + b"(" * 100000 + b"N.")
    refused_bounded(path, "MARK")


def npy_bytes(descr, shape, payload):
    """A .npy member with a hand-written header (so it can lie about its shape)."""
    header = "{{'descr': {!r}, 'fortran_order': False, 'shape': {!r}, }}".format(descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin-1") + payload


def parameters_archive(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_shape_bomb_in_a_zip_parameter(tmp_path):
    data = model_data()
    params = model_parameters(data)
    inner = parameters_archive({name + ".npy": npy_bytes("<f4", (2 ** 40,), b"\0" * 16) for name in params})
    path = write_zip(str(tmp_path / "npy.zip"), data, params, {"parameters": inner})
    refused_bounded(path, "declares shape (1099511627776,)", "16 bytes")


def test_pickled_object_in_a_zip_parameter(tmp_path):
    data = model_data()
    params = model_parameters(data)
    buffer = io.BytesIO()
    np.save(buffer, np.array([None], dtype=object), allow_pickle=True)
    inner = parameters_archive({name + ".npy": buffer.getvalue() for name in params})
    refused(write_zip(str(tmp_path / "npy.zip"), data, params, {"parameters": inner}), "object")


def test_zip_bomb(tmp_path):
    """A `data` member of 100 MiB that deflates to ~100 KiB: refused from its declared size."""
    path = write_zip(str(tmp_path / "bomb.zip"), model_data(), model_parameters(model_data()))
    bomb = str(tmp_path / "bomb2.zip")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != "data":
                target.writestr(info.filename, source.read(info.filename))
        with target.open("data", "w") as stream:
            for _ in range(100):
                stream.write(b" " * MiB)
    assert os.path.getsize(bomb) < 2 * MiB
    refused_bounded(bomb, "data", "zip bomb")


def test_zip_expansion_ratio(tmp_path):
    """20 MiB of zeros deflated to 20 KiB, under every per-member cap: refused for its expansion ratio."""
    data = model_data()
    path = str(tmp_path / "ratio.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data", json_bytes(data))
        archive.writestr("parameter_list", b"[]")
        with archive.open("parameters", "w") as stream:
            for _ in range(20):
                stream.write(b"\0" * MiB)
    refused_bounded(path, "expand to", "zip bomb")


def test_zip_directory_bomb(tmp_path):
    """An end record announcing 60000 members in a 2 GiB directory: refused before zipfile reads it."""
    path = write_zip(str(tmp_path / "dir.zip"), model_data(), model_parameters(model_data()))
    blob = bytearray(open(path, "rb").read())
    end = blob.rfind(b"PK\x05\x06")
    blob[end + 8:end + 16] = struct.pack("<HHI", 60000, 60000, 0x7FFFFFFF)
    with open(path, "wb") as handle:
        handle.write(bytes(blob))
    refused_bounded(path, "lists 60000 members")


def json_bytes(data):
    return b"{" + ", ".join('"{}": 1'.format(key) for key in data).encode() + b"}"


def test_zip_member_larger_than_it_declares(tmp_path):
    """Central directory says 100 bytes, the deflate stream holds 10 MiB: never more than 100 bytes read."""
    bomb = str(tmp_path / "liar.zip")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data", b"{" + b" " * (10 * MiB) + b"}")
        archive.writestr("parameter_list", b"[]")
        archive.writestr("parameters", parameters_archive({}))
    blob = bytearray(open(bomb, "rb").read())
    size = struct.pack("<I", 10 * MiB + 2)
    for offset in _find_all(blob, size):
        blob[offset:offset + 4] = struct.pack("<I", 100)
    with open(bomb, "wb") as handle:
        handle.write(bytes(blob))
    refused_bounded(bomb, "zip archive")


def _find_all(blob, needle):
    found, start = [], 0
    while True:
        index = blob.find(needle, start)
        if index < 0:
            return found
        found.append(index)
        start = index + 1


def test_bombs_keep_the_process_small(tmp_path):
    """Max RSS of a fresh process refusing every bomb above stays near an idle interpreter's."""
    script = textwrap.dedent("""
        import os, resource, sys
        sys.path.insert(0, {root!r})
        from sbif.errors import SbifError
        from sbif.export.safe import describe_safe_file
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name in sorted(os.listdir({directory!r})):
            try:
                describe_safe_file(os.path.join({directory!r}, name))
            except SbifError:
                pass
            else:
                raise SystemExit("not refused: " + name)
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    bombs = tmp_path / "bombs"
    bombs.mkdir()
    write_pkl(str(bombs / "shape.pkl"), model_data(), [array_state((10 ** 6, 10 ** 6), "float64", b"\0" * 8)])
    with open(str(bombs / "length.pkl"), "wb") as handle:
        handle.write(b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 40) + b"abc.")
    data = model_data()
    params = model_parameters(data)
    write_zip(str(bombs / "npy.zip"), data, params, {"parameters": parameters_archive(
        {name + ".npy": npy_bytes("<f8", (2 ** 33,), b"") for name in params})})
    result = subprocess.run([sys.executable, "-c", script.format(root=ROOT, directory=str(bombs))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stderr
    before, after = (int(v) for v in result.stdout.split())
    assert (after - before) * 1024 < 64 * MiB, (before, after)  # ru_maxrss is in KiB on Linux


# -- archive structure ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../data", "../../etc/passwd", "/etc/passwd", "model/../../data", "..\\data",
                                  "C:\\Windows\\data", "C:/data"])
def test_path_traversal_member_names(name, tmp_path):
    data = model_data()
    path = write_zip(str(tmp_path / "traversal.zip"), data, model_parameters(data), {name: b"x"})
    refused(path, "path traversal")


def test_path_traversal_inside_the_parameters(tmp_path):
    data = model_data()
    params = model_parameters(data)
    inner = parameters_archive(dict({name + ".npy": npy_bytes("<f4", (1,), b"\0" * 4) for name in params},
                                    **{"../../evil.npy": b"x"}))
    refused(write_zip(str(tmp_path / "inner.zip"), data, params, {"parameters": inner}), "path traversal")


def test_unexpected_and_missing_members(tmp_path):
    data = model_data()
    params = model_parameters(data)
    refused(write_zip(str(tmp_path / "extra.zip"), data, params, {"evil.py": b"import os"}),
            "unexpected archive member 'evil.py'")
    path = str(tmp_path / "missing.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", b"{}")
    refused(path, "no parameters or parameter_list member")


def test_unsupported_compression_and_encryption(tmp_path):
    data = model_data()
    path = write_zip(str(tmp_path / "model.zip"), data, model_parameters(data))
    blob = bytearray(open(path, "rb").read())
    central = blob.rfind(b"PK\x01\x02")
    blob[central + 10:central + 12] = struct.pack("<H", zipfile.ZIP_BZIP2)
    with open(path, "wb") as handle:
        handle.write(bytes(blob))
    refused(path, "compression method 12")
    blob[central + 10:central + 12] = struct.pack("<H", 0)
    blob[central + 8:central + 10] = struct.pack("<H", 1)
    with open(path, "wb") as handle:
        handle.write(bytes(blob))
    refused(path, "encrypted")


# -- truncated and corrupt files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return make_model_files(tmp_path_factory.mktemp("generated"))


@pytest.mark.parametrize("kind", ["zip", "pkl", "pkl_list"])
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_files(kind, fraction, generated, tmp_path):
    blob = open(generated[kind], "rb").read()
    path = str(tmp_path / ("cut." + kind.split("_")[0]))
    with open(path, "wb") as handle:
        handle.write(blob[:int(len(blob) * fraction)])
    refused(path)


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04" + b"\xff" * 64, b"\x80\x04\x95" + b"\x00" * 40,
                                     bytes(range(256)) * 4, b"\x80\x05\x97.", b"(lp0\nI1\na."])
def test_garbage(content, tmp_path):
    path = str(tmp_path / "garbage.pkl")
    with open(path, "wb") as handle:
        handle.write(content)
    refused(path)


def test_not_sb2_data(tmp_path):
    """Valid pickles of the wrong thing: a clear message, not a crash."""
    for index, value in enumerate([None, [1, 2, 3], (1, 2), ({}, None), ({1: 2}, []), ("data", "params")]):
        path = write_pkl(str(tmp_path / "value{}.pkl".format(index)), *value) if isinstance(value, tuple) and \
            len(value) == 2 and isinstance(value[0], dict) else str(tmp_path / "value{}.pkl".format(index))
        if not os.path.exists(path):
            with open(path, "wb") as handle:
                handle.write(dumps(value))
        refused(path)


def test_missing_file_and_directory(tmp_path):
    refused(str(tmp_path / "absent.zip"), "no such file")
    refused(str(tmp_path), "no such file")


def test_safe_pickle_api_refuses_with_export_error():
    with pytest.raises(ExportError, match="os.system"):
        loads(dumps(Call(Global("os", "system"), "true")), "bytes")


# -- what is checked is what is loaded (issue #18, item 1) ----------------------------------------------------
def npz_members(params):
    """The members `np.savez(**params)` writes: NAME.npy -> .npy bytes, in order."""
    members = OrderedDict()
    for name, array in params.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        members[name + ".npy"] = buffer.getvalue()
    return members


def test_member_named_like_a_parameter_without_npy(tmp_path, capsys):
    """`model/pi/w:0` next to `model/pi/w:0.npy`: np.load's archive["model/pi/w:0"] prefers the member without
    .npy, so a check of the .npy member let other weights through (a silently different policy). Refused."""
    data = model_data()
    params = model_parameters(data)
    name = next(iter(params))
    members = npz_members(params)
    members[name] = npz_members({name: -params[name]})[name + ".npy"]
    path = write_zip(str(tmp_path / "ambiguous.zip"), data, params, {"parameters": parameters_archive(members)})
    assert_one_line(refused(path, repr(name), repr(name + ".npy"), "ambiguous"))
    assert sbif_main(["export", path, "-o", str(tmp_path / "out.sbif")]) == 1
    assert name in capsys.readouterr().err and not os.path.exists(str(tmp_path / "out.sbif"))


def test_shape_bomb_behind_an_ambiguous_name(tmp_path):
    """The same route skipped the shape check: the unchecked `NAME` declares 2^33 float64 (64 GiB) in 0 bytes."""
    data = model_data()
    params = model_parameters(data)
    name = next(iter(params))
    members = npz_members(params)
    members[name] = npy_bytes("<f8", (2 ** 33,), b"")
    path = write_zip(str(tmp_path / "bomb.zip"), data, params, {"parameters": parameters_archive(members)})
    refused_bounded(path, repr(name), "ambiguous")


def test_npy_member_shorter_than_its_header_declares(tmp_path):
    """A valid .npy header with 4 bytes of data missing: the size check is on the bytes that were read, the
    very bytes the array is then made of."""
    data = model_data()
    params = model_parameters(data)
    members = npz_members(params)
    name = next(iter(members))
    members[name] = members[name][:-4]
    path = write_zip(str(tmp_path / "short.zip"), data, params, {"parameters": parameters_archive(members)})
    assert_one_line(refused(path, repr(name), "declares shape", "the member holds"))


def archive_with_duplicate(members, duplicate, content):
    """A zip of `members` whose directory lists `duplicate` a second time (with `content`)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate name it is asked for
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, value in members.items():
                archive.writestr(name, value)
            archive.writestr(duplicate, content)
    return buffer.getvalue()


def test_duplicate_array_in_the_parameters(tmp_path):
    """Two `NAME.npy` entries in the parameters' directory (zipfile would read the last one): refused."""
    data = model_data()
    params = model_parameters(data)
    members = npz_members(params)
    name = next(iter(members))
    inner = archive_with_duplicate(members, name, npz_members({"x": np.zeros(3, np.float32)})["x.npy"])
    path = write_zip(str(tmp_path / "twice.zip"), data, params, {"parameters": inner})
    assert_one_line(refused(path, repr(name), "twice"))


def test_duplicate_member_of_the_archive(tmp_path):
    """A second `parameters` member in the SB2 archive itself: refused."""
    data = model_data()
    params = model_parameters(data)
    path = write_zip(str(tmp_path / "model.zip"), data, params)
    with zipfile.ZipFile(path) as archive:
        members = OrderedDict((name, archive.read(name)) for name in archive.namelist())
    twice = str(tmp_path / "twice.zip")
    with open(twice, "wb") as handle:
        handle.write(archive_with_duplicate(members, "parameters", parameters_archive({})))
    assert_one_line(refused(twice, "'parameters' twice"))


# -- one file cannot change how later files load (issue #18, item 3) -----------------------------------------
#: Every global the allowlist resolves to a shared function or class, and two it resolves to per-load objects.
SHARED_GLOBALS = sorted(_SPECIAL)
PER_LOAD_GLOBALS = [("stable_baselines.common.policies", "MlpPolicy"), ("cloudpickle.cloudpickle",
                                                                         "_make_skeleton_class")]
#: BUILD states: (None, attributes) makes Python's BUILD call setattr; a dict updates the object's __dict__.
BUILD_STATES = {"setattr": (None, {"__defaults__": ([("injected", 1.0)],), "__kwdefaults__": {"x": 1}}),
                "__dict__": {"sbif_module": "os", "sbif_name": "system", "__defaults__": (5,)}}


def shared_state():
    """Everything a pickle could change on the objects every load shares: their attributes and defaults."""
    shared = list(_SPECIAL.values()) + [Stub, CallRecord, SafeUnpickler.skeleton_class]
    return [(dict(vars(obj)), getattr(obj, "__defaults__", None), getattr(obj, "__kwdefaults__", None))
            for obj in shared]


CLEAN_VALUES = OrderedDict([("model/pi/w:0", 1.0), ("model/pi/b:0", 2.0)])


@pytest.mark.parametrize("state", sorted(BUILD_STATES))
@pytest.mark.parametrize("reference", SHARED_GLOBALS + PER_LOAD_GLOBALS, ids=".".join)
def test_build_on_an_allowed_global_is_refused(reference, state):
    """BUILD on what a global resolves to would set attributes on an object other loads share (the
    OrderedDict stand-in's __defaults__ then fill every later OrderedDict): refused, nothing changes."""
    before = shared_state()
    with pytest.raises(ExportError) as caught:
        loads(dumps([Build(Global(*reference), BUILD_STATES[state]), CLEAN_VALUES]), "hostile.pkl")
    message = str(caught.value)
    assert "BUILD" in message and reference[1] in message, message
    assert_one_line(message)
    assert shared_state() == before
    assert loads(dumps(CLEAN_VALUES)) == CLEAN_VALUES


@pytest.mark.parametrize("target", [Call(Global("collections", "OrderedDict")), [1, 2], {"a": 1},
                                    Call(Global("numpy.core.multiarray", "scalar"), np.dtype("float64"), b"\0" * 8),
                                    Call(Global("_codecs", "encode"), "raw", "latin1")],
                         ids=["OrderedDict", "list", "dict", "numpy scalar", "bytes"])
def test_build_on_plain_values_is_refused(target):
    """Only stand-in instances (arrays, dtypes, spaces, SB2 objects) take state; SB2 never BUILDs anything else."""
    with pytest.raises(ExportError) as caught:
        loads(dumps(Build(target, BUILD_STATES["setattr"])), "hostile.pkl")
    assert "BUILD" in str(caught.value)
    assert_one_line(str(caught.value))


def test_a_refused_pickle_leaves_later_loads_unchanged():
    clean = dumps([CLEAN_VALUES, Call(Global("collections", "OrderedDict"))])
    expected = loads(clean)
    assert expected == [CLEAN_VALUES, OrderedDict()]
    for state in BUILD_STATES.values():
        with pytest.raises(ExportError):
            loads(dumps(Build(Global("collections", "OrderedDict"), state)))
        assert loads(clean) == expected


def write_statistics(directory, name, count):
    """An obs_rms.pkl for model_data()'s Box(4) observations, with `count` as its (unused) count entry."""
    path = os.path.join(str(directory), name)
    with open(path, "wb") as handle:
        handle.write(dumps(running_mean_std((4,), count=count)))
    return path


@pytest.mark.parametrize("defaults", [([("model/injected:0", 1.0)],), (5,)], ids=["inject", "break"])
@pytest.mark.parametrize("option", ["--vecnormalize", "--zoo-config"])
def test_hostile_statistics_then_a_clean_export_in_one_process(option, defaults, tmp_path, capsys):
    """Statistics load before the model: a hostile obs_rms.pkl (valid, plus a BUILD on the OrderedDict
    stand-in) is refused, and the same process then exports the clean model and statistics byte for byte as
    before it (the model's parameters are an OrderedDict: they would have gained an entry, or failed)."""
    data = model_data()
    model = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data))
    clean, hostile = tmp_path / "clean", tmp_path / "hostile"
    hostile_build = Build(Global("collections", "OrderedDict"), (None, {"__defaults__": defaults}))
    for folder, count in ((clean, 1000.0), (hostile, hostile_build)):
        folder.mkdir()
        (folder / "config.yml").write_text("normalize: true\n")
        write_statistics(folder, "obs_rms.pkl", count)

    def export(folder, output):
        argument = str(folder / "config.yml") if option == "--zoo-config" else str(folder / "obs_rms.pkl")
        return sbif_main(["export", model, option, argument, "-o", str(tmp_path / output)])

    assert export(clean, "before.sbif") == 0
    capsys.readouterr()
    assert export(hostile, "hostile.sbif") == 1
    message = capsys.readouterr().err
    assert "BUILD" in message and "collections.OrderedDict" in message and str(hostile) in message, message
    assert_one_line(message)
    assert export(clean, "after.sbif") == 0
    with open(str(tmp_path / "before.sbif"), "rb") as before, open(str(tmp_path / "after.sbif"), "rb") as after:
        assert before.read() == after.read()


# -- memory bounded by the input (issue #18, item 2) ---------------------------------------------------------
KiB = 1 << 10
#: Values a pickle stores once and passes again and again to a callable the allowlist accepts: each call
#: builds its result anew (tens of MiB from a file of a few hundred KiB; the issue's 8 MB pickle built 1.65 GB).
INFLATIONS = {
    "_codecs.encode": lambda: reused_calls(Global("_codecs", "encode"), ("x" * (256 * KiB), "latin1"), 200),
    "OrderedDict": lambda: reused_calls(Global("collections", "OrderedDict"), ([(i, i) for i in range(20000)],), 25),
    "numpy _frombuffer": lambda: reused_calls(Global("numpy.core.numeric", "_frombuffer"),
                                              (b"\0" * MiB, np.dtype("float32"), (MiB // 4,), "C"), 40),
    "numpy array BUILD": lambda: reused_calls(Global("numpy.core.multiarray", "_reconstruct"),
                                              (Global("numpy", "ndarray"), (0,), b"b"), 40,
                                              state=(1, (MiB // 4,), np.dtype("float32"), False, b"\0" * MiB)),
    "stand-in arguments": lambda: reused_calls(Global("stable_baselines.common.policies", "MlpPolicy"),
                                               tuple(range(100000)), 40),
    "memo GETs into SETITEMS": lambda: PairsDict([(index, "shared value") for index in range(200000)]),
}
BUDGET_REFUSAL = "the pickle builds more than"


@pytest.mark.parametrize("kind", sorted(INFLATIONS))
def test_memoised_values_reused_are_refused_by_the_build_budget(kind, tmp_path):
    """The size of what is built is counted before it is built, against 2 x the pickle's bytes + 16 MiB."""
    data = model_data(learning_rate=INFLATIONS[kind]())
    path = write_pkl(str(tmp_path / "inflated.pkl"), data, model_parameters(data))
    assert_one_line(refused_bounded(path, BUDGET_REFUSAL, "values stored once and used again"))


def test_inflation_as_a_serialized_zip_value(tmp_path):
    """The `:serialized:` pickles of one `data` member share one budget: four entries of 9 MiB each (each under
    a pickle's own 16 MiB allowance) are refused together."""
    data = model_data(**{"entry{}".format(index): reused_calls(Global("_codecs", "encode"),
                                                               ("x" * (256 * KiB), "latin1"), 36)
                         for index in range(4)})
    path = write_zip(str(tmp_path / "inflated.zip"), data, model_parameters(data))
    assert_one_line(refused_bounded(path, "data[", BUDGET_REFUSAL))


def test_inflated_statistics_are_refused(tmp_path, capsys):
    """obs_rms.pkl goes through the same loader: its `count` inflated with `_codecs.encode` is refused."""
    data = model_data()
    model = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data))
    statistics = str(tmp_path / "obs_rms.pkl")
    with open(statistics, "wb") as handle:
        handle.write(dumps(running_mean_std((4,), count=INFLATIONS["_codecs.encode"]())))
    assert bounded(lambda: sbif_main(["export", model, "--vecnormalize", statistics, "-o",
                                      str(tmp_path / "out.sbif")])) == 1
    message = capsys.readouterr().err
    assert BUDGET_REFUSAL in message and statistics in message, message
    assert_one_line(message)


@pytest.mark.parametrize("protocol", [2, 4])
def test_real_files_stay_within_the_build_budget(protocol, tmp_path):
    """An SB2-like file whose parameters are most of its bytes (as in real files: protocol 2 builds each array
    twice, as bytes and as the array) builds under 2 x its size even without the fixed allowance. The zoo
    models are exported in tests/test_safe_loader.py and tests/live/test_zoo.py."""
    from sbif.export.safe_pickle import BUILT_BYTES_PER_INPUT_BYTE, SafeUnpickler

    data = model_data(policy_kwargs={"net_arch": [256, 256]})
    path = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data, net_arch=[256, 256]), protocol)
    blob = open(path, "rb").read()
    unpickler = SafeUnpickler(blob)
    unpickler.load()
    assert len(blob) < unpickler.budget.built <= BUILT_BYTES_PER_INPUT_BYTE * len(blob)
    assert build_sbif(describe_safe_file(path)).parameter_count() > 60000


def test_doubly_compressed_parameters(tmp_path):
    """np.savez members deflated inside a `parameters` member that is deflated too: the ratios multiplied
    (100 x 100). The parameters' members are now bounded by the SB2 file's size, not the inner archive's."""
    data = model_data()
    params = model_parameters(data)
    name = next(iter(params))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as inner:
        for member, content in npz_members(params).items():
            inner.writestr(member, content)
        # stored zeros make the inner archive large, so that it allowed 100 x more; the outer deflate hides them
        inner.writestr("padding.npy", b"\0" * MiB, compress_type=zipfile.ZIP_STORED)
        with inner.open(name + "x.npy", "w") as stream:
            stream.write(npy_bytes("<f4", (12 * MiB,), b""))
            for _ in range(48):
                stream.write(b"\0" * MiB)
    assert len(buffer.getvalue()) > MiB
    path = str(tmp_path / "nested.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data", json_bytes(data))
        archive.writestr("parameter_list", json_bytes_list([name + "x"]))
        archive.writestr("parameters", buffer.getvalue())
    assert os.path.getsize(path) < MiB // 4
    refused_bounded(path, "parameters", "zip bomb")


# -- what an error message quotes (issue #18, item 2) -------------------------------------------------------
def export_in_a_small_process(arguments, memory=1 << 30, timeout=120):
    """`sbif export ARGUMENTS` in a fresh process limited to `memory` bytes of address space (RLIMIT_AS):
    (exit status, stderr, peak RSS in bytes). Expanding a structure of shared references fails the limit or
    the time-out instead of taking the machine."""
    script = textwrap.dedent("""
        import resource, sys
        sys.path.insert(0, {root!r})
        resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
        from sbif.cli import main
        status = main({arguments!r})
        with open("/proc/self/status") as status_file:  # VmHWM: this process's peak RSS (ru_maxrss would start at
            peak = [line.split()[1] for line in status_file if line.startswith("VmHWM:")]  # the forking parent's)
        print(int(peak[0]) * 1024)
        sys.exit(status)
    """).format(root=ROOT, memory=memory, arguments=list(arguments))
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=timeout, env=environment)
    lines = result.stdout.split()
    return result.returncode, result.stderr, int(lines[-1]) if lines else None


def refused_in_a_small_process(path, *fragments):
    status, message, peak = export_in_a_small_process(["export", path, "-o", path + ".sbif"])
    assert status == 1, message
    for fragment in fragments:
        assert fragment in message, message
    assert_one_line(message)
    assert peak is not None and peak < 512 * MiB, peak
    return message


def test_shared_references_in_policy_kwargs(tmp_path):
    """A net_arch ten levels deep, ten references to the level below at each: 10^10 leaves from a few hundred
    bytes. Checking it was plain data ran json.dumps over all of them; now the walk stops at its budget."""
    data = model_data(policy_kwargs={"net_arch": shared_nesting(10, 10)})
    path = write_pkl(str(tmp_path / "shared.pkl"), data, model_parameters(data))
    refused_in_a_small_process(path, "policy_kwargs net_arch", "shared references")


def test_shared_references_as_the_activation(tmp_path):
    """act_fun {'name': <10^10 leaves>}: the activation lookup hashed a list (an internal error) and its
    message would have quoted it whole."""
    data = model_data(policy_kwargs={"act_fun": {"name": shared_nesting(10, 10)}})
    path = write_pkl(str(tmp_path / "shared.pkl"), data, model_parameters(data))
    refused_in_a_small_process(path, "act_fun", "is not an activation name")


def test_a_tuple_that_would_hash_for_ever(tmp_path):
    """A dict key that is a tuple holding the one below twice, 60 levels: 2^60 nodes to hash, from 260 bytes."""
    data = model_data(learning_rate=PairsDict([(doubling_tuple(60), 1)]))
    path = write_pkl(str(tmp_path / "hash.pkl"), data, model_parameters(data))
    refused_in_a_small_process(path, "tuples through shared references")


@pytest.mark.parametrize("where", ["global module", "policy class", "by-value class"])
def test_ten_megabyte_names_give_a_short_message(where, tmp_path):
    """A 10 MB module or class name is refused in a one-line message that quotes a bounded preview of it."""
    long_name = "A" * (10 * MiB)
    data = model_data()
    if where == "global module":
        data["learning_rate"] = Call(Global(long_name.lower(), "system"), "true")
    elif where == "policy class":
        data["policy"] = named_class("my_module", long_name + "Policy")
    else:
        data["policy"] = Call(Global("cloudpickle.cloudpickle", "_make_skeleton_class"), Global("builtins", "type"),
                              long_name, (), {}, "id", None)
    path = write_pkl(str(tmp_path / "name.pkl"), data, model_parameters(data))
    assert_one_line(refused(path, "aaaa" if where == "global module" else "AAAA"))


def test_ten_megabyte_parameter_name(tmp_path):
    """A parameter_list naming a 10 MB parameter the archive does not hold: a one-line message."""
    data = model_data()
    params = model_parameters(data)
    path = write_zip(str(tmp_path / "name.zip"), data, params,
                     {"parameter_list": json_bytes_list(list(params) + ["w" * (10 * MiB)])})
    assert_one_line(refused(path, "parameter_list names 'www"))


def json_bytes_list(names):
    return ("[" + ", ".join('"{}"'.format(name) for name in names) + "]").encode()


# -- what a file lists twice (issue #18, item 6) --------------------------------------------------------------
def test_duplicate_names_in_the_parameter_list(tmp_path, capsys):
    """SB2 lists each variable once; a name listed twice was silently read once. Refused, naming it."""
    data = model_data()
    params = model_parameters(data)
    name = next(iter(params))
    path = write_zip(str(tmp_path / "twice.zip"), data, params,
                     {"parameter_list": json_bytes_list(list(params) + [name])})
    assert_one_line(refused(path, "parameter_list names {} twice".format(repr(name))))
    assert sbif_main(["export", path, "-o", str(tmp_path / "out.sbif")]) == 1
    assert name in capsys.readouterr().err


# -- statistics read by the normalization loader (issue #18, items 4 and 6) ----------------------------------
VEC_NORMALIZE = named_class("stable_baselines.common.vec_env.vec_normalize", "VecNormalize")


@pytest.mark.parametrize("key, value, fragment", [
    ("clip_obs", 10 ** 4000, "clip_obs must be a finite number"),
    ("clip_obs", float("inf"), "clip_obs must be a finite number"),
    ("clip_obs", float("nan"), "clip_obs must be a finite number"),
    ("clip_obs", True, "clip_obs must be a finite number"),
    ("clip_obs", "10", "clip_obs must be a finite number"),
    ("epsilon", -(10 ** 4000), "epsilon must be a finite number"),
    ("epsilon", float("inf"), "epsilon must be a finite number"),
    ("mean", np.array([1 + 2j, 0, 0, 0]), "complex128 arrays, not real numbers"),
    ("count", 10 ** 4000, None),
], ids=["clip_obs-4000-digits", "clip_obs-inf", "clip_obs-nan", "clip_obs-bool", "clip_obs-text",
        "epsilon-4000-digits", "epsilon-inf", "complex-mean", "unused-huge-count"])
def test_vecnormalize_statistics_with_bad_numbers(key, value, fragment, tmp_path, capsys):
    """clip_obs and epsilon are finite real numbers (a 4000-digit integer made float() raise: an internal
    error); statistics are real arrays (a complex mean lost its imaginary part silently)."""
    rms_state = {"mean": np.zeros(4), "var": np.ones(4), "count": 1.0}
    state = {"obs_rms": NewObj(named_class("stable_baselines.common.running_mean_std", "RunningMeanStd"), rms_state),
             "clip_obs": 10.0, "epsilon": 1e-8, "norm_obs": True}
    (rms_state if key in rms_state else state)[key] = value
    statistics = str(tmp_path / "vecnormalize.pkl")
    with open(statistics, "wb") as handle:
        handle.write(dumps(NewObj(VEC_NORMALIZE, state)))
    data = model_data()
    model = write_pkl(str(tmp_path / "model.pkl"), data, model_parameters(data))
    status = sbif_main(["export", model, "--vecnormalize", statistics, "-o", str(tmp_path / "out.sbif")])
    message = capsys.readouterr().err
    if fragment is None:
        assert status == 0, message  # a statistic the export does not use is not checked
        return
    assert status == 1 and fragment in message and statistics in message, message
    assert_one_line(message)


def test_textual_bounds_with_millions_of_numbers(tmp_path):
    """A textual Box(4) whose bound holds 15 million numbers (60 MB, under the data member's 64 MiB cap): the
    text was split into a list of every token (about 1 GB) before its length was compared with the shape's;
    it is now parsed one number at a time into the 4 the shape declares."""
    readable = {":type:": "<class 'gym.spaces.box.Box'>", "dtype": "float32", "shape": [4],
                "low": "[" + "1.5 " * (15 * 1000 * 1000) + "]", "high": "[3. 3. 3. 3.]"}
    data = model_data(observation=readable)
    path = write_zip(str(tmp_path / "text.zip"), data, model_parameters(model_data()))
    refused_in_a_small_process(path, "observation_space.low text holds more than 4 numbers")


@pytest.mark.parametrize("member", ["data", "parameter_list"])
def test_json_members_that_build_twenty_times_their_size(member, tmp_path):
    """JSON makes an object of every value: a 3 MB member of empty lists (or of short strings) is 60 MB of
    objects. What parsing would build is estimated from the text first, within the budget pickles have."""
    data = model_data()
    params = model_parameters(data)
    if member == "data":
        content = b'{"x": [' + b"[]," * 1000000 + b"[]]}"
    else:
        content = b'["' + b'a","' * 1000000 + b'a"]'
    path = write_zip(str(tmp_path / "json.zip"), data, params, {member: content})
    assert_one_line(refused_bounded(path, "the {} member builds more than".format(member)))
