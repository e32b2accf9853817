"""The numba backend's kernels as an extension module (`sbif.runtime.numba.aot`): the name that keys it to its
code and machine, its errors (damaged module, failed build, unwritable cache), its command line, the JIT fallback's
cache keyed on the same digest, and entry points that release the GIL. Running models on it:
tests/test_numba_runtime.py."""
from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("numba")

from sbif.errors import SbifError  # noqa: E402
from sbif.runtime.numba import aot, backend, cache, intrinsics, jit_cache, kernels  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_numbas_jit_cache_of_the_kernels_is_stamped_with_the_module_name():
    """Every kernel's cache (the JIT fallback) is found by `jit_cache.KernelCacheLocator` and stamped with the digest
    that names the extension module, so it is as fresh as the module would be."""
    for function in (kernels.execute, kernels.execute_one, kernels.im2col, kernels.run, kernels.dense_panels):
        locator = function._cache._impl.locator
        assert isinstance(locator, jit_cache.KernelCacheLocator), function
        assert locator.get_source_stamp() == cache.module_name()
    assert not isinstance(jit_cache.KernelCacheLocator.from_function(hashlib.sha256, hashlib.__file__),
                          jit_cache.KernelCacheLocator)  # functions of other modules: numba's own locators


def test_a_change_to_any_source_of_the_kernels_invalidates_numbas_jit_cache(monkeypatch, tmp_path):
    """A copy of the sources with one constant of encoding.py changed stamps the kernels' cache differently, and
    numba's index, saved under the old stamp, gives nothing under the new one: the JIT recompiles."""
    from numba.core.caching import IndexDataCacheFile

    stamp = jit_cache.cache_key()
    copy = tmp_path / "sbif" / "runtime" / "numba"
    for name in cache.SOURCES:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(os.path.join(cache.DIRECTORY, name), "rb") as source:
            target.write_bytes(source.read())
    (copy / "encoding.py").write_text((copy / "encoding.py").read_text().replace("MAX_INPUTS = 4", "MAX_INPUTS = 5"))
    monkeypatch.setattr(cache, "DIRECTORY", str(copy))
    jit_cache.cache_key.cache_clear()
    try:
        changed = jit_cache.KernelCacheLocator(kernels.run.py_func, kernels.__file__, str(tmp_path)).get_source_stamp()
    finally:
        monkeypatch.undo()
        jit_cache.cache_key.cache_clear()
    assert changed != stamp and jit_cache.cache_key() == stamp
    IndexDataCacheFile(str(tmp_path), "run", stamp).save("signature", "machine code")
    assert IndexDataCacheFile(str(tmp_path), "run", stamp).load("signature") == "machine code"
    assert IndexDataCacheFile(str(tmp_path), "run", changed).load("signature") is None


def test_the_jit_cache_goes_beside_the_modules_where_the_package_is_read_only(monkeypatch, tmp_path):
    """An installed package whose __pycache__ cannot be written keeps the kernels' JIT cache in $SBIF_CACHE_DIR/jit;
    where neither can be written, numba's own locators are asked (None)."""
    package = tmp_path / "package"
    package.mkdir()
    (package / "__pycache__").write_text("")  # a file: no directory can be made there
    source = str(package / "kernels.py")
    monkeypatch.setattr(cache, "DIRECTORY", str(package))
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path / "cache"))
    locator = jit_cache.KernelCacheLocator.from_function(kernels.run.py_func, source)
    assert locator.get_cache_path() == str(tmp_path / "cache" / "jit")
    monkeypatch.setenv("SBIF_CACHE_DIR", str(package / "__pycache__" / "cache"))
    assert jit_cache.KernelCacheLocator.from_function(kernels.run.py_func, source) is None


def test_the_module_name_covers_every_module_the_kernels_read():
    """Each module of sbif that kernels.py or intrinsics.py imports is one of the sources the name digests (but
    jit_cache, which only says where numba keeps its cache)."""
    sources = {os.path.normpath(os.path.join(cache.DIRECTORY, name)) for name in cache.SOURCES}
    read = set()
    for module in (kernels, intrinsics):
        with open(module.__file__) as source:
            tree = ast.parse(source.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                package = module.__name__.rsplit(".", node.level)[0]
                names = [node.module] if node.module else [alias.name for alias in node.names]
                for name in names:
                    imported = importlib.import_module(package + "." + name)
                    if imported is not jit_cache:
                        read.add(os.path.normpath(imported.__file__))
    assert read and read <= sources, read - sources
    assert os.path.normpath(kernels.__file__) in sources


def test_the_module_name_changes_with_the_cpu_and_the_sources(monkeypatch):
    name = cache.module_name()
    assert name.startswith("sbif_kernels_") and name == cache.module_name()
    monkeypatch.setattr(cache, "_cpu_description", lambda: "x86_64 a CPU without AVX")
    assert cache.module_name() != name
    monkeypatch.undo()
    monkeypatch.setattr(cache, "SOURCES", cache.SOURCES[:-1])
    assert cache.module_name() != name


def test_the_cache_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path / "kernels"))
    assert cache.cache_directory() == str(tmp_path / "kernels")
    assert os.path.dirname(aot.module_path()) == str(tmp_path / "kernels")
    monkeypatch.delenv("SBIF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_directory() == str(tmp_path / "xdg" / "sbif")


def test_no_module_yet_is_none(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    assert aot.load() is None


def test_a_damaged_module_is_named_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_cpu_description", lambda: "a CPU of its own")  # not a module already loaded
    with open(aot.module_path(), "wb") as damaged:
        damaged.write(b"\x7fELF but truncated")
    with pytest.raises(aot.KernelsUnavailable, match=r"do not load .*delete the file to rebuild them"):
        aot.load()
    assert issubclass(aot.KernelsUnavailable, SbifError)


def test_an_unwritable_cache_is_named_with_the_fix(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(aot.KernelsUnavailable, match=r"cannot create the kernel cache directory .*a-file.*"
                                                           r"set SBIF_CACHE_DIR to a writable directory"):
        aot.build()


def test_a_machine_without_a_c_compiler_is_told_so(monkeypatch, tmp_path):
    """The build runs (a child process) and fails at once; the error names the missing compiler and the fix."""
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-gcc"))
    with pytest.raises(aot.KernelsUnavailable, match=r"^building the compiled kernels failed: error: no C "
                                                           r"compiler found: .*apt install gcc python3-dev\)$"):
        aot.build()
    assert not os.path.exists(aot.module_path())


def test_the_command_line_prints_the_module(monkeypatch):
    """`python -m sbif.runtime.numba.aot` builds the module ahead of use (here it exists: the backend's tests
    built it) and prints its path, as JSON on request."""
    backend.compiled_kernels()
    for arguments, parse in (([], str.strip), (["--json"], lambda text: json.loads(text)["path"])):
        finished = subprocess.run([sys.executable, "-m", "sbif.runtime.numba.aot"] + arguments, cwd=ROOT,
                                  capture_output=True, text=True, timeout=600, check=True)
        assert parse(finished.stdout) == aot.module_path()


def test_the_entry_points_release_the_gil():
    """While one thread is inside a compiled kernel, another runs Python: its progress during a kernel call is
    compared with its progress while the caller sleeps as long. With the GIL held throughout the call, every call
    would show at most a switch interval's worth (under 2%); with it released, a call shows a quarter or more
    unless other processes take the CPUs meanwhile, so the best of seven calls is held to that (a median would
    fail on a busy machine)."""
    im2col = backend.compiled_kernels().im2col
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
    assert max(ratios) > 0.25, ratios
