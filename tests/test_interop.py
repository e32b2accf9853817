"""SBIF files are plain safetensors: the reference `safetensors` package reads what we write, and we read
what it writes; our writer is reproducible."""
import hashlib

import numpy as np
from safetensors.numpy import load_file, save_file

import sbif
from sbif.format import SbifFile, read_container


def test_safetensors_reads_our_files(make_file):
    path = make_file("box_image", "multi_discrete", "mixed")
    ours = SbifFile.read(path)
    theirs = load_file(path)
    assert set(theirs) == set(ours.tensors)
    for name, array in theirs.items():
        assert array.dtype == ours.tensors[name].dtype and np.array_equal(array, ours.tensors[name])
    from safetensors import safe_open
    with safe_open(path, framework="np") as handle:
        assert handle.metadata()["sbif"].startswith("{")


def test_we_read_files_safetensors_writes(make_file, tmp_path):
    source = SbifFile.read(make_file())
    path = str(tmp_path / "by_safetensors.sbif")
    from sbif.format.document import encode_document
    save_file({name: np.array(array) for name, array in source.tensors.items()}, path,
              metadata=encode_document(source.document))
    policy = sbif.load(path)
    assert policy.predict(np.zeros(4), deterministic=True)[0].shape == (2,)


def test_writing_is_reproducible(tmp_path):
    from tests.factories import make_sbif
    digests = set()
    for i in range(3):
        path = str(tmp_path / "m{}.sbif".format(i))
        make_sbif("box_inf", "box", "mixed", seed=4).write(path)
        with open(path, "rb") as handle:
            digests.add(hashlib.sha256(handle.read()).hexdigest())
    assert len(digests) == 1


def test_header_is_aligned(make_file):
    path = make_file()
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
    assert length % 8 == 0
    metadata, tensors = read_container(path)
    assert "sbif" in metadata and all(not array.flags.writeable for array in tensors.values())
