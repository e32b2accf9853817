"""ARCHITECTURE.md's rules, read from the source: no import cycles, imports point down the layers, and the
frameworks (TensorFlow, SB2, torch, ONNX, gym, numba) are imported only where the architecture puts them.

Every import statement counts, at module level or inside a function: a deferred import is still a dependency,
and a cycle hidden in a function is still a cycle for whoever moves the code."""
from __future__ import annotations

import ast
import os
from typing import Dict, Iterator, List, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sbif", "conformance")

#: Import rank of each layer: a module may import from a layer of lower or equal rank only. The file's data
#: flows export -> runtime, but the live loader verifies what it exports with the reference runtime, so in
#: imports the runtime lies below the exporters.
LAYER_RANK = {
    "sbif.errors": 0, "sbif.progress": 0, "sbif.version": 0,
    "sbif.ops": 1,
    "sbif.format": 2,
    "sbif.compare": 3,
    "sbif.runtime": 4, "sbif.convert": 4,
    "sbif.export": 5,
    "sbif": 6,  # the package's façade: `sbif.load`, `sbif.Policy`
    "sbif.batch": 7,  # batch inference over datasets: the predictor, the local engine, dataset files
    "sbif.integrations": 8,  # engines of other frameworks on top of sbif.batch (Ray Data)
    "sbif.cli": 9, "sbif.__main__": 9,
    "conformance": 10,
}

#: Imports against the ranks, each with its reason.
ALLOWED_UPWARD = {
    ("sbif.cli", "conformance.cli"): "the `sbif conformance` command is registered by sbif's command line",
}

#: Frameworks, and the only modules that may import them (ARCHITECTURE.md: the live loader, the converters, the
#: oracles; numba only in the numba backend).
FRAMEWORKS = {
    "tensorflow": ("sbif.export.live", "conformance.adapters.sb2_live"),
    "stable_baselines": ("sbif.export.live", "conformance.adapters.sb2_live",
                         "conformance.cli"),  # conformance.cli: probes whether the live oracle can be offered
    "gym": ("sbif.export.live", "conformance.adapters.sb2_live"),
    "torch": ("sbif.convert.torch", "conformance.adapters.torch_module", "sbif.export.sb3.live",
              "conformance.adapters.sb3_live"),
    "stable_baselines3": ("sbif.export.sb3.live", "conformance.adapters.sb3_live"),
    "sb3_contrib": ("sbif.export.sb3.live", "conformance.adapters.sb3_live"),
    "gymnasium": ("sbif.export.sb3.live", "conformance.adapters.sb3_live"),
    "onnx": ("sbif.convert.onnx", "conformance.adapters.onnx_runtime"),
    "onnxruntime": ("sbif.convert.onnx", "conformance.adapters.onnx_runtime"),
    "numba": ("sbif.runtime.numba",),
    "ray": ("sbif.integrations",),
    "pyarrow": ("sbif.batch", "sbif.integrations"),
    "pandas": ("sbif.batch", "sbif.integrations"),
}

#: Optional frameworks imported only inside functions: `import sbif.batch` (and the CLI) must work without them, and
#: pay for them only when a batch of theirs comes in. An integration (sbif.integrations.*) exists for its framework
#: and may import it at module level (a Ray Datasource subclasses Ray's class); it is itself imported lazily.
LAZY_FRAMEWORKS = ("ray", "pyarrow", "pandas", "sbif.integrations")
LAZY_EXEMPT = ("sbif.integrations",)


def modules() -> Dict[str, str]:
    """Dotted module name -> path, for every module of sbif and conformance."""
    found = {}
    for package in PACKAGES:
        for directory, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def imported_names(module: str, path: str) -> Iterator[Tuple[str, int]]:
    """(absolute dotted name, line) of everything `module` imports: for `from X import Y`, X.Y where that is a
    module of ours, else X."""
    for name, line, _ in import_statements(module, path, parse(path)):
        yield name, line


def parse(path: str) -> ast.AST:
    with open(path, encoding="utf-8") as handle:
        return ast.parse(handle.read(), path)


def import_statements(module: str, path: str, tree: ast.AST) -> Iterator[Tuple[str, int, ast.AST]]:
    """`imported_names` with the statement each name comes from."""
    known = MODULES
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, node
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = base + "." + alias.name
                yield (submodule if submodule in known else base), node.lineno, node


MODULES = modules()


def internal_edges() -> Dict[str, Set[str]]:
    """module -> the modules of ours it imports."""
    edges: Dict[str, Set[str]] = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for name, _ in imported_names(module, path):
            if name in MODULES and name != module:
                edges[module].add(name)
    return edges


def strongly_connected(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The components of more than one module (Tarjan's algorithm, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def layer_of(module: str) -> str:
    if module.split(".")[0] == "conformance":
        return "conformance"
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = strongly_connected(internal_edges())
    assert not cycles, "import cycles (move the shared helper where both sides can import it): {}".format(cycles)


def test_every_layer_has_a_rank():
    assert {layer_of(module) for module in MODULES} <= set(LAYER_RANK)


def test_imports_point_down_the_layers():
    upward = []
    for module, imported in internal_edges().items():
        for name in imported:
            source, target = layer_of(module), layer_of(name)
            if LAYER_RANK[target] > LAYER_RANK[source] and (source, name) not in ALLOWED_UPWARD:
                upward.append("{} imports {}".format(module, name))
    assert not upward, "imports against ARCHITECTURE.md's layers: {}".format(sorted(upward))


def test_frameworks_are_imported_only_where_the_architecture_allows():
    misplaced = []
    for module, path in MODULES.items():
        for name, line in imported_names(module, path):
            framework = name.split(".")[0]
            allowed = FRAMEWORKS.get(framework)
            if allowed is not None and not any(module == a or module.startswith(a + ".") for a in allowed):
                misplaced.append("{}:{} imports {}".format(os.path.relpath(path, ROOT), line, name))
    assert not misplaced, misplaced


def module_level_imports(module: str, path: str) -> Iterator[Tuple[str, int]]:
    """`imported_names` of the statements a module runs when it is imported: not those inside functions or
    classes."""
    tree = parse(path)
    deferred = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                          ast.ClassDef))
                for inner in ast.walk(node) if inner is not node}
    for name, line, node in import_statements(module, path, tree):
        if id(node) not in deferred:
            yield name, line


def test_optional_frameworks_are_imported_lazily():
    eager = ["{}:{} imports {}".format(os.path.relpath(path, ROOT), line, name)
             for module, path in MODULES.items() if not module.startswith(LAZY_EXEMPT)
             for name, line in module_level_imports(module, path)
             if any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY_FRAMEWORKS)]
    assert not eager, "import these inside the functions that need them: {}".format(eager)


def test_the_lazy_import_check_sees_module_level_imports(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("try:\n    import pyarrow\nexcept ImportError:\n    import pandas\n"
                    "import sbif.integrations.ray\n"
                    "def f():\n    import ray\nclass C:\n    from pandas import DataFrame\n")
    assert sorted(name for name, _ in module_level_imports("sbif.cli.module", str(path))) == [
        "pandas", "pyarrow", "sbif.integrations.ray"]
