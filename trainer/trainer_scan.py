"""Find an nnU-Net trainer class by name from the sources, in nnU-Net's search order, without importing anything.

nnU-Net resolves ``-tr NAME`` by importing every module under ``nnunetv2/training/nnUNetTrainer`` (modules of a
folder first, then its sub-packages, each level in sorted order) until one has an attribute ``NAME``, then the
folders of ``nnUNet_extTrainer``. Doing that here would import torch and nnU-Net's whole trainer tree (tens of
seconds the first time in a process), which a plan shown in a dialog cannot wait for. This module walks the same
files in the same order and reads, with :mod:`ast`, which names each module binds at its top level: a class
defined there, or a name imported from another module. Only files that mention the wanted name are parsed, and
what a file binds is cached by its size and mtime, so a lookup costs a directory walk and a few reads.

A generated nnwatch variant defines its class only when its parent imports; its parent is therefore looked up the
same way before the variant counts as found. Whether the modules really import is checked by the import-based
lookup (:func:`trainer.variants.locate_trainer`) when a job is submitted.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ScannedClass", "nnunet_package_folder", "scan_trainer"]

TRAINER_PACKAGE = "nnunetv2.training.nnUNetTrainer"


@dataclass(frozen=True)
class ScannedClass:
    """A trainer class as the sources declare it: its module and the schedule attributes of its body."""

    name: str
    module: str
    search_path: str | None
    base_trainer: str | None = None  # ``nnwatch_base_trainer`` of a generated variant
    base_epochs: int | None = None  # ``nnwatch_epochs`` of a generated variant


@dataclass(frozen=True)
class _Binding:
    module: str  # where the class is defined (this module, or the one it was imported from)
    defined_here: bool
    attributes: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class _ModuleInfo:
    bindings: dict[str, _Binding]
    parent: tuple[str, str, str | None] | None  # a generated variant's (_PARENT_MODULE, _PARENT_NAME, _SEARCH_PATH)
    conditional: frozenset[str]  # classes defined under an ``if`` (a variant's, present only if its parent is)


_CACHE: dict[str, tuple[tuple[int, int], _ModuleInfo | None]] = {}
_CACHE_LOCK = threading.Lock()


def nnunet_package_folder() -> Path | None:
    """The installed ``nnunetv2`` package folder (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec("nnunetv2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _constants(body: list[ast.stmt]) -> dict[str, object]:
    out: dict[str, object] = {}
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Constant):
            out[node.targets[0].id] = node.value.value
    return out


def _absolute(module: str, level: int, here: str) -> str:
    if level == 0:
        return module
    base = here.split(".")[:-level]
    return ".".join([*base, module] if module else base)


def _parse(path: Path, module: str) -> _ModuleInfo | None:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None  # nnU-Net's import would fail on it as well
    bindings: dict[str, _Binding] = {}
    conditional: set[str] = set()

    def visit(body: list[ast.stmt], guarded: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                attributes = tuple(_constants(node.body).items())
                bindings[node.name] = _Binding(module, True, attributes)
                if guarded:
                    conditional.add(node.name)
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(node.module or "", node.level, module)
                for alias in node.names:
                    if alias.name != "*":
                        bindings.setdefault(alias.asname or alias.name, _Binding(source, False))
            elif isinstance(node, ast.If):
                visit(node.body, True)
                visit(node.orelse, True)
            elif isinstance(node, ast.Try):
                visit(node.body, guarded)

    visit(tree.body, False)
    constants = _constants(tree.body)
    parent = None
    if isinstance(constants.get("_PARENT_MODULE"), str) and isinstance(constants.get("_PARENT_NAME"), str):
        search = constants.get("_SEARCH_PATH")
        parent = (str(constants["_PARENT_MODULE"]), str(constants["_PARENT_NAME"]),
                  search if isinstance(search, str) else None)
    return _ModuleInfo(bindings, parent, frozenset(conditional))


def _module_info(path: Path, module: str, name: str) -> _ModuleInfo | None:
    """What ``path`` binds; None when it cannot mention ``name`` (not parsed) or does not parse."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = f"{path}\0{module}"
    signature = (stat.st_size, stat.st_mtime_ns)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        text = path.read_bytes()
    except OSError:
        return None
    if name.encode() not in text:
        return None  # cheap: most files never mention the wanted name; parsed later when they do
    info = _parse(path, module)
    with _CACHE_LOCK:
        _CACHE[key] = (signature, info)
    return info


def _modules(folder: str) -> list[tuple[str, bool]]:
    """``pkgutil.iter_modules`` of one folder: (name, is_package), sorted as nnU-Net sees them."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for entry in entries:
        full = os.path.join(folder, entry)
        if entry.endswith(".py") and entry != "__init__.py" and os.path.isfile(full):
            name, package = entry[:-3], False
        elif entry.isidentifier() and os.path.isfile(os.path.join(full, "__init__.py")):
            name, package = entry, True
        else:
            continue
        if name.isidentifier() and name not in seen:
            seen.add(name)
            out.append((name, package))
    return out


def _search(folder: str, name: str, package: str | None, roots: dict[str, str]) -> tuple[str, _Binding] | None:
    entries = _modules(folder)
    for modname, is_package in entries:
        if is_package:
            continue
        module = modname if package is None else f"{package}.{modname}"
        info = _module_info(Path(folder) / f"{modname}.py", module, name)
        if info is None or name not in info.bindings:
            continue
        if name in info.conditional and info.parent is not None:
            parent_module, parent_name, search = info.parent
            if not _defines(parent_module, parent_name, roots, search):
                continue  # the variant's parent is gone: its class does not exist (nnU-Net goes on)
        return module, info.bindings[name]
    for modname, is_package in entries:
        if is_package:
            found = _search(os.path.join(folder, modname), name, modname if package is None
                            else f"{package}.{modname}", roots)
            if found is not None:
                return found
    return None


def _module_file(module: str, roots: dict[str, str], search: str | None) -> Path | None:
    top, _, rest = module.partition(".")
    bases = [roots[top]] if top in roots else []
    if search:
        bases.append(os.path.join(search, top))
    for base in bases:
        stem = Path(base, *rest.split(".")) if rest else Path(base)
        for candidate in (stem.with_name(stem.name + ".py"), stem / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _defines(module: str, name: str, roots: dict[str, str], search: str | None, depth: int = 0) -> bool:
    path = _module_file(module, roots, search)
    if path is None or depth > 8:
        return False
    info = _module_info(path, module, name)
    if info is None or name not in info.bindings:
        return False
    binding = info.bindings[name]
    if binding.defined_here:
        if name in info.conditional and info.parent is not None:
            return _defines(info.parent[0], info.parent[1], roots, info.parent[2], depth + 1)
        return True
    return _defines(binding.module, name, roots, search, depth + 1)


def _resolve(module: str, binding: _Binding, name: str, roots: dict[str, str]) -> tuple[str, _Binding]:
    """Follow an imported name to the module that defines the class (what ``cls.__module__`` says)."""
    for _ in range(8):
        if binding.defined_here:
            return module, binding
        path = _module_file(binding.module, roots, None)
        info = None if path is None else _module_info(path, binding.module, name)
        if info is None or name not in info.bindings:
            return binding.module, _Binding(binding.module, True)
        module, binding = binding.module, info.bindings[name]
    return module, binding


def scan_trainer(name: str, environ: Mapping[str, str] | None = None) -> ScannedClass | None:
    """Where nnU-Net would find trainer ``name`` (its package, then ``nnUNet_extTrainer``), or None."""
    environ = os.environ if environ is None else environ
    package = nnunet_package_folder()
    roots = {} if package is None else {"nnunetv2": str(package)}
    searches: list[tuple[str, str | None, str | None]] = []
    if package is not None:
        searches.append((str(package / "training" / "nnUNetTrainer"), TRAINER_PACKAGE, None))
    for folder in environ.get("nnUNet_extTrainer", "").split(os.pathsep):
        if folder.strip() and os.path.isdir(folder):
            searches.append((folder, None, os.path.abspath(folder)))
    for folder, dotted, search_path in searches:
        found = _search(folder, name, dotted, roots)
        if found is None:
            continue
        module, binding = _resolve(*found, name, roots)
        attributes = dict(binding.attributes)
        base, epochs = attributes.get("nnwatch_base_trainer"), attributes.get("nnwatch_epochs")
        return ScannedClass(name=name, module=module, search_path=search_path,
                            base_trainer=base if isinstance(base, str) else None,
                            base_epochs=epochs if isinstance(epochs, int) else None)
    return None
