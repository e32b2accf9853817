"""The numba backend's compiled kernels as an extension module, built once per machine, imported without numba.

A process that runs the interpreter through numba's JIT pays about a second before its first action even when
numba's disk cache is warm: `import numba` and the set-up of its compilation target, before any cached code loads.
So the interpreter's entry points (`numba_kernels.execute`, `execute_one`, `im2col`) are compiled ahead of time
with numba's `pycc` into a CPython extension module, for this CPU, and kept in a cache directory. Later processes
import that module in about a millisecond and never import numba. The same LLVM code is generated as by the JIT,
so results are bit-identical to it.

The module's name is a digest of everything its machine code depends on: the kernels' source, the Python and NumPy
ABI, the numba and llvmlite installed, and the CPU (a module built for one CPU's instructions never loads on
another). A build runs in a child process (numba's compiler and the C compiler's output stay out of the caller's
process), writes into a temporary directory and renames the module into place, so concurrent builds are harmless.
A build needs a C compiler and Python's headers; without them, `KernelsUnavailable` says why and the backend uses
numba's JIT instead.

    python -m sbif.runtime.numba_aot [--json]    build (or find) this machine's module and print its path
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
from types import ModuleType
from typing import Dict, List, Optional

import numpy as np

from ..errors import SbifError

#: the entry points and their one signature each (`numba_backend` calls them with exactly these types)
EXPORTS = {
    "execute": "void(int64[::1], int64, int64, int64, int64, int64" + ", uint8[::1]" * 7 + ")",
    "execute_one": "void(int64[::1], uint8[::1], uint8[::1])",
    "im2col": "void(float32[:, :, :, ::1], float32[:, :, :, ::1], int64, int64, int64, int64, int64, int64)",
}
#: where modules are kept: $SBIF_CACHE_DIR, else the user's cache directory
CACHE_ENV = "SBIF_CACHE_DIR"
#: a build that takes longer than this has hung (it takes one to two minutes)
BUILD_TIMEOUT_SECONDS = 1800
#: the source files whose code the module contains (with EXPORTS)
_SOURCES = ("numba_kernels.py", "kernel_format.py")
_HERE = os.path.dirname(os.path.abspath(__file__))


class KernelsUnavailable(SbifError):
    """The extension module cannot be built or loaded here (the message says why)."""


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
    for name in _SOURCES:
        with open(os.path.join(_HERE, name), "rb") as source:
            digest.update(source.read())
    for part in (repr(sorted(EXPORTS.items())), sys.version, sysconfig.get_config_var("EXT_SUFFIX") or "",
                 np.__version__, _package_stamp("numba"), _package_stamp("llvmlite"), _cpu_description()):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    return "sbif_kernels_" + digest.hexdigest()[:20]


def module_path(directory: Optional[str] = None) -> str:
    """Where this machine's module is (or would be) kept."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return os.path.join(directory or cache_directory(), module_name() + suffix)


def load() -> Optional[ModuleType]:
    """This machine's module if it has been built, else None. Raises KernelsUnavailable if it exists but does not
    load (a damaged file: delete it, and the next load builds it again)."""
    path = module_path()
    if not os.path.exists(path):
        return None
    name = os.path.basename(path)[:-len(importlib.machinery.EXTENSION_SUFFIXES[0])]
    if name in sys.modules:
        return sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError) as exc:
        raise KernelsUnavailable("the compiled kernels in {} do not load ({}); delete the file to rebuild them".format(
            path, exc)) from None
    missing = [entry for entry in EXPORTS if not hasattr(module, entry)]
    if missing:
        raise KernelsUnavailable("the compiled kernels in {} lack {}; delete the file to rebuild them".format(
            path, ", ".join(missing)))
    sys.modules[name] = module
    return module


