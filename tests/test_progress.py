"""Progress on long work (issue #19, item 3): `sbif.progress` (the line's format, its redraw and erasure, nesting,
quiet without a terminal or under --json), and the work that uses it: the numba kernel build's stages, the
conformance run, fuzz and mutants, recording a golden pack, and `make bench`. No test measures a duration: each
waits for what it expects to be drawn."""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import time
import types
import warnings

import pytest

from sbif import progress
from sbif.progress import Progress
from sbif.runtime.numba import aot as numba_aot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: `sbif` with progress lines from the first moment (DEFAULT_DELAY 0) and redrawn often, for runs shorter than the
#: usual delay
SBIF_WITHOUT_DELAY = ("import sys, sbif.progress as progress\n"
                      "progress.DEFAULT_DELAY, progress.REFRESH_SECONDS = 0.0, 0.002\n"
                      "from sbif.cli import main\n"
                      "sys.exit(main(sys.argv[1:]))\n")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def forced(monkeypatch):
    """Progress on whatever the stream (SBIF_PROGRESS=1), and not silenced by an earlier --json in this process;
    lines as wide as they come (COLUMNS)."""
    monkeypatch.setenv("SBIF_PROGRESS", "1")
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setattr(progress, "_silenced", False)


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    """Until `condition()` holds (the ticker thread draws on its own schedule); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened: " + what
        time.sleep(0.01)


def drawn_lines(text: str):
    """The distinct progress lines drawn on a stream, in order (each redraw starts with a carriage return)."""
    lines = []
    for part in text.replace("\n", "\r").split("\r"):
        part = part.rstrip()
        if part and (not lines or lines[-1] != part):
            lines.append(part)
    return lines


# -- the line ----------------------------------------------------------------------------------------------------
def test_the_line_says_what_how_far_what_now_and_how_long():
    task = Progress("conformance run", total=172, unit="checks", stream=io.StringIO())
    assert re.fullmatch(r"conformance run: 0/172 checks \(0%\), \d+ s", task.line())
    task.advance(37, "0 failing, ppo2_mlp.sbif::sampling")
    assert re.fullmatch(r"conformance run: 37/172 checks \(22%\), 0 failing, ppo2_mlp\.sbif::sampling, \d+ s",
                        task.line())
    counted = Progress("fuzz", stream=io.StringIO(), unit="checks")
    counted.advance(5)
    assert re.fullmatch(r"fuzz: 5 checks, \d+ s", counted.line())
    plain = Progress("building", stream=io.StringIO())
    plain.doing("linking the module")
    assert re.fullmatch(r"building: linking the module, \d+ s", plain.line())


def test_a_narrow_line_keeps_the_count_and_the_elapsed_time():
    """The detail is cut first (to DETAIL_KEPT characters), then the task's name, then the rest of the detail."""
    task = Progress("building SBIF's numba kernels (once, cached in ~/.cache/sbif)", total=3, unit="steps",
                    stream=io.StringIO())
    task.advance(1, "numba: execute 1/3, kernel 17 dense_panels and a long tail of words")
    whole = task.line()
    for width in (100, 79, 60, 40, 25):
        text = task.line(width)
        assert len(text) <= width, (width, text)
        assert "1/3 steps (33%), " in text and re.search(r", \d+ s$", text), text
    assert task.line(len(whole)) == whole
    assert task.line(79).startswith("building S...: ") and "numba: execute 1/3, kernel 17" in task.line(79)


def test_a_terminal_without_a_size_gets_a_usable_width(monkeypatch):
    """A pseudo-terminal may report 0 columns (`script`): the line then had room for the count alone."""
    class Sizeless(Terminal):
        def fileno(self) -> int:
            return 2

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(progress.os, "get_terminal_size", lambda descriptor: os.terminal_size((0, 0)))
    assert progress._terminal_width(Sizeless()) == 100
    monkeypatch.setattr(progress.os, "get_terminal_size", lambda descriptor: os.terminal_size((132, 40)))
    assert progress._terminal_width(Sizeless()) == 132
    monkeypatch.setenv("COLUMNS", "60")
    assert progress._terminal_width(Sizeless()) == 60


