"""A real Ray cluster for the tests of `sbif.integrations.ray`: a head and a second node, each `ray start`ed as its
own process group on a loopback address of its own (127.0.0.2 and 127.0.0.3: Ray announces a node by the address it
is given, and would swap 127.0.0.1 for the machine's outward interface), with one CPU each, ports chosen free, and
its sockets, logs and object spilling in a temporary directory.

Every test that uses the cluster is marked `ray` and `slow` (`make check` leaves them out; `make test` runs them).
Teardown stops exactly the processes the fixture started: each `ray start --block` leads a session of its own, and
everything still in those sessions after SIGTERM (raylet, GCS, workers) is killed by process id; `ray stop` would
stop every Ray of the machine, other users' included.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, Iterator, List, NamedTuple, Optional

import pytest

HEAD_HOST = "127.0.0.2"
WORKER_HOST = "127.0.0.3"
#: each node's object store: ample for the tests' blocks, small beside the machine's memory
OBJECT_STORE_BYTES = 256 * 2 ** 20
START_TIMEOUT = 120.0
#: seconds `ray start --block` gets to stop its node after SIGTERM (it often takes more: then SIGKILL), and for
#: the kills to land
GRACE_SECONDS = 5.0
STOP_TIMEOUT = 20.0
RAY_BIN = os.path.join(os.path.dirname(sys.executable), "ray")


def pytest_configure(config):
    config.addinivalue_line("markers", "ray: runs a Ray cluster on loopback (tests/ray)")


def pytest_collection_modifyitems(items):
    """Mark the tests that use the cluster `ray` and `slow` (those of the mapper alone stay in the fast loop)."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.slow)


class Cluster(NamedTuple):
    """A running two-node cluster: the head's address and the `ray start` processes (head first), each the leader
    of its own session."""

    address: str
    nodes: List[subprocess.Popen]
    directory: str
    #: the environment a driver needs to join: the cluster's own authentication token
    environment: Dict[str, str]

    @property
    def worker_session(self) -> int:
        """The session id of the second node's processes (its raylet and the workers it starts)."""
        return self.nodes[1].pid


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def session_processes(sessions: List[int]) -> List[int]:
    """The ids of the processes in these sessions that still run (zombies, dead and waiting to be reaped, aside)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/{}/stat".format(entry)) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
            except OSError:
                continue
            if int(fields[3]) in sessions and fields[0] not in "ZX":
                found.append(int(entry))
    return found


def start_node(arguments: List[str], host: str, directory: str, name: str, environment: Dict[str, str]
               ) -> subprocess.Popen:
    command = [RAY_BIN, "start", "--block", "--node-ip-address", host, "--num-cpus", "1",
               "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats",
               "--dashboard-agent-listen-port", str(free_port(host)), "--metrics-export-port", str(free_port(host))]
    with open(os.path.join(directory, name + ".log"), "wb") as log:
        return subprocess.Popen(command + arguments, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                start_new_session=True)


def wait_for_port(host: str, port: int, nodes: List[subprocess.Popen], directory: str) -> None:
    """Until the head's GCS accepts connections (a node started before that fails to join)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        check_alive(nodes, directory)
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the Ray head at {}:{} did not open its port in {:.0f} s".format(host, port, START_TIMEOUT))


def check_alive(nodes: List[subprocess.Popen], directory: str) -> None:
    for node, name in zip(nodes, ("head", "worker")):
        if node.poll() is not None:
            with open(os.path.join(directory, name + ".log"), errors="replace") as log:
                raise RuntimeError("the Ray {} node exited with {}:\n{}".format(name, node.returncode,
                                                                               log.read()[-3000:]))


def wait_for_nodes(address: str, count: int, nodes: List[subprocess.Popen], directory: str,
                   environment: Dict[str, str]) -> None:
    """Until the cluster at `address` has `count` live nodes (asked by a child interpreter: this one stays free of
    Ray, as a user's shell is)."""
    probe = ("import sys, ray; ray.init(address=sys.argv[1], _node_ip_address=sys.argv[2], logging_level='ERROR', "
             "log_to_driver=False); print(sum(node['Alive'] for node in ray.nodes()))")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        check_alive(nodes, directory)
        result = subprocess.run([sys.executable, "-c", probe, address, HEAD_HOST], capture_output=True, text=True,
                                timeout=START_TIMEOUT, env=environment)
        if result.returncode == 0 and result.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(0.5)
    raise RuntimeError("the Ray cluster at {} did not reach {} nodes in {:.0f} s".format(address, count,
                                                                                       START_TIMEOUT))


def stop_nodes(nodes: List[subprocess.Popen]) -> None:
    """SIGTERM each `ray start --block` (it stops its node's processes), then SIGKILL whatever of their sessions is
    left."""
    sessions = [node.pid for node in nodes]
    for node in reversed(nodes):
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for node in nodes:
        try:
            node.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT
    while session_processes(sessions) and time.monotonic() < deadline:
        for pid in session_processes(sessions):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    for node in nodes:
        try:
            node.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass


@contextlib.contextmanager
def running_cluster(token: Optional[str] = None) -> Iterator[Cluster]:
    """A head node and a worker node on loopback, stopped on leaving (benchmarks/ray_batch.py runs its jobs on one
    too). `token`: the cluster's authentication token (default: a new one), for a driver that must know it before
    it imports Ray."""
    # short: Ray's socket paths live under it, and a Unix socket's path has at most 107 bytes
    directory = tempfile.mkdtemp(prefix="sbif-ray-", dir="/tmp")
    nodes: List[subprocess.Popen] = []
    # a token of its own (Ray's default is one per user, in ~/.ray, which the cluster leaves alone)
    environment = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                       RAY_AUTH_TOKEN=token or uuid.uuid4().hex)
    try:
        port = free_port(HEAD_HOST)
        address = "{}:{}".format(HEAD_HOST, port)
        nodes.append(start_node(["--head", "--port", str(port), "--temp-dir", directory, "--include-dashboard",
                                 "false", "--dashboard-port", str(free_port(HEAD_HOST))], HEAD_HOST, directory,
                                "head", environment))
        wait_for_port(HEAD_HOST, port, nodes, directory)
        nodes.append(start_node(["--address", address], WORKER_HOST, directory, "worker", environment))
        wait_for_nodes(address, 2, nodes, directory, environment)
        yield Cluster(address, nodes, directory, environment)
    finally:
        stop_nodes(nodes)
        left = session_processes([node.pid for node in nodes])
        shutil.rmtree(directory, ignore_errors=True)
        if left:
            raise RuntimeError("Ray processes outlived the cluster: {}".format(left))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    """A two-node cluster for the whole session."""
    with running_cluster() as cluster:
        yield cluster
