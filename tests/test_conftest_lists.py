"""The lists in tests/conftest.py name tests by path and function: a renamed file or test would quietly drop out of
them (a slow sweep back in `make check`, a C test back in the SB2 run), so every name must still point at a test."""
import ast
import os

import pytest

from tests.conftest import GROUPS_BY_FILE, PYTHON_INDEPENDENT_FILES, SLOW_TESTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _test_functions(path: str) -> set:
    """The names of the test functions defined at the top level of a test file."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")}


@pytest.mark.parametrize("node_id", sorted(SLOW_TESTS))
def test_every_slow_test_names_a_test_function(node_id):
    path, _, function = node_id.partition("::")
    assert os.path.isfile(os.path.join(ROOT, path)), "no such test file: " + path
    assert function.split("[")[0] in _test_functions(path), "no such test in " + path + ": " + function


@pytest.mark.parametrize("path", sorted(PYTHON_INDEPENDENT_FILES | set(GROUPS_BY_FILE.values())))
def test_every_listed_file_is_a_test_file(path):
    assert os.path.isfile(os.path.join(ROOT, path)) and _test_functions(path), "no tests in " + path