def build() -> str:
    """Build this machine's module in a child process (one to two minutes) and return its path; raises
    KernelsUnavailable with the child's last words when it fails (no C compiler, no Python headers, no pycc)."""
    directory = cache_directory()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise KernelsUnavailable("cannot create the kernel cache directory {} ({}); set {} to a writable "
                                 "directory".format(directory, exc.strerror, CACHE_ENV)) from None
    package_root = os.path.dirname(os.path.dirname(_HERE))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]))
    environment[CACHE_ENV] = directory
    try:
        finished = subprocess.run([sys.executable, "-m", "sbif.runtime.numba_aot", "--json"], env=environment,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=BUILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise KernelsUnavailable("building the compiled kernels took over {} s".format(
            BUILD_TIMEOUT_SECONDS)) from None
    if finished.returncode != 0:
        words = finished.stderr.decode("utf-8", "replace").strip().splitlines() or ["(no output)"]
        raise KernelsUnavailable("building the compiled kernels failed: {}".format(words[-1]))
    return json.loads(finished.stdout.decode("utf-8").strip().splitlines()[-1])["path"]


def _build_here(directory: str) -> str:
    """The build itself (in the child): numba's pycc compiles the entry points for this CPU into a temporary
    directory, whose module is then renamed into place."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending deprecation: the fallback is the JIT
        from numba.pycc import CC
    from . import numba_kernels

    target = module_path(directory)
    name = module_name()
    with tempfile.TemporaryDirectory(prefix=name + ".", dir=directory) as work:
        try:
            compiler = CC(name)  # (it looks for the C compiler here)
            compiler.output_dir = work
            compiler.target_cpu = "host"
            compiler.verbose = False
            for entry, signature in EXPORTS.items():
                compiler.export(entry, signature)(numba_kernels.without_gil(getattr(numba_kernels, entry)))
            compiler.compile()
        except RuntimeError as exc:
            if "without the compiler" not in str(exc):
                raise
            raise KernelsUnavailable("no C compiler found: numba's pycc needs one, with Python's headers (on "
                                     "Debian/Ubuntu: apt install gcc python3-dev)") from None
        built = [file for file in os.listdir(work) if file.startswith(name) and file.endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES))]
        if not built:
            raise KernelsUnavailable("numba's pycc wrote no extension module")
        os.replace(os.path.join(work, built[0]), target)
    return target


def _package_stamp(package: str) -> str:
    """Where an installed package is, with its size and time: changes when it is upgraded, found without importing
    it (importing numba is what the module avoids)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return package + " missing"
    status = os.stat(spec.origin)
    return "{} {} {} {}".format(package, spec.origin, status.st_size, status.st_mtime_ns)


def _cpu_description() -> str:
    """The CPU's model and instruction-set flags (Linux: /proc/cpuinfo; elsewhere LLVM's view of the host)."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
    except OSError:
        lines = []
    wanted: Dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags", "Features", "CPU part") and key not in wanted:
            wanted[key] = value.strip()
    if "flags" in wanted or "Features" in wanted:
        return "{} {}".format(platform.machine(), sorted(wanted.items()))
    import llvmlite.binding as llvm

    return "{} {} {}".format(platform.machine(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sbif.runtime.numba_aot", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the numba backend's compiled kernels for this machine (once: one to two minutes), or "
                    "find them built, and print the module's path. The backend does this on first use; run it "
                    "ahead of time, e.g. when building a container image.",
        epilog="examples:\n  python -m sbif.runtime.numba_aot\n"
               "  SBIF_CACHE_DIR=/opt/sbif-cache python -m sbif.runtime.numba_aot --json")
    parser.add_argument("--json", action="store_true", help='print {"path": ...} instead of the bare path')
    arguments = parser.parse_args(argv)
    path = module_path()
    try:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            path = _build_here(os.path.dirname(path))
    except KernelsUnavailable as exc:
        print("error: {}".format(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # numba's and the C compiler's own errors, told in one line (build() reports it)
        print("error: {}: {}".format(type(exc).__name__, " ".join(str(exc).split()) or "(no message)"),
              file=sys.stderr)
        return 1
    print(json.dumps({"path": path}) if arguments.json else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
