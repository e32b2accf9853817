"""Shared fixtures: valid SBIF files built without TensorFlow (see `tests/factories.py`)."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `from tests.factories import ...` whatever the rootdir / import mode
    sys.path.insert(0, ROOT)

from tests.factories import MATRIX, make_sbif  # noqa: E402

# The package tests pin `sbif.load`'s default to the NumPy reference, which they compare bit for bit with the ops
# and with files written again; the numba backend is checked against it within SPEC section 6 by
# tests/test_numba_runtime.py, which asks for it by name.
os.environ.setdefault("SBIF_BACKEND", "numpy")

#: The model most bad-file tests start from: Box observation with finite bounds (a multi-dim shape, so a
#: flatten node), Box actions (logstd, clip constants) and shared + separate layers.
DEFAULT_MODEL = ("box_finite", "box", "mixed")


@pytest.fixture(scope="session")
def valid_bytes(tmp_path_factory):
    """The bytes of a valid SBIF file for DEFAULT_MODEL (built once per session)."""
    path = str(tmp_path_factory.mktemp("valid") / "valid.sbif")
    make_sbif(*DEFAULT_MODEL, seed=7).write(path)
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def valid_path(tmp_path, valid_bytes):
    """A fresh copy of the valid file for DEFAULT_MODEL, safe to edit."""
    path = str(tmp_path / "valid.sbif")
    with open(path, "wb") as handle:
        handle.write(valid_bytes)
    return path


@pytest.fixture
def make_file(tmp_path):
    """Factory: make_file(observation, action, arch, seed=0, algorithm='PPO2', activation=None) -> path."""
    counter = [0]

    def make(observation="box_inf", action="box", arch="mixed", seed=0, algorithm="PPO2", activation=None):
        counter[0] += 1
        path = str(tmp_path / "model{}.sbif".format(counter[0]))
        make_sbif(observation, action, arch, seed, algorithm, activation).write(path)
        return path

    return make


@pytest.fixture(params=MATRIX, ids=["-".join(case) for case in MATRIX])
def matrix_case(request):
    """Every (observation kind, action kind, net_arch kind) the factory builds."""
    return request.param