# -- drawing and erasing ------------------------------------------------------------------------------------------
def test_the_line_is_redrawn_in_place_and_erased_with_a_summary(forced):
    stream = io.StringIO()
    with Progress("recording", total=3, unit="checks", delay=0.0, stream=stream) as task:
        wait_for(lambda: "recording: 0/3 checks" in stream.getvalue(), "the first line")
        task.advance(detail="sampling")
        wait_for(lambda: "1/3 checks (33%), sampling" in stream.getvalue(), "the redraw")
        task.close("recorded 3 checks")
    text = stream.getvalue()
    assert text.startswith("\rrecording: 0/3 checks (0%), ")
    assert "\rrecording: 1/3 checks (33%), sampling, " in text
    erased = text.rindex("\r" + " " * len(drawn_lines(text)[-2]))  # blanked as wide as the last line drawn
    assert text[erased:].endswith("\rrecorded 3 checks\n")
    assert drawn_lines(text)[-1] == "recorded 3 checks"


def test_work_shorter_than_the_delay_shows_nothing(forced):
    stream = io.StringIO()
    with Progress("loading", delay=60.0, stream=stream) as task:
        task.advance(detail="quick")
        task.close("done loading")  # a summary of work never shown is not printed either
    assert stream.getvalue() == ""


def test_a_nested_task_replaces_the_line_until_it_ends(forced):
    """The numba build inside a conformance run: one line at a time, the outer one back when the inner ends."""
    stream = Terminal()
    with Progress("outer", delay=0.0, stream=stream) as outer:
        outer.doing("before")
        wait_for(lambda: "outer: before" in stream.getvalue(), "the outer line")
        with Progress("inner", delay=0.0, stream=stream) as inner:
            inner.doing("compiling")
            wait_for(lambda: "inner: compiling" in stream.getvalue(), "the inner line")
            outer.doing("not drawn while the inner task runs")
            time.sleep(3 * progress.REFRESH_SECONDS)  # (refreshes that must not draw the outer line)
        outer.doing("after")
        wait_for(lambda: "outer: after" in stream.getvalue(), "the outer line again")
    lines = drawn_lines(stream.getvalue())
    assert not any("not drawn" in line for line in lines), lines
    assert [task for task, _ in itertools.groupby(line.split(":")[0] for line in lines)] == [
        "outer", "inner", "outer"], lines


def test_echo_prints_above_the_line(forced):
    stream = io.StringIO()
    with Progress("bench", delay=0.0, stream=stream):
        wait_for(lambda: "bench:" in stream.getvalue(), "the line")
        progress.echo("== ppo2_mlp", stream)
        wait_for(lambda: stream.getvalue().count("bench:") >= 2, "the line redrawn below the message")
    text = stream.getvalue()
    before, after = text.split("== ppo2_mlp\n")
    assert before.endswith("\r") and before.strip().startswith("bench:")  # the line was blanked first
    assert "bench:" in after


