"""The JavaScript runtime in a real browser: the golden packs (run and predict) and the reader-refusal corpus through
the browser bridge (runtimes/js/browser/sbif-browser-protocol.js: the library in headless Chromium, driven by
playwright-core), and the Playwright tests of tests/browser (`node --test`).

`make browser` installs Chromium (Debian's) and playwright-core; `make test` and `make check` do it first. In CI
these tests always run; elsewhere they skip only on a machine without /usr/bin/chromium."""
import os
import subprocess

import pytest

from conformance.data import MALFORMED_FILES, shipped
from conformance.golden import GoldenSource
from conformance.malformed import read_manifest
from conformance.protocol import ProcessRuntime
from conformance.runner import KnownFailures, OracleSource, run_suite

from .conftest import GOLDEN, KNOWN_FAILURES, NODE, ROOT

#: what they check is JavaScript in Chromium, the same under either Python: the modern environment runs them, once
pytestmark = pytest.mark.javascript

CHROMIUM = "/usr/bin/chromium"
BROWSER_TESTS = os.path.join(ROOT, "tests", "browser")
BRIDGE = [NODE or "node", os.path.join(ROOT, "runtimes", "js", "browser", "sbif-browser-protocol.js")]


def require_browser():
    """Outside CI, skip without Chromium or Node; anything else missing is a set-up error `make browser` fixes."""
    if not os.environ.get("CI"):
        if not os.access(CHROMIUM, os.X_OK):
            pytest.skip("{} is not installed (`make browser` installs it)".format(CHROMIUM))
        if NODE is None:
            pytest.skip("node is not installed: the JavaScript runtime cannot run")
    missing = [what for what, present in [
        (CHROMIUM, os.access(CHROMIUM, os.X_OK)), ("node", NODE is not None),
        ("tests/browser/node_modules", os.path.isdir(os.path.join(BROWSER_TESTS, "node_modules", "playwright-core")))]
        if not present]
    assert not missing, "the browser tests need {}: run `make browser`".format(", ".join(missing))


@pytest.fixture(scope="module")
def browser_runtime():
    require_browser()
    runtime = ProcessRuntime(BRIDGE, cwd=ROOT)
    yield runtime
    runtime.close()


def same_outcomes(ours, theirs):
    """Every check of both reports ends alike: the same status, and a skip for the same reason."""
    assert {r.key: (r.status, r.message if r.status == "skip" else None) for r in ours.results} == \
        {r.key: (r.status, r.message if r.status == "skip" else None) for r in theirs.results}


def test_the_bridge_runs_the_library_in_chromium(browser_runtime, node_runtime):
    """The same library as the Node driver (name, version, features, ops), running in Chromium."""
    ours, node = browser_runtime.hello, node_runtime.hello
    assert "Chromium" in ours["runtime"]["language"], ours["runtime"]
    assert {key: ours["runtime"][key] for key in ("name", "version")} == \
        {key: node["runtime"][key] for key in ("name", "version")}
    assert (ours["features"], ours["ops"]) == (node["features"], node["ops"])


# every golden pack through a runtime other than the reference is slow (tests/conftest.py): 25-35 s on 2 busy cores
@pytest.mark.slow
def test_the_browser_passes_the_golden_packs_as_node_does(browser_runtime, node_runtime):
    """Against SB2's and SB3's recorded answers (runs, and predict, action_probability and value: SPEC section 5),
    every check of every pack ends in the browser as it ends in Node: passed, or skipped for the same reason (what a
    pack did not record)."""
    known = KnownFailures.read(KNOWN_FAILURES)
    browser, node = (run_suite([GoldenSource([GOLDEN])], runtime, known=known)
                     for runtime in (browser_runtime, node_runtime))
    assert browser.ok, browser.render()
    assert sum(r.status == "pass" for r in browser.results) > 0, browser.render()
    same_outcomes(browser, node)


# the reader-refusal corpus through a runtime's process is slow (tests/conftest.py): 2 s
@pytest.mark.slow
def test_the_browser_refuses_every_malformed_file_with_its_class(browser_runtime, reference):
    """The reader-refusal corpus, each file fetched by the page: refused with the class SPEC section 7 requires
    (container, document, unsupported), the valid ones loaded, as in Node (tests/conformance/test_js.py)."""
    report = run_suite([OracleSource([], reference)], browser_runtime, checks=["reader_refusal"])
    (result,) = report.results
    assert result.status == "pass" and result.probes == len(read_manifest(shipped(MALFORMED_FILES))), report.render()


#: Page test files over 20 s (2 busy cores), which `make check` leaves to `make test`
SLOW_PAGE_TESTS = {"viewer.test.mjs": "about 100 s"}
PAGE_TESTS = sorted(name for name in os.listdir(BROWSER_TESTS) if name.endswith(".test.mjs"))


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_PAGE_TESTS else [])
                                  for name in PAGE_TESTS])
def test_the_page_tests_pass(name):
    """tests/browser/*.test.mjs, one file at a time (`node --test`): the library, and the pages built on it, driven
    in Chromium."""
    require_browser()
    completed = subprocess.run([NODE, "--test", os.path.join(BROWSER_TESTS, name)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert completed.returncode == 0, completed.stdout
