"""The numba backend's compiled kernels as an extension module, built once per machine, imported without numba.

A process that runs the interpreter through numba's JIT pays about a second before its first action even when
numba's disk cache is warm: `import numba` and the set-up of its compilation target, before any cached code loads.
So the interpreter's entry points (`kernels.execute`, `execute_one`, `im2col`) are compiled ahead of time
with numba's `pycc` into a CPython extension module, for this CPU, and kept in a cache directory. Later processes
import that module in about a millisecond and never import numba. The same LLVM code is generated as by the JIT,
so results are bit-identical to it.

The module's name is a digest of everything its machine code depends on: the kernels' sources (`cache.SOURCES`),
the Python and NumPy ABI, the numba and llvmlite installed, and the CPU (a module built for one CPU's instructions
never loads on another). A build runs in a child process (numba's compiler and the C compiler's output stay out of
the caller's process), writes into a temporary directory and renames the module into place, so concurrent builds are
harmless.
A build needs a C compiler and Python's headers; without them, `KernelsUnavailable` says why and the backend uses
numba's JIT instead.

A build takes one to two minutes, so it is told as it runs (`announced`): on a terminal, a progress line with the
stage the compiler is in (numba typing and lowering each kernel, LLVM generating the machine code, the C compiler
and linker) and the elapsed time; elsewhere one line saying what, how long and where. The child reports its stages
to the parent as JSON lines (`--stages`), from numba's compiler events.

    python -m sbif.runtime.numba.aot [--json]    build (or find) this machine's module and print its path
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from types import ModuleType
from typing import IO, Any, Callable, ContextManager, Iterator, List, Optional, Sequence, Tuple

from ... import progress
from ...errors import SbifError
from .cache import CACHE_ENV, DIRECTORY, EXPORTS, cache_directory, module_name

#: a build that takes longer than this has hung (it takes one to two minutes)
BUILD_TIMEOUT_SECONDS = 1800
#: how long a build usually takes, for the messages that announce one
USUAL_BUILD_TIME = "one to two minutes on 2 cores"
#: a callable told each stage of a build as it begins (a line of text)
StageReport = Callable[[str], None]


class KernelsUnavailable(SbifError):
    """The extension module cannot be built or loaded here (the message says why)."""


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


def build(on_stage: Optional[StageReport] = None) -> str:
    """Build this machine's module in a child process (one to two minutes) and return its path; `on_stage` is told
    each stage the child reports (`CompilerStages`). Raises KernelsUnavailable with the child's last words when it
    fails (no C compiler, no Python headers, no pycc)."""
    directory = cache_directory()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise KernelsUnavailable("cannot create the kernel cache directory {} ({}); set {} to a writable "
                                 "directory".format(directory, exc.strerror, CACHE_ENV)) from None
    package_root = os.path.dirname(os.path.dirname(DIRECTORY))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_root] + [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]))
    environment[CACHE_ENV] = directory
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty compiler cannot block the child
        child = subprocess.Popen([sys.executable, "-m", "sbif.runtime.numba.aot", "--json", "--stages"],
                                 env=environment, stdout=subprocess.PIPE, stderr=errors)
        timed_out = threading.Event()

        def give_up() -> None:
            timed_out.set()
            child.kill()

        watchdog = threading.Timer(BUILD_TIMEOUT_SECONDS, give_up)
        watchdog.daemon = True
        watchdog.start()
        try:
            path = _follow(child.stdout, on_stage)
            returncode = child.wait()
        finally:
            watchdog.cancel()
            if child.poll() is None:  # interrupted (Ctrl-C): the build does not outlive its caller
                child.kill()
                child.wait()
            child.stdout.close()
        if timed_out.is_set():
            raise KernelsUnavailable("building the compiled kernels took over {} s".format(BUILD_TIMEOUT_SECONDS))
        errors.seek(0)
        words = errors.read().decode("utf-8", "replace").strip().splitlines() or ["(no output)"]
    if returncode != 0 or path is None:
        raise KernelsUnavailable("building the compiled kernels failed: {}".format(words[-1]))
    return path


def _follow(lines: IO[bytes], on_stage: Optional[StageReport]) -> Optional[str]:
    """Read the child's JSON lines to its end: each {"stage": ...} goes to `on_stage`, and the last {"path": ...}
    is returned (lines that are not ours, e.g. a compiler's chatter, are passed over)."""
    path = None
    for raw in lines:
        try:
            message = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if "stage" in message and on_stage is not None:
            on_stage(str(message["stage"]))
        if isinstance(message.get("path"), str):
            path = message["path"]
    return path


def announced(work: Callable[[Optional[StageReport]], str],
              announce: Callable[[str], ContextManager[Any]]) -> str:
    """Run a build (`work(on_stage)`, returning the module's path) told to the user: on a terminal a progress line
    with the build's stage and elapsed time, then a line saying where the module went; elsewhere (logs, CI,
    `--json`) `announce(announcement())` wraps it: the backend's `CompileNotice`, the command line's plain line."""
    if not progress.enabled():
        with announce(announcement()):
            return work(None)
    with progress.Progress("building SBIF's numba kernels (once, cached in {})".format(
            _shown_path(cache_directory()))) as line:
        path = work(line.doing)
        line.close("built SBIF's numba kernels in {:.0f} s: {} (later processes load it in a millisecond)".format(
            line.elapsed(), _shown_path(path)))
    return path


def announcement() -> str:
    """One line announcing a build where no progress line is shown: what, how long it usually takes, and where
    the result is kept."""
    return ("building SBIF's numba kernels for this machine (once: usually {}; cached in {}, from where later "
            "processes and other models load them in a millisecond)".format(USUAL_BUILD_TIME,
                                                                          _shown_path(cache_directory())))


def _shown_path(path: str) -> str:
    """`path` as a user would type it: the home directory as ~."""
    home = os.path.expanduser("~")
    if home not in ("", "/", "~") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home):]
    return path