# -- when it is quiet ---------------------------------------------------------------------------------------------
def test_quiet_without_a_terminal_and_when_told(monkeypatch):
    monkeypatch.delenv("SBIF_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "_silenced", False)
    assert progress.enabled(Terminal()) and not progress.enabled(io.StringIO())
    pipe = io.StringIO()
    with Progress("piped", delay=0.0, stream=pipe) as task:
        assert not task.active
        time.sleep(2 * progress.REFRESH_SECONDS)
    assert pipe.getvalue() == ""
    monkeypatch.setenv("SBIF_PROGRESS", "0")
    assert not progress.enabled(Terminal())
    monkeypatch.setenv("SBIF_PROGRESS", "1")
    assert progress.enabled(io.StringIO())
    progress.silence()
    assert not progress.enabled(Terminal())  # --json wins even over SBIF_PROGRESS=1


def run_sbif(*arguments: str) -> subprocess.CompletedProcess:
    """`sbif ARGUMENTS` with progress forced on (SBIF_WITHOUT_DELAY); its output decoded with carriage returns
    kept (text mode would turn them into newlines)."""
    environment = dict(os.environ, SBIF_PROGRESS="1", SBIF_BACKEND="numpy", COLUMNS="300")
    finished = subprocess.run([sys.executable, "-c", SBIF_WITHOUT_DELAY] + list(arguments), cwd=ROOT,
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    finished.stdout, finished.stderr = finished.stdout.decode("utf-8"), finished.stderr.decode("utf-8")
    return finished


def test_conformance_run_shows_checks_done_and_keeps_its_table():
    finished = run_sbif("conformance", "run", "-k", "zoo_")
    assert finished.returncode == 0, finished.stderr
    total = int(re.search(r"^(\d+) checks: ", finished.stdout, re.MULTILINE).group(1))  # the table's count
    assert total > 40 and "zoo_ppo2_cartpole_bullet.sbif" in finished.stdout
    lines = drawn_lines(finished.stderr)
    counted = [line for line in lines if re.match(r"conformance run: \d+/{} checks \(\d+%\), 0 failing, "
                                                  r"\S*zoo_\S*::\w+, \d+ s$".format(total), line)]
    assert counted, lines
    assert finished.stderr.endswith("\r")  # the line is erased at the end: the table follows on stdout


def test_json_output_has_no_progress_lines():
    finished = run_sbif("conformance", "run", "-k", "demo_ppo2_cartpole", "--json")
    assert finished.returncode == 0, finished.stderr
    assert "conformance run" not in finished.stderr and "\r" not in finished.stderr
    assert json.loads(finished.stdout)["ok"] is True


def test_conformance_fuzz_and_mutants_show_their_progress():
    pytest.importorskip("hypothesis")
    fuzz = run_sbif("conformance", "fuzz", "--families", "mlp", "--examples", "3", "--case",
                    os.devnull)
    assert fuzz.returncode == 0, fuzz.stderr
    assert any(re.match(r"conformance fuzz \(3 examples at most\): \d+ checks, 0 failing, mlp-", line)
               for line in drawn_lines(fuzz.stderr)), fuzz.stderr
    mutants = run_sbif("conformance", "mutants", "softmax_no_max_shift", "--examples", "5")
    assert mutants.returncode == 0, mutants.stderr
    assert any(re.match(r"conformance mutants: 0/1 mutants \(0%\), 0 missed, softmax_no_max_shift, ", line)
               for line in drawn_lines(mutants.stderr)), mutants.stderr


def test_an_unknown_mutant_is_a_one_line_error():
    """Was a KeyError reported as an internal error (exit 2)."""
    finished = run_sbif("conformance", "mutants", "no_such_mutant")
    assert finished.returncode == 1
    assert finished.stderr.strip() == ("sbif conformance: error: no mutant named 'no_such_mutant' (--list shows "
                                       "them)")


# -- checks, in process -------------------------------------------------------------------------------------------
def test_check_progress_counts_the_checks_of_run_suite_and_run_check(forced, monkeypatch):
    """run_suite plans first (the total), then reports each check; fuzz's run_check calls are counted too."""
    from conformance.protocol import PythonRuntime
    from conformance.runner import CheckProgress, CheckResult, OracleSource, run_check, run_suite

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "DEFAULT_DELAY", 0.0)
    with CheckProgress("checking", after_failure="shrinking it") as watcher:
        report = run_suite([OracleSource([], PythonRuntime())], PythonRuntime(), checks=["reader_refusal"])
        assert (watcher.line.done, watcher.line.total) == (1, 1)
        assert report.results[0].status == "pass"
        watcher.finished(CheckResult("model.sbif", "sampling", "fail"))
        assert run_check("model.sbif", "deterministic", iter(()), None, PythonRuntime(), None).status == "skip"
        assert watcher.line.done == 3 and watcher.failing == 1
        wait_for(lambda: "checking: 3/1 checks" in stream.getvalue(), "the counted line")
    assert "1 failing, shrinking it, model.sbif::deterministic" in stream.getvalue()


def test_recording_a_pack_shows_checks_and_probes(forced, tmp_path):
    from conformance.protocol import PythonRuntime
    from conformance.record import record
    from tests.factories import make_sbif

    class Recorded(Progress):
        """A progress line that keeps every detail it was told."""

        told: list = []

        def doing(self, detail):
            self.told.append(detail)
            super().doing(detail)

    path = str(tmp_path / "model.sbif")
    make_sbif("box_finite", "discrete", "shared", seed=3).write(path)
    stream = io.StringIO()
    with Recorded("recording a golden pack", delay=0.0, stream=stream) as line:
        pack, skipped = record(path, PythonRuntime(), str(tmp_path / "model.golden"),
                               checks=["deterministic", "recurrent_sequence"], progress=line)
        assert (line.done, line.total, line.unit) == (2, 2, "checks")
        wait_for(lambda: "recording a golden pack: 2/2 checks (100%), writing the pack, " in stream.getvalue(),
                 "the last count")
    assert os.path.exists(pack) and "recurrent_sequence" in skipped
    probes = [detail for detail in line.told if detail.startswith("deterministic: ")]
    assert probes[0] == "deterministic: 0 probes recorded" and len(probes) >= 3, line.told
    assert probes[-1] == "deterministic: {} probes recorded".format(len(probes) - 1)


# -- the numba kernel build ---------------------------------------------------------------------------------------
def test_the_build_stages_name_the_entry_point_and_the_kernel():
    """From numba's compiler events (synthetic here): entry point k/N and the kernel it is compiling, LLVM between
    and after the passes, then the C compiler and the linker."""
    told = []
    stages = numba_aot.CompilerStages("sbif.runtime.numba.kernels", ["execute", "execute_one"], told.append)
    kernel = {"module": "sbif.runtime.numba.kernels"}
    stages.pass_started({"qualname": "execute", "module": "<dynamic>"})  # the entry point's wrapper
    stages.pass_started(dict(kernel, qualname="execute"))  # the kernel it calls has the same name
    stages.pass_started(dict(kernel, qualname="dense_panels"))
    stages.pass_started({"qualname": "impl", "module": "numba.np.arraymath"})  # numba's own: not named
    stages.pass_ended()
    stages.pass_ended()
    stages.pass_ended()
    stages.pass_ended()
    stages.pass_started({"qualname": "execute_one", "module": "<dynamic>"})
    stages.pass_started(dict(kernel, qualname="dense_panels"))
    stages.pass_ended()
    stages.pass_ended()

    class Toolchain:
        def compile_objects(self, *arguments):
            return ["glue.o"]

        def link_shared(self, *arguments):
            return None

    class Compiler:
        _toolchain = Toolchain()

    compiler = Compiler()
    stages.watch_toolchain(compiler)
    assert compiler._toolchain.compile_objects("glue.c") == ["glue.o"]
    compiler._toolchain.link_shared("module.so")
    assert told == ["numba: execute 1/2",
                    "numba: execute 1/2, kernel 1 execute",
                    "numba: execute 1/2, kernel 2 dense_panels",
                    "numba: execute 1/2, kernel 1 execute",
                    "numba: execute 1/2",
                    numba_aot.CompilerStages.LLVM,
                    "numba: execute_one 2/2",
                    "numba: execute_one 2/2, kernel 2 dense_panels",
                    "numba: execute_one 2/2",
                    numba_aot.CompilerStages.LLVM,
                    "C compiler: the module's glue",
                    "linking the module"]


def test_the_build_stages_follow_numbas_real_compiler_events():
    """numba's event API as installed: compiling a jitted function of this module names it."""
    numba = pytest.importorskip("numba")
    told = []

    @numba.njit
    def doubled(x):
        return x * 2.0

    with numba_aot.CompilerStages.observing(__name__, [], told.append):
        assert doubled(2.0) == 4.0
    assert told[0] == "numba: kernel 1 test_the_build_stages_follow_numbas_real_compiler_events.<locals>.doubled"
    assert told[-1] == numba_aot.CompilerStages.LLVM


@pytest.fixture
def fake_builder(monkeypatch, tmp_path):
    """`build()`'s child replaced by a script (as sys.executable) that prints `lines` and exits with `status`."""
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path / "cache"))

    def install(lines, status=0, error="", sleep=0):
        script = tmp_path / "python"
        script.write_text("#!/bin/sh\n" + "".join("echo '{}'\n".format(line) for line in lines)
                          + ("exec sleep {}\n".format(sleep) if sleep else "")
                          + ("echo '{}' >&2\n".format(error) if error else "") + "exit {}\n".format(status))
        script.chmod(0o755)
        monkeypatch.setattr(sys, "executable", str(script))
    return install


