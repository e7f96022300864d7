"""The warehouse's modules import one way only: store is the core, api the facade on top.

Read from the source (every import, also those inside functions and under TYPE_CHECKING), so
a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import warehouse

PACKAGE = Path(warehouse.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """The ``warehouse.<module>`` names that ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "warehouse":
                found.update(f"warehouse.{a.name}" for a in node.names)
            elif node.module.startswith("warehouse."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("warehouse."))
    modules = {f"warehouse.{p.stem}" for p in PACKAGE.glob("*.py")}
    return {name for name in found if name in modules}


def _graph() -> dict[str, set[str]]:
    return {
        f"warehouse.{p.stem}": _imports(p) - {f"warehouse.{p.stem}"}
        for p in sorted(PACKAGE.glob("*.py"))
        if p.stem != "__init__"
    }


def test_the_store_core_imports_only_leaves():
    assert _graph()["warehouse.store"] <= {
        "warehouse.errors",
        "warehouse.sqlfiles",
        "warehouse.frames",
    }


def test_only_the_package_door_imports_the_facade():
    users = sorted(m for m, deps in _graph().items() if "warehouse.api" in deps)
    assert users == []


def test_leaves_import_nothing_above_them():
    graph = _graph()
    for leaf in ("warehouse.errors", "warehouse.protocol", "warehouse.frames"):
        assert graph[leaf] <= {"warehouse.errors"}, leaf
    assert graph["warehouse.sqlfiles"] <= {"warehouse.errors"}


def test_no_import_circles():
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, (*path, node))
        done.add(node)

    for module in graph:
        visit(module, ())


def test_the_graph_reader_sees_imports_inside_functions():
    # ingest imports sqlfiles lazily inside delete_runs as well as at the top; api imports
    # datasets only inside register_dataset
    assert "warehouse.datasets" in _graph()["warehouse.api"]
