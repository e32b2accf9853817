"""The readers the differential fuzzers compare, each reduced to one verdict per file: `loaded`, or the class of the
refusal (SPEC section 7: FileFormatError, UnsupportedError, DocumentError).

- Python: `SbifFile.read`, which is all `sbif validate` does with a file.
- C, in-process through ctypes (`runtimes/c/build/libsbif.so`, `make -C runtimes/c shared`): `sbif_model_load`.
- C or Node as a protocol process (`runtimes/c/build/sbif-protocol`, `node runtimes/js/bin/sbif-protocol.js`): one
  persistent process answering `load` requests (spec/conformance-protocol.md section 4.4).

Anything else a reader does with a file — a Python exception that is not an `SbifError`, a C status outside the
reader classes, a crashed or silent process — is a verdict of its own, so it shows up as a disagreement.
"""
from __future__ import annotations

import ctypes
import os
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

from conformance.protocol import LOADED, Runtime, load_outcome, refusal_class
from sbif.errors import SbifError, preview
from sbif.format import SbifFile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
C_DIR = os.path.join(ROOT, "runtimes", "c")
C_LIBRARY = os.path.join(C_DIR, "build", "libsbif.so")
#: Characters of a reader's message kept in a verdict (enough to see what it refused, never a whole input).
MESSAGE_CHARS = 300


class Verdict(NamedTuple):
    """What one reader made of one file: `outcome` is LOADED or an error class (or a description of a failure that
    is neither); `message` is the reader's own words, shortened."""

    outcome: str
    message: str = ""


def python_verdict(path: str) -> Verdict:
    """The reference reader's verdict on the file at `path`."""
    try:
        SbifFile.read(path)
    except SbifError as exc:
        return Verdict(refusal_class(exc) or type(exc).__name__, str(exc)[:MESSAGE_CHARS])
    except Exception as exc:  # a traceback where a refusal belongs: a finding, reported as the verdict  # noqa: BLE001
        return Verdict("internal error ({})".format(type(exc).__name__), preview(str(exc), MESSAGE_CHARS))
    return Verdict(LOADED)


def protocol_verdict(runtime: Runtime, path: str) -> Verdict:
    """A protocol runtime's verdict from one `load` request."""
    answer = runtime.load(path)
    outcome = load_outcome(answer)
    message = (answer.message or "")[:MESSAGE_CHARS]
    if outcome.status == "result":
        return Verdict(outcome.outputs["load"], message)
    return Verdict("{} ({})".format(outcome.status, (outcome.message or "")[:MESSAGE_CHARS]), message)


class _CError(ctypes.Structure):
    """`sbif_error` of runtimes/c/sbif.h."""

    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 1024)]


class CLibrary:
    """The C reader in this process: `sbif_model_load` from the shared build of runtimes/c (sbif.c, which packs the
    weights with sbif_kernels.c)."""

    def __init__(self, path: str = C_LIBRARY):
        sources = [os.path.join(C_DIR, name) for name in ("sbif.c", "sbif.h", "sbif_kernels.c", "sbif_kernels.h")]
        if not os.path.exists(path) or any(os.path.getmtime(source) > os.path.getmtime(path) for source in sources):
            # a stale build would compare today's Python reader with yesterday's C reader
            raise RuntimeError("{} is missing or older than its sources in runtimes/c: run make -C runtimes/c "
                               "shared".format(path))
        library = ctypes.CDLL(path)
        library.sbif_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                            ctypes.POINTER(_CError)]
        library.sbif_model_load.restype = ctypes.c_int
        library.sbif_model_free.argtypes = [ctypes.c_void_p]
        library.sbif_model_free.restype = None
        library.sbif_status_name.argtypes = [ctypes.c_int]
        library.sbif_status_name.restype = ctypes.c_char_p
        self._library = library

    def verdict(self, path: str) -> Verdict:
        model = ctypes.c_void_p()
        error = _CError()
        status = self._library.sbif_model_load(path.encode(), ctypes.byref(model), ctypes.byref(error))
        if status == 0:
            self._library.sbif_model_free(model)
            return Verdict(LOADED)
        name = self._library.sbif_status_name(status).decode()
        return Verdict(name, error.message.decode("utf-8", "replace")[:MESSAGE_CHARS])


Reader = Tuple[str, Callable[[str], Verdict]]


def verdicts(readers: Sequence[Reader], path: str) -> List[Tuple[str, Verdict]]:
    """Every reader's verdict on one file, by reader name."""
    return [(name, read(path)) for name, read in readers]


def disagreement(results: Sequence[Tuple[str, Verdict]]) -> Optional[str]:
    """None when every reader reached the same outcome, else a report of each reader's verdict."""
    if len({verdict.outcome for _, verdict in results}) == 1:
        return None
    return "; ".join("{}: {}{}".format(name, verdict.outcome, " ({})".format(verdict.message) if verdict.message
                                       else "") for name, verdict in results)
