"""Property tests: what is written reads back identically, and damaged files only ever raise SbifError."""
from __future__ import annotations

import json
import os
import struct
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sbif
from sbif.errors import SbifError
from sbif.format import SbifFile, read_container, write_container
from sbif.runtime import Policy
from tests.factories import ACTION_KINDS, ARCH_KINDS, MATRIX, OBSERVATION_KINDS, make_sbif, raw_bytes, read_raw

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Fuzz harder with e.g. SBIF_FUZZ_EXAMPLES=5000 (the default keeps the suite fast).
FUZZ = settings(max_examples=int(os.environ.get("SBIF_FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory for files written inside Hypothesis tests (function-scoped tmp_path cannot be used there)."""
    return tmp_path_factory.mktemp("roundtrip")


def fresh_path(directory, stem):
    fresh_path.counter += 1
    return str(directory / "{}-{}.sbif".format(stem, fresh_path.counter))


fresh_path.counter = 0


def same_bits(expected: np.ndarray, actual: np.ndarray) -> bool:
    """Same shape, same little-endian dtype and the very same bytes (NaN payloads included)."""
    expected = np.asarray(expected)
    little = expected.dtype.newbyteorder("<") if expected.dtype.byteorder == ">" else expected.dtype
    return (actual.shape == expected.shape and actual.dtype == little
            and np.ascontiguousarray(expected.astype(little)).tobytes() == np.ascontiguousarray(actual).tobytes())


def feeds_for(document, batch: int, seed: int):
    """Random values for every graph input of a document, within its observation space."""
    rng = np.random.RandomState(seed)
    feeds = {}
    space = document["observation_space"]
    for entry in document["inputs"]:
        shape = tuple(batch if d is None else d for d in entry["shape"])
        if entry["kind"] == "noise":
            value = rng.uniform(1e-6, 1.0, shape) if entry["distribution"] == "uniform" else rng.standard_normal(shape)
        elif space["kind"] == "box" and entry["dtype"] == "uint8":
            value = rng.randint(0, 256, shape)
        elif space["kind"] == "box":
            value = rng.standard_normal(shape) * 3
        elif space["kind"] == "discrete":
            value = rng.randint(0, space["n"], shape)
        elif space["kind"] == "multi_discrete":
            value = np.stack([rng.randint(0, n, shape[0]) for n in space["nvec"]], axis=-1)
        else:
            value = rng.randint(0, 2, shape)
        feeds[entry["name"]] = np.asarray(value).astype(entry["dtype"])
    return feeds


def assert_same_file(original: SbifFile, path: str) -> SbifFile:
    loaded = SbifFile.read(path)
    assert loaded.document == original.document
    assert json.dumps(loaded.document, sort_keys=True) == json.dumps(original.document, sort_keys=True)
    assert list(loaded.tensors) != [] and set(loaded.tensors) == set(original.tensors)
    for name, array in original.tensors.items():
        assert same_bits(array, loaded.tensors[name]), name
        assert not loaded.tensors[name].flags.writeable  # views of the mapped file
    assert loaded.specs == original.specs
    return loaded


# -- (a) SBIF files built by the exporter -----------------------------------------------------------------------
def test_every_matrix_cell_round_trips_and_computes_the_same(matrix_case, tmp_path):
    original = make_sbif(*matrix_case, seed=3)
    path = str(tmp_path / "model.sbif")
    original.write(path)
    loaded = assert_same_file(original, path)
    feeds = feeds_for(original.document, batch=3, seed=1)
    before = Policy(original).run(feeds)
    after = sbif.load(path).run(feeds)
    assert set(before) == set(after) == {o["name"] for o in original.document["outputs"]}
    for name in before:
        assert same_bits(before[name], after[name]), name
    assert loaded.parameter_count() == original.parameter_count() > 0


@FAST
@given(observation=st.sampled_from(OBSERVATION_KINDS), action=st.sampled_from(ACTION_KINDS),
       arch=st.sampled_from(ARCH_KINDS), seed=st.integers(0, 2 ** 31 - 1),
       algorithm=st.sampled_from(["PPO2", "A2C", "ACER", "TRPO"]),
       activation=st.sampled_from([None, "tanh", "relu", "elu", "identity", "softplus"]))
def test_written_models_read_back_identically(workdir, observation, action, arch, seed, algorithm, activation):
    original = make_sbif(observation, action, arch, seed, algorithm, activation)
    path = fresh_path(workdir, "model")
    original.write(path)
    assert_same_file(original, path)
    # writing what was read gives the same header and the same data buffer again (not necessarily the same
    # bytes: safetensors writes the __metadata__ map in hash order)
    again = fresh_path(workdir, "again")
    SbifFile.read(path).write(again)
    assert read_raw(path) == read_raw(again)


# -- (b) the raw container --------------------------------------------------------------------------------------
DTYPES = ["float32", "float64", "int32", "int64", "uint8", "bool", ">f8", ">i4", "int8", "uint16", "float16"]
names = st.text(min_size=1, max_size=12).filter(lambda name: name != "__metadata__" and "\x00" not in name)
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
metadata_maps = st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=5)


@FAST
@given(tensors=st.dictionaries(names, arrays, max_size=6), metadata=metadata_maps)
def test_container_round_trips_arbitrary_arrays_and_metadata(workdir, tensors, metadata):
    path = fresh_path(workdir, "raw")
    write_container(path, tensors, metadata)
    read_metadata, read_tensors = read_container(path)
    assert read_metadata == metadata
    assert set(read_tensors) == set(tensors)
    for name, array in tensors.items():
        assert same_bits(array, read_tensors[name]), (name, array, read_tensors[name])


def test_container_edge_cases(tmp_path):
    cases = [
        ({}, {}),
        ({}, {"format": "sbif", "note": "no tensors"}),
        ({"scalar": np.array(2.5), "b": np.array(True)}, {}),
        ({"empty": np.zeros((0, 3), "float32"), "later": np.arange(3, dtype="int64")}, {"k": ""}),
        ({"only-empty": np.zeros((2, 0, 4), "uint8")}, {"\u2603": "\u00e9\n\"quoted\""}),
    ]
    for index, (tensors, metadata) in enumerate(cases):
        path = str(tmp_path / "edge{}.safetensors".format(index))
        write_container(path, tensors, metadata)
        read_metadata, read_tensors = read_container(path)
        assert read_metadata == metadata
        assert set(read_tensors) == set(tensors)
        for name, array in tensors.items():
            assert same_bits(array, read_tensors[name]), name


def test_writer_leaves_no_partial_file_on_failure(tmp_path):
    path = str(tmp_path / "bad.safetensors")
    with pytest.raises(SbifError, match="complex128 cannot be stored"):
        write_container(path, {"z": np.zeros(2, "complex128")}, {})
    assert os.listdir(str(tmp_path)) == []


# -- (c) fuzzing: damaged files raise SbifError or read fine ----------------------------------------------------
FUZZ_MODELS = [("box_finite", "box", "mixed"), ("discrete", "multi_discrete", "none"),
               ("multi_binary", "multi_binary", "shared"), ("box_image", "discrete", "separate")]


@lru_cache(maxsize=None)
def valid_file_bytes(index: int) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "valid.sbif")
        make_sbif(*FUZZ_MODELS[index], seed=index).write(path)
        with open(path, "rb") as handle:
            return handle.read()


def read_only_sbif_errors(path: str) -> None:
    """Read the file both ways; anything but success or an SbifError fails the test."""
    try:
        SbifFile.read(path)
    except SbifError:
        return
    sbif.load(path)  # valid for the format: the runtime must accept it too


@st.composite
def damaged(draw):
    """A valid file with a few random byte-level edits, biased towards the header."""
    content = bytearray(valid_file_bytes(draw(st.integers(0, len(FUZZ_MODELS) - 1))))
    header_end = 8 + struct.unpack("<Q", bytes(content[:8]))[0]
    for _ in range(draw(st.integers(1, 4))):
        size = len(content)
        in_header = draw(st.booleans())
        where = draw(st.integers(0, max(0, (header_end if in_header else size) - 1)))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "length"]))
        if kind == "flip" and size:
            content[where % size] ^= draw(st.integers(1, 255))
        elif kind == "set" and size:
            content[where % size] = draw(st.sampled_from(b'{}[]",:0123456789-eE.tfn \\\x00\xff'))
        elif kind == "insert":
            content[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del content[where:where + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del content[where:]
        elif kind == "length" and size >= 8:
            content[:8] = struct.pack("<Q", draw(st.one_of(
                st.integers(0, 2 ** 64 - 1), st.integers(max(0, header_end - 24), header_end + 24))))
    return bytes(content)


@FUZZ
@given(content=damaged())
def test_byte_level_damage_raises_only_sbif_errors(workdir, content):
    path = fresh_path(workdir, "fuzz")
    with open(path, "wb") as handle:
        handle.write(content)
    read_only_sbif_errors(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.sampled_from([0, 1, -1, 2 ** 63, 2 ** 64])
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
    | st.sampled_from(["obs", "float32", "int32", "inf", "nan", "box", "linear", "model/pi/w:0", "F32", "U8"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8)


def paths_of(value, prefix=()):
    """Every (path, value) inside a JSON value, containers included."""
    yield prefix, value
    if isinstance(value, dict):
        for key, child in value.items():
            for item in paths_of(child, prefix + (key,)):
                yield item
    elif isinstance(value, list):
        for index, child in enumerate(value):
            for item in paths_of(child, prefix + (index,)):
                yield item


def mutate_json(draw, root, skip=()):
    """Replace, delete or duplicate one randomly chosen part of a JSON value (in place; returns the root).

    Most edits keep the JSON type of a leaf (a name becomes another name used in the file, a number another
    number), so that many damaged documents pass the schema and reach the graph checks.
    """
    places = [path for path, _ in paths_of(root) if path and path[0] not in skip]
    vocabulary = sorted({value for _, value in paths_of(root) if isinstance(value, str)})
    path = draw(st.randoms(use_true_random=False)).choice(places)  # uniform: integers() favour the first
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    action = draw(st.sampled_from(["same_type"] * 4 + ["replace", "delete", "duplicate", "grow"]))
    old = parent[key]
    if action == "same_type" and isinstance(old, str):
        parent[key] = draw(st.sampled_from(vocabulary))
    elif action == "same_type" and isinstance(old, bool):
        parent[key] = not old
    elif action == "same_type" and isinstance(old, int):
        parent[key] = draw(st.sampled_from([0, 1, 2, -1, 3, 7, old + 1, old - 1, 2 ** 31, 2 ** 63]))
    elif action == "same_type" and isinstance(old, float):
        parent[key] = draw(st.floats(allow_nan=False) | st.integers(-10, 10))
    elif action == "same_type" and isinstance(old, list) and old:
        index = draw(st.integers(0, len(old) - 1))
        parent[key] = old[:index] + old[index + 1:] if draw(st.booleans()) else old + [old[index]]
    elif action == "replace":
        parent[key] = draw(json_values)
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(key, json.loads(json.dumps(parent[key])))
    elif action == "grow" and isinstance(parent[key], int) and not isinstance(parent[key], bool):
        parent[key] = parent[key] * draw(st.sampled_from([-1, 0, 2, 2 ** 40, 2 ** 64]))
    else:
        parent[key] = draw(json_values)
    return root


@st.composite
def damaged_document(draw):
    """A valid file whose SBIF document had one to three structural edits (keeps the container intact)."""
    content = valid_file_bytes(draw(st.integers(0, len(FUZZ_MODELS) - 1)))
    length = struct.unpack("<Q", content[:8])[0]
    header = json.loads(content[8:8 + length].decode("utf-8"))
    document = json.loads(header["__metadata__"]["sbif"])
    for _ in range(draw(st.integers(1, 3))):
        # the format marker and version have their own tests: do not spend examples on them
        document = mutate_json(draw, document, skip=("format", "format_version"))
    header["__metadata__"]["sbif"] = json.dumps(document)
    return raw_bytes(header, content[8 + length:])


@st.composite
def damaged_header(draw):
    """A valid file whose safetensors header had one or two structural edits (data buffer unchanged)."""
    content = valid_file_bytes(draw(st.integers(0, len(FUZZ_MODELS) - 1)))
    length = struct.unpack("<Q", content[:8])[0]
    header = json.loads(content[8:8 + length].decode("utf-8"))
    header["__metadata__"] = {"format": "sbif", "sbif": "<doc>"}  # keep the document out of the way
    for _ in range(draw(st.integers(1, 2))):
        header = mutate_json(draw, header) if isinstance(header, (dict, list)) and header else header
    document = json.loads(json.loads(content[8:8 + length].decode("utf-8"))["__metadata__"]["sbif"])
    text = json.dumps(header).replace('"<doc>"', json.dumps(json.dumps(document)))
    return raw_bytes(None, content[8 + length:], header_bytes=text.encode("utf-8"))


@FUZZ
@given(content=damaged_document())
def test_document_damage_raises_only_sbif_errors(workdir, content):
    path = fresh_path(workdir, "doc")
    with open(path, "wb") as handle:
        handle.write(content)
    read_only_sbif_errors(path)


@FUZZ
@given(content=damaged_header())
def test_header_damage_raises_only_sbif_errors(workdir, content):
    path = fresh_path(workdir, "header")
    with open(path, "wb") as handle:
        handle.write(content)
    read_only_sbif_errors(path)


def test_fuzz_bases_are_valid(tmp_path):
    for index in range(len(FUZZ_MODELS)):
        path = str(tmp_path / "base{}.sbif".format(index))
        with open(path, "wb") as handle:
            handle.write(valid_file_bytes(index))
        SbifFile.read(path)
        header, _ = read_raw(path)
        assert header["__metadata__"]["format"] == "sbif"


def test_matrix_is_complete():
    assert len(MATRIX) == len(OBSERVATION_KINDS) * len(ACTION_KINDS) * len(ARCH_KINDS) == 96
