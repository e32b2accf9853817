"""numba's JIT disk cache for the kernels (`cache=True`), invalidated by everything their machine code depends on.

The JIT is the backend's fallback when the extension module (`aot`) cannot be built. numba's own disk cache stamps
a function's cached code with its source file alone, but the kernels freeze the constants of `encoding` into their
code, inline the LLVM IR of `intrinsics` and read TF's constants from `sbif.ops`: a change to one of those would
leave numba loading code compiled for the old one. So numba asks `KernelCacheLocator` first for the functions of
this package: their cache stays where numba would keep it (this package's `__pycache__`, else a `jit` directory
beside the extension modules), and every index is stamped with the digest `cache.module_name()` computes over those
same sources (and the Python, NumPy, numba and CPU). numba ignores, then overwrites, an index whose stamp differs:
a change to any of those files recompiles the kernels, and nobody copies a digest by hand.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Optional

from numba.core import caching

from . import cache



@functools.lru_cache(maxsize=None)
def cache_key() -> str:
    """The stamp of the kernels' cache: the extension module's name, a digest of all the machine code depends on
    (computed once per process, as numba makes a function's cache once)."""
    return cache.module_name()


class KernelCacheLocator(caching._CacheLocator):  # numba's base class of locators
    """numba's cache locator for the functions of this package, in `directory`, stamped with `cache_key()`."""

    def __init__(self, py_func: Any, py_file: str, directory: str):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = directory

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        return cache_key()

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Optional["KernelCacheLocator"]:
        """A locator for a function defined in this package, in the first of its directories that can be written
        (this package's `__pycache__`, then `jit` in the extension modules' directory); None for other functions,
        or when neither can be written (numba then asks its own locators)."""
        if os.path.dirname(os.path.abspath(py_file)) != cache.DIRECTORY:
            return None
        for directory in (os.path.join(cache.DIRECTORY, "__pycache__"), os.path.join(cache.cache_directory(), "jit")):
            locator = cls(py_func, py_file, directory)
            try:
                locator.ensure_cache_path()
            except OSError:
                continue
            return locator
        return None


def install() -> None:
    """Make numba ask `KernelCacheLocator` first, before the functions of this package are decorated (numba picks
    a function's locator when `cache=True` is applied)."""
    implementation = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    if KernelCacheLocator not in implementation._locator_classes:
        implementation._locator_classes.insert(0, KernelCacheLocator)
