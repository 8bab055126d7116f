"""Imports flow one way (app → trainer → monitor), without cycles, and the dashboard stays a user interface.

Checked on the source with ``ast`` (imports inside functions included) so a shortcut (a page reading a log itself,
a ``subprocess`` call next to a button, monitor/ reaching up into trainer/) fails here rather than in a review.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from paths import REPO

DASHBOARD = REPO / "app" / "dashboard"
PACKAGES = ("app", "trainer", "monitor")
FORBIDDEN_EVERYWHERE = ("subprocess", "monitor.logs", "monitor.runs.merge", "monitor.checkpoints", "trainer.local",
                        "trainer.slurm", "trainer.runner")
PAGE_ALLOWED_PREFIXES = ("streamlit", "pandas", "app.dashboard", "trainer", "monitor.analyze", "monitor.numbers",
                         "__future__", "collections", "typing", "shlex", "functools", "pathlib")
#: What each package may not import: the layers above it, and the web framework below the app.
FORBIDDEN_BY_PACKAGE = {"monitor": ("app", "trainer", "streamlit"), "trainer": ("app", "streamlit")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, name: str) -> str:
    """``from module import name``: the submodule when ``name`` is one, else the module itself."""
    folder = REPO.joinpath(*module.split("."))
    is_module = (folder / name).is_dir() or any(folder.glob(f"{name}.*"))  # .py, or a compiled .c/.so twin
    return f"{module}.{name}" if is_module else module


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: ``from .x import y`` inside ``package``
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.extend(_resolve(base, alias.name) for alias in node.names)
    return names


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", sorted(DASHBOARD.rglob("*.py")), ids=lambda p: p.relative_to(DASHBOARD).as_posix())
def test_no_parsing_or_launching_in_the_dashboard(path: Path) -> None:
    bad = [name for name in _imports(path) if name.startswith(FORBIDDEN_EVERYWHERE)]
    assert not bad, f"{path.name} imports {bad}: go through monitor's and trainer's public calls"


@pytest.mark.parametrize("path", sorted((DASHBOARD / "views").glob("*.py")), ids=lambda p: p.name)
def test_pages_only_describe_ui(path: Path) -> None:
    bad = [name for name in _imports(path) if not name.startswith(PAGE_ALLOWED_PREFIXES)]
    assert not bad, f"page {path.name} imports {bad}; put logic in app/dashboard modules or monitor/trainer"


@pytest.mark.parametrize("package", sorted(FORBIDDEN_BY_PACKAGE))
def test_imports_flow_app_to_trainer_to_monitor(package: str) -> None:
    forbidden = FORBIDDEN_BY_PACKAGE[package]
    for path in sorted((REPO / package).rglob("*.py")):
        bad = [name for name in _imports(path) if name.split(".")[0] in forbidden]
        assert not bad, f"{path.relative_to(REPO)} imports {bad}: imports flow app → trainer → monitor"


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in _sources():
        graph[_module_name(path)] = {name for name in _imports(path) if name.split(".")[0] in PACKAGES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_resolver_tells_submodules_from_names() -> None:
    """``from package import submodule`` is an edge to the submodule (the shape of an old CLI cycle)."""
    assert _resolve("app", "cli") == "app.cli"
    assert _resolve("monitor.logs", "_v2log") == "monitor.logs._v2log"
    assert _resolve("monitor", "load_run") == "monitor"


def test_the_dashboard_loads_no_matplotlib_until_a_report_is_drawn() -> None:
    """Its charts are Plotly's and share only the reports' look: importing matplotlib with them would hold up the
    first run page opened after every start of the server."""
    code = ("import importlib, pkgutil, sys\n"
            "import app.dashboard as dashboard\n"
            "for module in pkgutil.iter_modules(dashboard.__path__):\n"
            "    if module.name != 'main':  # the entry script: it draws a page when imported\n"
            "        importlib.import_module('app.dashboard.' + module.name)\n"
            "print(sorted(name for name in sys.modules if name.startswith('matplotlib')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout
