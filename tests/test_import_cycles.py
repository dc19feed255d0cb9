"""No import cycles among sagactl's modules: each imports alone in a fresh interpreter, and
the graph of every import statement (those inside functions too) has no cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"engine": "sagactl.engine", "actions": "sagactl.actions", "plugins": "sagactl.plugins"}

IMPORT_EACH_ALONE = """
import importlib, json, sys
failed = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "sagactl" or m.startswith("sagactl.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""


def _modules() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The sagactl modules `name` imports by name, anywhere in it. A package's `__init__`
    that Python runs on the way to a submodule is not counted: only what is named."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                named.add(submodule if submodule in MODULES else base)
    return {module for module in named if module in MODULES and module != name}


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    """Importing any one module first works: no cycle depends on what was imported before."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, json.dumps(sorted(MODULES))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {}


def test_no_cycle_in_the_import_graph() -> None:
    """Not even through an import inside a function (`main -> commands -> ... -> main`)."""
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        graph.add_node(name)
        graph.add_edges_from((name, imported) for imported in _imports(name, path))
    assert len(graph) > 60
    assert graph.has_edge("sagactl.engine.cli.run_commands", "sagactl.engine.cli.options")
    cycles = list(nx.simple_cycles(graph))
    assert cycles == []


def test_the_engine_imports_nothing_of_ours_outside_it() -> None:
    """The engine knows nothing of the build saga, the builders or the runtimes."""
    outside = [
        (module, imported)
        for module, path in MODULES.items()
        if module.startswith("sagactl.engine")
        for imported in _imports(module, path)
        if not imported.startswith("sagactl.engine")
    ]
    assert outside == []