def test_the_parent_follows_the_childs_stages(fake_builder):
    fake_builder(["gcc chatter that is not JSON", '{"stage": "importing numba"}', "[1, 2]",
                  '{"stage": "numba: execute 1/3, kernel 4 softmax"}', '{"path": "/cache/sbif_kernels_x.so"}'])
    told = []
    assert numba_aot.build(told.append) == "/cache/sbif_kernels_x.so"
    assert told == ["importing numba", "numba: execute 1/3, kernel 4 softmax"]


def test_a_failed_or_hung_build_is_told_in_one_line(fake_builder, monkeypatch):
    fake_builder(['{"stage": "importing numba"}'], status=1, error="error: no C compiler found")
    with pytest.raises(numba_aot.KernelsUnavailable, match=r"^building the compiled kernels failed: error: no C "
                                                           r"compiler found$"):
        numba_aot.build()
    fake_builder(['{"stage": "importing numba"}'], sleep=30)
    monkeypatch.setattr(numba_aot, "BUILD_TIMEOUT_SECONDS", 0.5)
    with pytest.raises(numba_aot.KernelsUnavailable, match=r"^building the compiled kernels took over 0.5 s$"):
        numba_aot.build()


def test_a_build_on_a_terminal_shows_its_stage_then_where_the_module_went(forced, monkeypatch, capsys):
    monkeypatch.setattr(progress, "DEFAULT_DELAY", 0.0)
    monkeypatch.setenv("SBIF_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "sbif-test"))

    def work(on_stage):
        on_stage("numba: execute 1/3, kernel 2 softmax")
        wait_for(lambda: "kernel 2 softmax, " in sys.stderr.getvalue(), "the stage drawn")
        return os.path.join(numba_aot.cache_directory(), "sbif_kernels_x.so")

    def no_announcement(message):
        raise AssertionError("a terminal gets the progress line, not the announcement")

    assert numba_aot.announced(work, no_announcement).endswith("sbif_kernels_x.so")
    lines = drawn_lines(capsys.readouterr().err)
    assert any(re.fullmatch(r"building SBIF's numba kernels \(once, cached in ~/\.cache/sbif-test\): numba: "
                            r"execute 1/3, kernel 2 softmax, \d+ s", line) for line in lines), lines
    assert re.fullmatch(r"built SBIF's numba kernels in \d+ s: ~/\.cache/sbif-test/sbif_kernels_x\.so \(later "
                        r"processes load it in a millisecond\)", lines[-1]), lines


def test_a_build_without_a_terminal_is_announced_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("SBIF_PROGRESS", raising=False)
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    announced = []

    @contextlib.contextmanager
    def announce(message):
        announced.append(message)
        yield

    assert numba_aot.announced(lambda on_stage: "module.so", announce) == "module.so"
    assert announced == ["building SBIF's numba kernels for this machine (once: usually one to two minutes on 2 "
                         "cores; cached in {}, from where later processes and other models load them in a "
                         "millisecond)".format(tmp_path)]
    assert capsys.readouterr().err == ""


def test_the_build_command_announces_itself_or_reports_its_stages(monkeypatch, tmp_path, capsys):
    """`python -m sbif.runtime.numba.aot`: in a log, the announcement, then the path; as build()'s child
    (--stages), each stage as a JSON line before the path."""
    monkeypatch.delenv("SBIF_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "_silenced", False)  # (restored after --json silences this process)
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))

    def build_here(directory, on_stage=None):
        (on_stage or numba_aot._untold)("linking the module")
        return os.path.join(directory, "sbif_kernels_x.so")

    monkeypatch.setattr(numba_aot, "_build_here", build_here)
    assert numba_aot.main([]) == 0
    captured = capsys.readouterr()
    assert captured.err == numba_aot.announcement() + "\n"
    assert captured.out == os.path.join(str(tmp_path), "sbif_kernels_x.so") + "\n"
    assert numba_aot.main(["--json", "--stages"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line) for line in captured.out.splitlines()] == [
        {"stage": "linking the module"}, {"path": os.path.join(str(tmp_path), "sbif_kernels_x.so")}]
    assert captured.err == ""


