"""Where the numba backend's compiled kernels are kept and the digest that names them: everything their machine
code depends on (the kernels' sources, the entry points' signatures, the Python and NumPy ABI, the numba and
llvmlite installed, the CPU). The extension module (`aot`) is named by it and numba's JIT disk cache (`jit_cache`)
is stamped with it, so a change to any of those builds the kernels again and nobody copies a digest by hand.
Importable without numba (a process that loads the extension module never imports it)."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import sysconfig
import numpy as np

from . import host

#: the entry points and their one signature each (`backend` calls them with exactly these types)
EXPORTS = {
    "execute": "void(int64[::1], int64, int64, int64, int64, int64" + ", uint8[::1]" * 7 + ")",
    "execute_one": "void(int64[::1], uint8[::1], uint8[::1])",
    "im2col": "void(float32[:, :, :, ::1], float32[:, :, :, ::1], int64, int64, int64, int64, int64, int64)",
    "run_lane": "void(int64[::1], int64[::1], int64)",
    "serve": "void(int64[::1], int64[::1], int64, int64)",
    "publish": "void(int64[::1], int64, int64)",
    "wait_change": "void(int64[::1], int64, int64, int64)",
}
#: where modules are kept: $SBIF_CACHE_DIR, else the user's cache directory
CACHE_ENV = "SBIF_CACHE_DIR"
#: the source files the module's machine code depends on (with EXPORTS), from this directory: the kernels, the
#: program format whose constants they freeze, the intrinsics they inline, the host's parameters they are built
#: with, and the op constants they read (TF's SELU)
SOURCES = ("kernels.py", "encoding.py", "intrinsics.py", "host.py", os.path.join("..", "..", "ops", "elementwise.py"))
DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def cache_directory() -> str:
    """The directory of the extension modules: $SBIF_CACHE_DIR, else $XDG_CACHE_HOME/sbif or ~/.cache/sbif."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen:
        return os.path.abspath(chosen)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sbif")


def module_name() -> str:
    """The module's name for this machine: `sbif_kernels_` and a digest of all its code depends on."""
    digest = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(DIRECTORY, name), "rb") as source:
            digest.update(source.read())
    for part in (repr(sorted(EXPORTS.items())), sys.version, sysconfig.get_config_var("EXT_SUFFIX") or "",
                 np.__version__, _package_stamp("numba"), _package_stamp("llvmlite"), _cpu_description()):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    return "sbif_kernels_" + digest.hexdigest()[:20]


def _package_stamp(package: str) -> str:
    """Where an installed package is, with its size and time: changes when it is upgraded, found without importing
    it (importing numba is what the module avoids)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return package + " missing"
    status = os.stat(spec.origin)
    return "{} {} {} {}".format(package, spec.origin, status.st_size, status.st_mtime_ns)


def _cpu_description() -> str:
    """The machine the code is compiled for and what it is compiled with: the CPU as LLVM sees it, its caches and
    the kernel parameters derived from them (`host`: the vector width, tiles, panels of the packed weights)."""
    return "{} {}".format(platform.machine(), host.describe(host.CPU, host.CACHES, host.PARAMETERS))
