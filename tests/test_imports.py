"""The package's modules import each other in one direction: no import cycle, read from the
source's own import statements (those under ``if TYPE_CHECKING:`` aside, which never run)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ploomber_like"


def test_no_import_cycle_in_the_package():
    graph = _import_graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_the_query_side_imports_no_facade():
    """The UI, the report and ``compare`` read through the query engine, not the tracker."""
    graph = _import_graph()
    readers = [name for name in graph if name.startswith("ploomber_like.ui")]
    for name in [*readers, "ploomber_like.comparing", "ploomber_like.query"]:
        assert "ploomber_like.tracker" not in graph[name], name
    assert "ploomber_like.results" not in graph["ploomber_like.render"]


def test_the_check_finds_a_cycle(tmp_path):
    """What the first test relies on: a cycle through a lazy import is one."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ploomber_like.x\n"
    source += "def f():\n    from ploomber_like import y\n"
    assert _imports(ast.parse(source), "ploomber_like.z", {"ploomber_like.x", "ploomber_like.y"}) \
        == {"ploomber_like.y"}


def _import_graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports."""
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")), name, set(files))
        for name, path in files.items()
    }


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, name: str, modules: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                # `from ploomber_like import store` imports the module store.
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {module for module in found if module in modules and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components
