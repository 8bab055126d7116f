"""trainer/ has no import cycle, counting every import: module level, inside functions, under TYPE_CHECKING."""

from __future__ import annotations

import ast

from paths import REPO

PACKAGE = REPO / "trainer"


def _imports() -> dict[str, set[str]]:
    """{module: the trainer modules it imports anywhere in its body}."""
    modules = {("trainer" if path.stem == "__init__" else f"trainer.{path.stem}"): path
               for path in PACKAGE.glob("*.py")}
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            edges[name].update(target for target in targets if target in modules and target != name)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(edges[name]):
            if target in path:
                found.append([*path[path.index(target):], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(name)

    for name in sorted(edges):
        if name not in done:
            visit(name, [name])
    return found


def test_trainer_has_no_import_cycle() -> None:
    edges = _imports()
    assert "trainer.local" in edges["trainer.selection"], "the check must see the imports it is about"
    assert _cycles(edges) == []


def test_the_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