def _build_here(directory: str, on_stage: Optional[StageReport] = None) -> str:
    """The build itself (in the child): numba's pycc compiles the entry points for this CPU into a temporary
    directory, whose module is then renamed into place. `on_stage` is told each stage (`CompilerStages`)."""
    import warnings

    on_stage = on_stage or _untold

    on_stage("importing numba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending deprecation: the fallback is the JIT
        from numba.pycc import CC
    from . import kernels
    from .intrinsics import without_gil

    target = module_path(directory)
    name = module_name()
    with tempfile.TemporaryDirectory(prefix=name + ".", dir=directory) as work, \
            CompilerStages.observing(kernels.__name__, list(EXPORTS), on_stage) as stages:
        try:
            compiler = CC(name)  # (it looks for the C compiler here)
            compiler.output_dir = work
            compiler.target_cpu = "host"
            compiler.verbose = False
            for entry, signature in EXPORTS.items():
                compiler.export(entry, signature)(without_gil(getattr(kernels, entry)))
            stages.watch_toolchain(compiler)
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


def _untold(stage: str) -> None:
    """A build's stages, where nobody is told them."""


class CompilerStages:
    """Which stage a build (or the backend's JIT fallback) is in, told to `on_stage` as it changes, from what can
    be observed from outside numba: its compiler's events (one per pass of each function it types and lowers: the
    entry points, and SBIF's kernels they call, counted and named; kernels in numba's disk cache need no passes)
    and the two calls pycc makes to the C toolchain. Work outside both is LLVM optimizing the module and generating
    its machine code. Best effort: a numba without these hooks builds the same module with fewer stages told."""

    LLVM = "LLVM: the machine code for this CPU"

    def __init__(self, kernels_module: str, entry_points: Sequence[str], on_stage: StageReport):
        self.kernels_module, self.entry_points, self.on_stage = kernels_module, list(entry_points), on_stage
        self.kernels: List[str] = []  # SBIF's kernels compiled so far, in order
        #: whose passes are running, outermost first: ("entry point" or "kernel", name), None for numba's own
        self.passes: List[Optional[Tuple[str, str]]] = []
        self.told = ""

    @classmethod
    @contextlib.contextmanager
    def observing(cls, kernels_module: str, entry_points: Sequence[str],
                  on_stage: StageReport) -> Iterator["CompilerStages"]:
        """Listen to numba's compiler for the duration of the block."""
        stages = cls(kernels_module, entry_points, on_stage)
        try:
            from numba.core import event
        except ImportError:
            yield stages
            return

        class Listener(event.Listener):  # type: ignore[misc, valid-type]
            def on_start(self, happened: Any) -> None:
                stages.pass_started(happened.data)

            def on_end(self, happened: Any) -> None:
                stages.pass_ended()

        listener = Listener()
        event.register("numba:run_pass", listener)
        try:
            yield stages
        finally:
            event.unregister("numba:run_pass", listener)

    def pass_started(self, details: Any) -> None:
        """A numba compiler pass begins on a function: an entry point, one of SBIF's kernels, or numba's own."""
        details = details if isinstance(details, dict) else {}
        name = details.get("qualname")
        if details.get("module") == self.kernels_module:  # (the entry points call kernels of the same names)
            self.passes.append(("kernel", name))
            if name not in self.kernels:
                self.kernels.append(name)
        else:
            self.passes.append(("entry point", name) if name in self.entry_points else None)
        self._tell_current()

    def pass_ended(self) -> None:
        """A pass ends: the function compiling it is compiling again, or, after the passes of an entry point, LLVM
        does the work."""
        if self.passes:
            self.passes.pop()
        self._tell_current()

    def _tell_current(self) -> None:
        ours = [function for function in self.passes if function is not None]
        if not self.passes:
            self._tell(self.LLVM)
            return
        if not ours:
            return
        parts = []
        if ours[0][0] == "entry point":
            name = ours[0][1]
            parts.append("{} {}/{}".format(name, self.entry_points.index(name) + 1, len(self.entry_points)))
        if ours[-1][0] == "kernel":
            name = ours[-1][1]
            parts.append("kernel {} {}".format(self.kernels.index(name) + 1, name))
        self._tell("numba: " + ", ".join(parts))

    def watch_toolchain(self, compiler: Any) -> None:
        """Tell the C compiler's and the linker's turns (pycc's toolchain: compile_objects, link_shared)."""
        toolchain = getattr(compiler, "_toolchain", None)
        for method, stage in (("compile_objects", "C compiler: the module's glue"),
                              ("link_shared", "linking the module")):
            original = getattr(toolchain, method, None)
            if callable(original):
                setattr(toolchain, method, self._announcing(original, stage))

    def _announcing(self, function: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def announced_call(*arguments: Any, **keywords: Any) -> Any:
            self._tell(stage)
            return function(*arguments, **keywords)
        return announced_call

    def _tell(self, stage: str) -> None:
        """`on_stage(stage)` when the stage changes (a function's passes follow each other by the hundred)."""
        if stage != self.told:
            self.told = stage
            self.on_stage(stage)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sbif.runtime.numba.aot", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the numba backend's compiled kernels for this machine (once: one to two minutes), or "
                    "find them built, and print the module's path. The backend does this on first use; run it "
                    "ahead of time, e.g. when building a container image.",
        epilog="examples:\n  python -m sbif.runtime.numba.aot\n"
               "  SBIF_CACHE_DIR=/opt/sbif-cache python -m sbif.runtime.numba.aot --json")
    parser.add_argument("--json", action="store_true", help='print {"path": ...} instead of the bare path')
    parser.add_argument("--stages", action="store_true", help=argparse.SUPPRESS)  # build()'s child: JSON lines
    arguments = parser.parse_args(argv)
    if arguments.json:
        progress.silence()  # as every --json command: output for programs, no progress line
    path = module_path()
    try:
        if not os.path.exists(path):
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            if arguments.stages:
                path = _build_here(directory, _stage_line)
            else:
                path = announced(lambda on_stage: _build_here(directory, on_stage), _said_first)
    except KernelsUnavailable as exc:
        print("error: {}".format(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # numba's and the C compiler's own errors, told in one line (build() reports it)
        print("error: {}: {}".format(type(exc).__name__, " ".join(str(exc).split()) or "(no message)"),
              file=sys.stderr)
        return 1
    print(json.dumps({"path": path}) if arguments.json else path)
    return 0


def _stage_line(stage: str) -> None:
    """The child's report of a stage to `build()`: a JSON line on standard output."""
    print(json.dumps({"stage": stage}), flush=True)


@contextlib.contextmanager
def _said_first(message: str) -> Iterator[None]:
    """The command line's announcement where no progress line is shown: `message` on stderr, then the work."""
    print(message, file=sys.stderr, flush=True)
    yield


if __name__ == "__main__":
    sys.exit(main())