@pytest.fixture
def fake_module_build(monkeypatch):
    """The backend's first load with no module yet: numba_aot.build replaced by `install(build)`, and the module
    it "builds" found by the second numba_aot.load()."""
    built = types.SimpleNamespace(execute=print, execute_one=print, im2col=print, run_lane=print, serve=print,
                                  publish=print, wait_change=print,
                                  __file__=os.path.join(os.sep, "cache", "sbif_kernels_x.so"))
    loads = iter([None, built])
    monkeypatch.setattr(numba_aot, "load", lambda: next(loads))

    def install(build):
        monkeypatch.setattr(numba_aot, "build", build)
    return install


def test_the_backends_first_load_shows_the_build_on_a_terminal(forced, monkeypatch, capsys, fake_module_build):
    from sbif.runtime.numba import backend as numba_backend

    monkeypatch.setattr(progress, "DEFAULT_DELAY", 0.0)

    def build(on_stage=None):
        on_stage("linking the module")
        wait_for(lambda: "linking the module, " in sys.stderr.getvalue(), "the stage drawn")
        return os.path.join(os.sep, "cache", "sbif_kernels_x.so")

    fake_module_build(build)
    assert numba_backend._load_kernels().origin == os.path.join(os.sep, "cache", "sbif_kernels_x.so")
    lines = drawn_lines(capsys.readouterr().err)
    assert any(line.startswith("building SBIF's numba kernels (once, cached in ") for line in lines), lines
    assert lines[-1].startswith("built SBIF's numba kernels in "), lines


