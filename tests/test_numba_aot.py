"""The numba backend's kernels as an extension module (`sbif.runtime.numba.aot`): the name that keys it to its
code and machine, its errors (damaged module, failed build, unwritable cache), its command line, the program
format's digest, and entry points that release the GIL. Running models on it: tests/test_numba_runtime.py."""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("numba")

from sbif.errors import SbifError  # noqa: E402
from sbif.runtime.numba import aot as numba_aot, backend as numba_backend, encoding, kernels as numba_kernels  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_kernels_name_the_program_format_they_were_written_for():
    """numba's disk cache only notices changes to numba_kernels.py: a change to encoding.py must come with
    its new digest there, or a process could run kernels compiled for the old format."""
    with open(encoding.__file__, "rb") as source:
        digest = hashlib.sha256(source.read()).hexdigest()
    assert numba_kernels.PROGRAM_FORMAT_DIGEST == digest, (
        "encoding.py changed: set numba_kernels.PROGRAM_FORMAT_DIGEST to {!r}".format(digest))


def test_the_module_name_changes_with_the_cpu_and_the_sources(monkeypatch):
    name = numba_aot.module_name()
    assert name.startswith("sbif_kernels_") and name == numba_aot.module_name()
    monkeypatch.setattr(numba_aot, "_cpu_description", lambda: "x86_64 a CPU without AVX")
    assert numba_aot.module_name() != name
    monkeypatch.undo()
    monkeypatch.setattr(numba_aot, "_SOURCES", numba_aot._SOURCES[:-1])
    assert numba_aot.module_name() != name


def test_the_cache_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path / "kernels"))
    assert numba_aot.cache_directory() == str(tmp_path / "kernels")
    assert os.path.dirname(numba_aot.module_path()) == str(tmp_path / "kernels")
    monkeypatch.delenv("SBIF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_aot.cache_directory() == str(tmp_path / "xdg" / "sbif")


def test_no_module_yet_is_none(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    assert numba_aot.load() is None


def test_a_damaged_module_is_named_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numba_aot, "_cpu_description", lambda: "a CPU of its own")  # not a module already loaded
    with open(numba_aot.module_path(), "wb") as damaged:
        damaged.write(b"\x7fELF but truncated")
    with pytest.raises(numba_aot.KernelsUnavailable, match=r"do not load .*delete the file to rebuild them"):
        numba_aot.load()
    assert issubclass(numba_aot.KernelsUnavailable, SbifError)


def test_an_unwritable_cache_is_named_with_the_fix(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(numba_aot.KernelsUnavailable, match=r"cannot create the kernel cache directory .*a-file.*"
                                                           r"set SBIF_CACHE_DIR to a writable directory"):
        numba_aot.build()


def test_a_machine_without_a_c_compiler_is_told_so(monkeypatch, tmp_path):
    """The build runs (a child process) and fails at once; the error names the missing compiler and the fix."""
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-gcc"))
    with pytest.raises(numba_aot.KernelsUnavailable, match=r"^building the compiled kernels failed: error: no C "
                                                           r"compiler found: .*apt install gcc python3-dev\)$"):
        numba_aot.build()
    assert not os.path.exists(numba_aot.module_path())


def test_the_command_line_prints_the_module(monkeypatch):
    """`python -m sbif.runtime.numba.aot` builds the module ahead of use (here it exists: the backend's tests
    built it) and prints its path, as JSON on request."""
    numba_backend.compiled_kernels()
    for arguments, parse in (([], str.strip), (["--json"], lambda text: json.loads(text)["path"])):
        finished = subprocess.run([sys.executable, "-m", "sbif.runtime.numba.aot"] + arguments, cwd=ROOT,
                                  capture_output=True, text=True, timeout=600, check=True)
        assert parse(finished.stdout) == numba_aot.module_path()


def test_the_entry_points_release_the_gil():
    """While one thread is inside a compiled kernel, another runs Python: its progress during a kernel call is
    compared with its progress while the caller sleeps as long (with the GIL held throughout the call it would
    be a switch interval's worth, under 2%)."""
    im2col = numba_backend.compiled_kernels().im2col
    x = np.random.default_rng(0).random((16, 84, 84, 4), np.float32)
    columns = np.empty((16, 81, 81, 64), np.float32)
    progress = [0]
    started, stop = threading.Event(), threading.Event()

    def count():
        started.set()
        while not stop.is_set():
            progress[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    thread = threading.Thread(target=count)
    ratios = []
    try:
        thread.start()
        started.wait()
        for _ in range(7):
            before, start = progress[0], time.perf_counter()
            im2col(x, columns, 4, 4, 1, 1, 0, 0)
            during_call, duration = progress[0] - before, time.perf_counter() - start
            before = progress[0]
            time.sleep(duration)
            ratios.append(during_call / max(1, progress[0] - before))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert statistics.median(ratios) > 0.25, ratios
