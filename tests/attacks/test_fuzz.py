"""Fuzzing the safe loader with corrupted real files: random byte overwrites, insertions, deletions and
truncations of the `../shared/zoo` models and of freshly generated SB2 files must give either a result or
an SbifError, never another exception (and never a crash or a hang)."""
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbif.errors import SbifError
from sbif.export import build_sbif
from sbif.export.safe import describe_safe_file

from tests.zoo import ZOO, require_zoo, zoo_models

from .sb2_like import make_model_files

FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def zoo_blobs():
    blobs = {}
    for relative in zoo_models():
        with open(os.path.join(ZOO, relative), "rb") as handle:
            blobs[relative.replace(os.sep, "/")] = handle.read()
    return blobs


def generated_blobs():
    directory = tempfile.mkdtemp()
    try:
        return {kind: open(path, "rb").read() for kind, path in make_model_files(directory, seed=1).items()}
    finally:
        shutil.rmtree(directory)


ZOO_BLOBS = zoo_blobs()
GENERATED_BLOBS = generated_blobs()

#: (position as a fraction of the file, kind, byte): overwrite, insert or delete one byte there
EDITS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(["set", "insert", "delete"]),
                           st.integers(0, 255)), min_size=1, max_size=8)
TRUNCATION = st.one_of(st.none(), st.floats(0, 1))


def corrupt(blob, edits, truncation):
    data = bytearray(blob)
    for fraction, kind, value in edits:
        position = int(fraction * len(data)) if data else 0
        if kind == "set" and data:
            data[position] = value
        elif kind == "insert":
            data.insert(position, value)
        elif data:
            del data[position]
    if truncation is not None:
        data = data[:int(len(data) * truncation)]
    return bytes(data)


def load_corrupted(blob, name):
    """Export the corrupted bytes; only SbifError may escape (it is swallowed: refusing is a fine answer)."""
    directory = tempfile.mkdtemp()
    try:
        path = os.path.join(directory, os.path.basename(name).split(".")[0] + ("." + name.split(".")[-1]))
        with open(path, "wb") as handle:
            handle.write(blob)
        try:
            description = describe_safe_file(path)
            build_sbif(description)
        except SbifError:
            pass
    finally:
        shutil.rmtree(directory)


@pytest.mark.skipif(not ZOO_BLOBS, reason="../shared/zoo is not present on this machine")
@FUZZ
@given(name=st.sampled_from(sorted(ZOO_BLOBS) or ["none"]), edits=EDITS, truncation=TRUNCATION)
def test_corrupted_zoo_files(name, edits, truncation):
    load_corrupted(corrupt(ZOO_BLOBS[name], edits, truncation), name)


@FUZZ
@given(name=st.sampled_from(sorted(GENERATED_BLOBS)), edits=EDITS, truncation=TRUNCATION)
def test_corrupted_generated_files(name, edits, truncation):
    load_corrupted(corrupt(GENERATED_BLOBS[name], edits, truncation),
                   "generated." + ("zip" if name == "zip" else "pkl"))


def test_zoo_is_present_in_ci():
    require_zoo(list(ZOO_BLOBS))
