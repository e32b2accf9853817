"""Fixtures of the differential reader tests: the readers (Python, the C runtime's protocol process, Node's when node
is installed)."""
from __future__ import annotations

import os
from typing import Iterator, List

import pytest

from conformance.protocol import ProcessRuntime
from tests.conformance.conftest import NODE, NODE_RUNTIME
from tests.runtimes.conftest import PROTOCOL, ROOT, c_build  # noqa: F401  (c_build: the fixture, shared)

from .readers import Reader, protocol_verdict, python_verdict


@pytest.fixture(scope="session")
def c_process(c_build) -> Iterator[ProcessRuntime]:  # noqa: F811
    """One persistent sbif-protocol process for every `load` of the session."""
    runtime = ProcessRuntime([PROTOCOL], cwd=ROOT)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def node_process() -> Iterator[ProcessRuntime]:
    """Node's protocol process; None where node is not installed (never on CI, which has it)."""
    if NODE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed (CI must have it)")
        yield None
        return
    runtime = ProcessRuntime(NODE_RUNTIME, cwd=ROOT)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def readers(c_process) -> List[Reader]:
    """(name, verdict function) of the readers the mutant tests compare: Python (the reference) and C."""
    return [("python", python_verdict), ("c", lambda path: protocol_verdict(c_process, path))]


@pytest.fixture(scope="session")
def all_readers(readers, node_process) -> List[Reader]:
    """The readers above and Node's, where node is installed: the committed files are replayed through all."""
    if node_process is None:
        return readers
    return readers + [("node", lambda path: protocol_verdict(node_process, path))]
