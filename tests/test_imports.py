"""The package's shape: no import cycle among optzoo's modules, and no module over 600 lines.

The import graph is read from the source with ``ast``, so every ``import`` statement counts, at
module level or inside a function: an import moved into a function body to dodge a cycle still
closes it (it only runs later). Two kinds do not count: imports under ``if TYPE_CHECKING:``,
which never run, and ``importlib.import_module`` with a computed name (the lazy public names and
the registries), which only ever look down.

An edge ``a -> b`` means that importing ``a`` executes ``b``: the module named, and the packages
around it that ``a`` is not itself inside (``from optzoo.problems.base import Problem`` runs
``optzoo/problems/__init__.py`` too).
"""

from __future__ import annotations

import ast
from pathlib import Path

# The checkout's source, next to these tests (not whichever optzoo is installed).
ROOT = Path(__file__).resolve().parents[1] / "optzoo"
MAX_LINES = 600


def module_files() -> dict[str, Path]:
    """Module name -> source file, for every module in the package (``__init__`` as its package)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["optzoo", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST):
    """Every import statement under ``node``, at any depth, except in ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from _imports(ast.Module(body=child.orelse, type_ignores=[]))
        else:
            yield from _imports(child)


def _enclosing(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of the package's modules."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The optzoo modules an import statement names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name.split(".")[0] == "optzoo"]
        return {_enclosing(n, modules) for n in names} - {None}
    if node.level:  # relative: from the module's package, up level - 1 packages
        package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != "optzoo":
        return set()
    out = set()
    for alias in node.names:  # a submodule, or a name defined in a module
        full = f"{source}.{alias.name}"
        out.add(full if full in modules else _enclosing(source, modules))
    return out - {None}


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(modules: dict[str, Path] = MODULES) -> dict[str, dict[str, int]]:
    """module -> {module it executes on import: the line of the first statement that does}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        inside = set(_ancestors(module))
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            for target in sorted(_targets(module, node, modules)):
                # The packages around the target run first, except those the importer is in.
                for m in [*_ancestors(target), target]:
                    if m != module and (m == target or m not in inside):
                        edges.setdefault(m, node.lineno)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """A shortest cycle through a component's first module, each edge with its line."""
    start, members = component[0], set(component)
    parent: dict[str, str] = {}
    queue = [start]
    while start not in parent:  # breadth-first inside the component, back to the start
        here = queue.pop(0)
        for m in sorted(graph[here]):
            if m in members and m not in parent:
                parent[m] = here
                queue.append(m)
    path = [start]
    while parent[path[-1]] != start:
        path.append(parent[path[-1]])
    path = [start, *reversed(path[1:])]
    hops = zip(path, [*path[1:], start], strict=True)
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in hops) + f" -> {start}"


# -- the checker on made-up graphs: it must find what is there, and nothing else ------------------
def test_the_cycle_finder_on_known_graphs():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) == []
    assert cycles({"a": {"b": 1}, "b": {"a": 2}, "c": {"a": 3}}) == [["a", "b"]]
    three = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"e": 1}, "e": {"d": 1}}
    assert cycles(three) == [["a", "b", "c"], ["d", "e"]]
    assert describe(["a", "b", "c"], three) == "a (line 1) -> b (line 1) -> c (line 1) -> a"


def test_imports_are_read_inside_functions_and_not_under_type_checking(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\n"
        "import optzoo.store\n"
        "if TYPE_CHECKING:\n"
        "    from optzoo.report import Figure\n"
        "def f():\n"
        "    from optzoo.problems.base import Problem\n"
        "    from . import metrics\n"
        "    return Problem, metrics\n"
    )
    fake = {
        "optzoo": tmp_path / "__init__.py",
        "optzoo.harness": tmp_path / "harness.py",
        "optzoo.store": tmp_path / "store.py",
        "optzoo.report": tmp_path / "report.py",
        "optzoo.metrics": tmp_path / "metrics.py",
        "optzoo.problems": tmp_path / "problems" / "__init__.py",
        "optzoo.problems.base": tmp_path / "problems" / "base.py",
    }
    for path in fake.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    fake["optzoo.harness"].write_text(source)
    fake["optzoo.problems"].write_text("from .base import Problem\n")
    graph = import_graph(fake)
    assert graph["optzoo.problems"] == {"optzoo.problems.base": 1}
    assert graph["optzoo.harness"] == {
        "optzoo.store": 2,
        "optzoo.problems": 6,  # the package around base runs first
        "optzoo.problems.base": 6,
        "optzoo.metrics": 7,
    }


# -- the package ----------------------------------------------------------------------------------
def test_no_import_cycle_among_optzoo_modules():
    graph = import_graph()
    assert len(graph) > 20 and sum(map(len, graph.values())) > 50  # the graph was read
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def test_no_module_over_600_lines():
    lengths = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert len(lengths) > 20 and lengths["optzoo"] > 0  # the package was read
    too_long = {m: n for m, n in sorted(lengths.items()) if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
