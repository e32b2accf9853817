"""What the tests that install sbif from its wheel share (tests/test_wheel.py, tests/test_user_path.py): the wheel,
built from a copy of the sources (once per session: the `wheel` fixture of tests/conftest.py), and fresh venvs
outside the checkout to install it in.

The wheel is built from a copy, so the checkout gets no build/ or egg-info from a run, and installed by pip with its
usual configuration and cache (on this machine: local wheel directories and indexes, nothing downloaded).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: what setuptools reads to build the wheel (spec/: the targets of the schema and op-vector symlinks)
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "sbif", "conformance", "spec")


def run(command: List[str], cwd: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """`command` run to its end (at most 10 minutes: a pip install from the local indexes takes far less), its
    output captured as text for the assertions and their messages."""
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def succeeded(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """`done`, asserted to have exited 0; the failure message shows the command and everything it printed."""
    assert done.returncode == 0, "{} exited {}:\n{}\n{}".format(done.args, done.returncode, done.stdout, done.stderr)
    return done


def build_wheel(sources: str, dist: str) -> str:
    """The path of the sbif wheel built in `dist` from a copy of the checkout's BUILD_INPUTS made in `sources`, by
    the running environment's setuptools (requirements/modern.txt has it: no build isolation, so nothing is
    downloaded and it takes about a second). tests/conftest.py's session fixture `wheel` builds it once."""
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".hypothesis")
    for name in BUILD_INPUTS:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(sources, name), symlinks=True, ignore=ignored)
        else:
            shutil.copy2(source, sources)
    succeeded(run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                   sources, "--wheel-dir", dist], cwd=sources))
    [name] = os.listdir(dist)
    return os.path.join(dist, name)


class Venv:
    """A fresh virtual environment in a temporary directory outside the checkout, and a working directory beside
    it from which its commands run (so nothing is imported from the checkout)."""

    def __init__(self, directory: str):
        assert not os.path.abspath(directory).startswith(ROOT + os.sep)
        self.directory = os.path.join(directory, "venv")
        self.cwd = os.path.join(directory, "work")
        os.mkdir(self.cwd)
        succeeded(run([sys.executable, "-m", "venv", self.directory], cwd=directory))
        self.bin = os.path.join(self.directory, "bin")
        self.env = {name: value for name, value in os.environ.items()
                    if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.env.update(PATH=self.bin + os.pathsep + os.environ.get("PATH", ""), VIRTUAL_ENV=self.directory)

    def install(self, requirement: str) -> None:
        succeeded(self.run("python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement))

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return run([os.path.join(self.bin, command[0])] + list(command[1:]), cwd=self.cwd, env=self.env)
