"""Which executor runs a policy: the NumPy reference, or the numba-compiled one (same results, faster).

`auto` picks numba when it can be imported, unless the environment variable SBIF_BACKEND names a backend. The
numba backend is imported only here, on demand, so `import sbif` and the NumPy path never import numba.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from ..errors import UnsupportedError
from ..format import SbifFile
from .executor import GraphExecutor

BACKENDS = ("auto", "numpy", "numba")
BACKEND_ENV = "SBIF_BACKEND"
NUMBA_FIX = "install it (pip install 'sbif[fast]', or pip install numba) or use backend='numpy'"
#: numba releases SBIF supports (0.59 on, pyproject's `fast` extra) need this Python; on an older one the extra
#: installs without numba
NUMBA_PYTHON = (3, 9)


def resolve_backend(backend: str) -> str:
    """'numpy' or 'numba' for a requested backend (see the module docstring)."""
    if backend not in BACKENDS:
        raise UnsupportedError("unknown backend {!r}: choose one of {}".format(backend, ", ".join(BACKENDS)))
    if backend != "auto":
        return backend
    forced = environment_backend()
    if forced != "auto":
        return forced
    return "numba" if numba_installed() else "numpy"


def environment_backend() -> str:
    """The backend SBIF_BACKEND names ('auto' when unset or empty)."""
    value = os.environ.get(BACKEND_ENV, "").strip().lower() or "auto"
    if value not in BACKENDS:
        raise UnsupportedError("the environment variable {}={!r} names no backend: set it to one of {}".format(
            BACKEND_ENV, os.environ[BACKEND_ENV], ", ".join(BACKENDS)))
    return value


def numba_installed() -> bool:
    """Whether numba can be found, without importing it."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # ValueError: a None entry in sys.modules (numba blocked)
        return False


def make_executor(model: SbifFile, backend: str = "numpy") -> GraphExecutor:
    """The executor of `backend` for a validated file. With 'auto', a numba that fails to import means NumPy."""
    chosen = resolve_backend(backend)
    if chosen == "numpy":
        return GraphExecutor(model)
    if not numba_installed():
        if sys.version_info[:2] < NUMBA_PYTHON:
            raise UnsupportedError("the numba backend needs numba 0.59 or later, which needs Python {}.{} or later "
                                   "(this is Python {}.{}): use backend='numpy'".format(
                                       NUMBA_PYTHON[0], NUMBA_PYTHON[1], *sys.version_info[:2]))
        raise UnsupportedError("the numba backend needs numba, which is not installed: {}".format(NUMBA_FIX))
    try:
        from .numba.backend import NumbaExecutor
    except ImportError as exc:
        if backend == "auto" and environment_backend() == "auto":  # numba was only detected, not asked for
            return GraphExecutor(model)
        raise UnsupportedError("the numba backend needs numba, which cannot be imported ({}): {}".format(
            exc, NUMBA_FIX)) from None
    return NumbaExecutor(model)
