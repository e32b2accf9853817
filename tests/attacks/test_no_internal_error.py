"""Exit 2 ("internal error") is unreachable from input (issue #18): every hostile input of `hostile_inputs`, the
attack corpus of test_attacks.py, the reader-refusal corpus (conformance/malformed) and the differential fuzzers'
corpus (tests/fuzz/corpus, where present) go through the CLI (`sbif validate`, `sbif predict`, `sbif export`) and the
C `sbif-check`, and each ends with exit status 0 or 1, never 2, never a signal, never a time-out.

The CLI runs in-process in one child interpreter per group of inputs (so a thousand inputs cost seconds, not a
thousand interpreter starts), whose address space is capped (CHILD_MEMORY beyond its imports) to protect the
machine from an input that is not fixed yet: that input then shows as a MemoryError, i.e. exit 2. A child killed by
a signal or the time bound is restarted after the input it was running, which is reported.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import pytest

from tests.runtimes.conftest import c_build  # noqa: F401  (the fixture that builds runtimes/c with make)

from .hostile_inputs import C_BUILD, ROOT, clean_inputs, commands, hostile_files
from .sb2_like import Build, Global, dumps, make_model_files, model_data, model_parameters, write_pkl, write_zip

GiB = 1 << 30
#: Address space a child may use beyond its imports: far above any budget of test_budgets.py, only a safety net.
CHILD_MEMORY = 2 * GiB
#: Seconds one input may take in a child before it counts as a time-out (the budget test's bound for small inputs).
SECONDS_PER_INPUT = 60.0
MALFORMED = os.path.join(ROOT, "conformance", "malformed")
FUZZ_CORPUS = os.path.join(ROOT, "tests", "fuzz")
#: An observation of the reader-refusal corpus's base file (Box(3) float32).
BASE_OBSERVATION = "[[0.1, -0.2, 0.3]]"

#: The child: runs `sbif.cli.main` on each argv of a JSON list, appending one JSON line per input to the report file
#: before ("start") and after ("exit", with the status and the end of its stderr) each.
CHILD = r"""
import io, json, os, resource, sys
from contextlib import redirect_stderr, redirect_stdout
from sbif import cli
cli.build_parser()
size = [int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize")][0]
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[3]), size + int(sys.argv[3])))
report = open(sys.argv[2], "a", buffering=1)
for index, argv in enumerate(json.load(open(sys.argv[1]))):
    report.write(json.dumps({"start": index}) + "\n")
    error, output = io.StringIO(), io.StringIO()
    with redirect_stderr(error), redirect_stdout(output):
        try:
            status = cli.main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
    report.write(json.dumps({"exit": index, "status": status, "stderr": error.getvalue()[-2000:]}) + "\n")
"""


def run_cli_batch(argvs: List[List[str]]) -> Dict[int, Tuple[object, str]]:
    """index -> (exit status, or "signal N" / "time-out", and the end of stderr) for each argv run by `sbif.cli.main`
    in a capped child; an input running longer than SECONDS_PER_INPUT is killed, and after a child dies the next
    one starts after the input it died on. The report and the child's own stderr go to files (never a pipe that
    could fill while the child waits)."""
    results: Dict[int, Tuple[object, str]] = {}
    start = 0
    with tempfile.TemporaryDirectory() as directory:
        batch, report, errors = (os.path.join(directory, name) for name in ("batch.json", "report", "stderr"))
        while start < len(argvs):
            with open(batch, "w") as handle:
                json.dump(argvs[start:], handle)
            open(report, "w").close()
            environment = dict(os.environ, PYTHONPATH=ROOT, SBIF_BACKEND="numpy")
            environment.pop("SBIF_DEBUG", None)
            with open(errors, "w") as child_errors:
                process = subprocess.Popen([sys.executable, "-c", CHILD, batch, report, str(CHILD_MEMORY)], cwd=ROOT,
                                           env=environment, stdout=subprocess.DEVNULL, stderr=child_errors)
            running, since, timed_out = None, time.monotonic(), False
            while process.poll() is None:
                time.sleep(0.05)
                events = read_report(report)
                current = events[-1]["start"] if events and "start" in events[-1] else None
                if current != running:
                    running, since = current, time.monotonic()
                elif time.monotonic() - since > SECONDS_PER_INPUT:
                    process.kill()
                    process.wait()
                    timed_out = True
            running = None
            for event in read_report(report):
                if "start" in event:
                    running = start + event["start"]
                else:
                    results[start + event["exit"]] = (event["status"], event["stderr"])
                    running = None
            with open(errors) as handle:
                child_error = handle.read()[-2000:]
            if running is None:
                if len(results) < len(argvs):  # the child failed before its first input
                    raise AssertionError("the CLI child failed to start: " + child_error)
                break
            outcome = "time-out" if timed_out else "signal {}".format(-process.returncode) \
                if process.returncode < 0 else "exit {} of the child".format(process.returncode)
            results[running] = (outcome, child_error)
            start = running + 1
    return results


def read_report(path: str) -> List[Dict[str, object]]:
    """The complete lines of a child's report so far."""
    with open(path) as handle:
        return [json.loads(line) for line in handle.read().split("\n")[:-1]]