def test_the_backends_first_load_elsewhere_warns_once_with_time_and_place(monkeypatch, tmp_path,
                                                                         fake_module_build):
    """Without a terminal: the CompileNotice (after COMPILE_NOTICE_SECONDS, as a load from the cache is quiet)
    says how long a build usually takes and where it is kept."""
    from sbif.runtime.numba import backend as numba_backend

    monkeypatch.delenv("SBIF_PROGRESS", raising=False)
    monkeypatch.setenv("SBIF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numba_backend, "COMPILE_NOTICE_SECONDS", 0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def build(on_stage=None):
            assert on_stage is None
            wait_for(lambda: caught, "the notice")
            return "module.so"

        fake_module_build(build)
        numba_backend._load_kernels()
    [notice] = [warning for warning in caught if warning.category is numba_backend.CompileNotice]
    assert str(notice.message) == numba_aot.announcement()
    assert "usually one to two minutes" in str(notice.message) and str(tmp_path) in str(notice.message)


def test_the_jit_fallback_shows_its_compilation_on_a_terminal(forced, monkeypatch, capsys):
    """Without a C compiler numba's JIT compiles the kernels in the process (about a minute, once)."""
    pytest.importorskip("numba")
    from sbif.runtime.numba import backend as numba_backend

    monkeypatch.setattr(progress, "DEFAULT_DELAY", 0.0)

    def execute():
        wait_for(lambda: "with numba's JIT" in sys.stderr.getvalue(), "the line")

    assert numba_backend._compiled(execute, ()) is execute
    assert any(re.fullmatch(r"compiling SBIF's numba kernels of execute with numba's JIT \(once: numba caches "
                            r"them\): \d+ s", line) for line in drawn_lines(capsys.readouterr().err))


# -- make bench ---------------------------------------------------------------------------------------------------
def test_the_benchmark_line_names_the_model_its_step_and_the_runtime(forced, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import run as bench

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "DEFAULT_DELAY", 0.0)
    assert bench.child_environment()["SBIF_PROGRESS"] == "0"  # the workers share the terminal: no line of theirs
    with bench.Steps(["ppo2_mlp", "sac_mlp"], bench.QUICK) as step:
        step.start("measuring", "sac_mlp")
        step.doing("round 1/1, numba")
        step.done()
        wait_for(lambda: "make bench: 1/7 steps" in stream.getvalue(), "the line")
        bench.log("== sac_mlp")
    assert "== sac_mlp\n" in stream.getvalue()
    assert any(re.fullmatch(r"make bench: 1/7 steps \(14%\), sac_mlp \(2/2\): measuring: round 1/1, numba, \d+ s",
                            line) for line in drawn_lines(stream.getvalue())), stream.getvalue()
