"""The dashboard stays a user interface: pages describe UI, nothing in app/dashboard parses logs or launches.

Checked on the source with ``ast`` so a shortcut (a page reading a log itself, a ``subprocess`` call next to a
button) fails here rather than in a code review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from paths import REPO

DASHBOARD = REPO / "app" / "dashboard"
FORBIDDEN_EVERYWHERE = ("subprocess", "monitor.logs", "monitor.runs.merge", "monitor.checkpoints", "trainer.local",
                        "trainer.slurm", "trainer.runner")
PAGE_ALLOWED_PREFIXES = ("streamlit", "pandas", "app.dashboard", "trainer", "monitor.analyze", "__future__",
                         "collections", "typing", "shlex", "functools", "pathlib")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(DASHBOARD.rglob("*.py")), ids=lambda p: p.relative_to(DASHBOARD).as_posix())
def test_no_parsing_or_launching_in_the_dashboard(path: Path) -> None:
    bad = [name for name in _imports(path) if name.startswith(FORBIDDEN_EVERYWHERE)]
    assert not bad, f"{path.name} imports {bad}: go through monitor's and trainer's public calls"


@pytest.mark.parametrize("path", sorted((DASHBOARD / "views").glob("*.py")), ids=lambda p: p.name)
def test_pages_only_describe_ui(path: Path) -> None:
    bad = [name for name in _imports(path) if not name.startswith(PAGE_ALLOWED_PREFIXES)]
    assert not bad, f"page {path.name} imports {bad}; put logic in app/dashboard modules or monitor/trainer"


def test_monitor_and_trainer_never_import_the_app() -> None:
    repo = DASHBOARD.parents[1]
    for package in ("monitor", "trainer"):
        for path in (repo / package).rglob("*.py"):
            bad = [name for name in _imports(path) if name.startswith(("app", "streamlit"))]
            assert not bad, f"{path.relative_to(repo)} imports {bad}: imports flow app → trainer → monitor"