def assert_no_internal_error(argvs: List[List[str]], results: Dict[int, Tuple[object, str]]) -> None:
    failures = []
    for index, argv in enumerate(argvs):
        status, error = results[index]
        if status not in (0, 1) or "internal error" in error or "Traceback" in error:
            shown = " ".join(os.path.relpath(a, ROOT) if os.path.isabs(a) and a.startswith(ROOT) else
                             os.path.basename(a) if os.path.isabs(a) else a[:60] for a in argv)
            failures.append("{}: {} {}".format(shown, status, error.strip()[-300:]))
    assert not failures, "{} of {} inputs:\n".format(len(failures), len(argvs)) + "\n".join(failures)


def assert_sbif_check_exits_0_or_1(paths: List[str]) -> None:
    """`sbif-check` on every path (in one run; one by one when that run did not end with 0 or 1, to name the file)."""
    check = os.path.join(C_BUILD, "sbif-check")
    for group in ([paths] + [[path] for path in paths]):
        result = subprocess.run([check] + group, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                timeout=SECONDS_PER_INPUT * len(group))
        if result.returncode in (0, 1):
            if len(group) > 1:
                return
            continue
        assert len(group) > 1, "sbif-check {}: exit {}; {}".format(group[0], result.returncode,
                                                                    result.stderr.decode("utf-8", "replace")[-300:])


# -- the inputs ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace():
    with tempfile.TemporaryDirectory() as directory:
        yield directory


def split(argvs: List[List[str]]) -> Tuple[List[List[str]], List[str]]:
    """The CLI argvs (without the leading `sbif`) and the files given to `sbif-check`."""
    return [argv[1:] for argv in argvs if argv[0] == "sbif"], [argv[1] for argv in argvs if argv[0] == "sbif-check"]


@pytest.mark.parametrize("slow", [pytest.param(False, id="fast"), pytest.param(True, id="slow",
                                                                               marks=pytest.mark.slow)])
def test_hostile_inputs(slow, workspace, c_build):  # noqa: F811
    clean = clean_inputs(workspace)
    argvs = [argv for item in hostile_files() if item.slow == slow
             for argv in commands(item, item.make(workspace), clean)]
    cli, checked = split(argvs)
    assert_no_internal_error(cli, run_cli_batch(cli))
    assert_sbif_check_exits_0_or_1(checked)
    assert not glob.glob(os.path.join(workspace, "*.canary"))  # the SB3 code payloads' files: nothing ran


def sbif_corpus_argvs(paths: List[str]) -> List[List[str]]:
    return [argv for path in paths for argv in (["validate", path], ["predict", path, "--obs", BASE_OBSERVATION])]


def test_reader_refusal_corpus(c_build):  # noqa: F811
    """conformance/malformed: every file through validate, predict (an observation of the corpus's base) and
    sbif-check."""
    paths = sorted(glob.glob(os.path.join(MALFORMED, "*.sbif")))
    assert len(paths) > 70
    argvs = sbif_corpus_argvs(paths)
    assert_no_internal_error(argvs, run_cli_batch(argvs))
    assert_sbif_check_exits_0_or_1(paths)


@pytest.mark.slow
def test_fuzz_corpus(c_build):  # noqa: F811
    """The differential fuzzers' committed corpus and reproducers (tests/fuzz), where present."""
    paths = sorted(path for pattern in ("corpus/*", "reproducers/*.sbif")
                   for path in glob.glob(os.path.join(FUZZ_CORPUS, pattern)) if os.path.isfile(path))
    if not paths:
        pytest.skip("no fuzz corpus in tests/fuzz")
    argvs = sbif_corpus_argvs(paths)
    assert_no_internal_error(argvs, run_cli_batch(argvs))
    assert_sbif_check_exits_0_or_1(paths)


def attack_corpus(directory: str) -> List[str]:
    """The files test_attacks.py builds, where a file reaches the CLI: code payloads in every carrier, shape and
    opcode bombs, .npy bombs in parameters, BUILD on every shared global, garbage and truncated files."""
    from . import test_attacks as attacks

    paths = []
    for index, name in enumerate(attacks.PAYLOAD_NAMES):
        for carrier in attacks.CARRIERS:
            folder = os.path.join(directory, "payload{}_{}".format(index, carrier.replace(" ", "_")))
            os.makedirs(folder)
            paths.append(attacks.carry(attacks.payloads(os.path.join(folder, "canary"))[name][0], carrier, folder))
    data = model_data()
    params = model_parameters(data)
    for index, shape in enumerate([(10 ** 6, 10 ** 6), (2 ** 40, 2 ** 40, 2 ** 40), (-1, 8), (2 ** 63,),
                                   tuple([1] * 40), "8"]):
        paths.append(write_pkl(os.path.join(directory, "shape{}.pkl".format(index)), data,
                               {"model/pi/w:0": attacks.array_state(shape, "float64", b"\0" * 8)}))
    for index, (descr, shape) in enumerate([("<f4", (2 ** 40,)), ("<f8", (2 ** 33,)), ("|O", (1,)), ("<c8", (4,))]):
        inner = attacks.parameters_archive({name + ".npy": attacks.npy_bytes(descr, shape, b"\0" * 16)
                                            for name in params})
        paths.append(write_zip(os.path.join(directory, "npy{}.zip".format(index)), data, params,
                               {"parameters": inner}))
    for index, reference in enumerate(attacks.SHARED_GLOBALS + attacks.PER_LOAD_GLOBALS):
        for state_name, state in sorted(attacks.BUILD_STATES.items()):
            path = os.path.join(directory, "build{}_{}.pkl".format(index, state_name))
            with open(path, "wb") as handle:
                handle.write(dumps((dict(data, gamma=Build(Global(*reference), state)), params)))
            paths.append(path)
    for index, content in enumerate([b"", b"garbage", b"PK\x03\x04" + b"\xff" * 64, b"\x80\x04\x95" + b"\x00" * 40,
                                     bytes(range(256)) * 4, b"\x80\x05\x97.", b"(lp0\nI1\na.",
                                     b"\x80\x04}K\x01" + b"\x85" * 10 ** 6 + b"K\x02s.", b"\x80\x04" + b"(" * 100000]):
        path = os.path.join(directory, "garbage{}.pkl".format(index))
        with open(path, "wb") as handle:
            handle.write(content)
        paths.append(path)
    for kind, source in sorted(make_model_files(directory).items()):
        blob = open(source, "rb").read()
        for fraction in (0.01, 0.3, 0.5, 0.9, 0.999):
            path = os.path.join(directory, "cut{}_{}.{}".format(int(fraction * 1000), kind, kind.split("_")[0]))
            with open(path, "wb") as handle:
                handle.write(blob[:int(len(blob) * fraction)])
            paths.append(path)
    return paths


def test_attack_corpus(workspace):
    """test_attacks.py's files through `sbif export` (each is refused with exit 1; none is an internal error)."""
    folder = os.path.join(workspace, "attacks")
    os.makedirs(folder)
    paths = attack_corpus(folder)
    argvs = [["export", path, "-o", path + ".sbif"] for path in paths]
    results = run_cli_batch(argvs)
    assert_no_internal_error(argvs, results)
    assert all(status == 1 for status, _ in results.values()), [
        (os.path.basename(argv[1]), results[index]) for index, argv in enumerate(argvs) if results[index][0] != 1]
    assert not any(os.path.exists(os.path.join(os.path.dirname(path), "canary")) for path in paths)
