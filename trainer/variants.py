"""Trainer classes with a longer schedule that nnU-Net finds by name, for training and for prediction.

nnU-Net resolves ``-tr NAME`` (and, at prediction time, the ``trainer_name`` stored in a checkpoint) by
importing every module under its own ``nnunetv2/training/nnUNetTrainer`` package until one defines a class
called ``NAME``; since 2.6 it then also searches the folders listed in ``nnUNet_extTrainer``. An extended
run therefore needs a class whose only difference from the parent's trainer is ``num_epochs = N``:

* the default trainer uses nnU-Net's own ``nnUNetTrainer_<N>epochs`` when it ships one (2000 does);
* any other trainer gets a generated subclass ``<Parent>_<N>epochs``, one module per class, written
  idempotently to nnwatch's own sub-package ``nnunetv2/training/nnUNetTrainer/nnwatch_variants`` (found
  like any built-in trainer, with no environment variable), or - when that folder is not writable or
  ``NNWATCH_VARIANTS_DIR`` says so - to a folder that the job adds to ``nnUNet_extTrainer``.

Generated modules import their parent by module name and never raise on import: nnU-Net imports every
trainer module during each lookup, so one stale variant must not break the lookup of all the others.
A parent that is itself an ``_<X>epochs`` variant (nnU-Net's or nnwatch's) is unwrapped first, so
extending an extended run gives ``nnUNetTrainer_4000epochs``, not ``nnUNetTrainer_2000epochs_4000epochs``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.state import state_dir
from trainer.names import validate_name
from trainer.trainer_scan import scan_trainer

__all__ = [
    "PACKAGE_FOLDER_NAME",
    "TrainerInfo",
    "VariantError",
    "VariantSpec",
    "find_trainer",
    "install_variant",
    "join_search_path",
    "locate_trainer",
    "nnunet_trainer_folder",
    "render_variant_source",
    "resolve_variant",
    "variants_folder",
]

PACKAGE_FOLDER_NAME = "nnwatch_variants"
_BUILTIN_LENGTH_MODULE = "nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs"
_BUILTIN_LENGTH_RE = re.compile(r"nnUNetTrainer_(\d+)epochs?")


class VariantError(RuntimeError):
    """The parent trainer cannot be found, or a variant cannot be written or found again."""


@dataclass(frozen=True)
class TrainerInfo:
    """Where nnU-Net finds a trainer class: its module, and the ``nnUNet_extTrainer`` folder if any.

    ``base_trainer`` and ``base_epochs`` are set when the class only changes the schedule of another
    trainer (nnU-Net's ``nnUNetTrainer_<X>epochs`` or an nnwatch variant).
    """

    name: str
    module: str
    search_path: str | None = None
    base_trainer: str | None = None
    base_epochs: int | None = None


@dataclass(frozen=True)
class VariantSpec:
    """The trainer an extended run uses, and what (if anything) must be written so nnU-Net finds it."""

    name: str
    epochs: int
    parent: TrainerInfo
    builtin: bool  # nnU-Net ships it (or an earlier extend already generated it): nothing to write
    folder: Path | None  # where the generated module goes; None when nothing is written
    in_nnunet_package: bool  # True: found without any environment variable
    source: str  # module text ("" when nothing is written)

    @property
    def module_path(self) -> Path | None:
        """The generated module file, or ``None`` when nothing needs to be written."""
        return None if self.folder is None else self.folder / f"{self.name}.py"

    @property
    def ext_trainer_dir(self) -> str | None:
        """The folder the job must add to ``nnUNet_extTrainer`` (``None`` when nnU-Net finds it anyway)."""
        if self.folder is None or self.in_nnunet_package:
            return None
        return str(self.folder)


def nnunet_trainer_folder() -> Path:
    """nnU-Net's ``training/nnUNetTrainer`` package folder, the root of its by-name search."""
    import nnunetv2

    return Path(nnunetv2.__file__).parent / "training" / "nnUNetTrainer"


def nnunet_supports_ext_trainers() -> bool:
    """Whether this nnU-Net also searches ``nnUNet_extTrainer`` folders (added in nnunetv2 2.6)."""
    import nnunetv2.paths

    return hasattr(nnunetv2.paths, "nnUNet_extTrainer")


def variants_folder(environ: Mapping[str, str]) -> tuple[Path, bool]:
    """Where generated variants go, and whether that folder is inside nnU-Net's own package.

    ``NNWATCH_VARIANTS_DIR`` wins; then nnwatch's sub-package of nnU-Net when it can be written; then nnwatch's
    state folder (which needs ``nnUNet_extTrainer``; the job sets it, prediction must too).
    """
    configured = environ.get("NNWATCH_VARIANTS_DIR")
    if configured:
        return Path(configured).absolute(), False
    package = nnunet_trainer_folder() / PACKAGE_FOLDER_NAME
    writable_parent = package if package.is_dir() else package.parent
    if os.access(writable_parent, os.W_OK):
        return package, True
    return state_dir(environ) / "trainer_variants", False


@contextlib.contextmanager
def _on_sys_path(folder: str) -> Iterator[None]:
    """Import from ``folder`` like nnU-Net's external search does, forgetting its modules afterwards."""
    folder = os.path.abspath(folder)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    before = set(sys.modules)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if os.path.abspath(module_file).startswith(folder + os.sep):
                sys.modules.pop(name, None)


def _describe(cls: type, search_path: str | None) -> TrainerInfo:
    base = getattr(cls, "nnwatch_base_trainer", None)
    base_epochs = getattr(cls, "nnwatch_epochs", None)
    if base is None and cls.__module__ == _BUILTIN_LENGTH_MODULE:
        match = _BUILTIN_LENGTH_RE.fullmatch(cls.__name__)
        if match is not None:
            base, base_epochs = "nnUNetTrainer", int(match.group(1))
    return TrainerInfo(name=cls.__name__, module=cls.__module__, search_path=search_path,
                       base_trainer=base, base_epochs=base_epochs)


def locate_trainer(name: str, environ: Mapping[str, str] | None = None) -> TrainerInfo | None:
    """Find trainer ``name`` the way nnU-Net does (its package first, then ``nnUNet_extTrainer``).

    Imports nnU-Net (and therefore torch) on first use. nnU-Net's own prints are swallowed so a
    ``--json`` caller's stdout stays one JSON object.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    environ = os.environ if environ is None else environ
    importlib.invalidate_caches()
    # nnU-Net's prints and torch's import-time deprecation warnings are noise for nnwatch's callers.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls = recursive_find_python_class(str(nnunet_trainer_folder()), name, "nnunetv2.training.nnUNetTrainer")
        if cls is not None:
            return _describe(cls, None)
        for folder in environ.get("nnUNet_extTrainer", "").split(os.pathsep):
            if not folder.strip() or not os.path.isdir(folder):
                continue
            with _on_sys_path(folder):
                cls = recursive_find_python_class(folder, name, None)
                if cls is not None:
                    return _describe(cls, os.path.abspath(folder))
    return None


def find_trainer(name: str, environ: Mapping[str, str] | None = None) -> TrainerInfo | None:
    """Where nnU-Net's search would find trainer ``name``, read from the sources (:mod:`trainer.trainer_scan`):
    milliseconds, no import of torch or nnU-Net. :func:`install_variant` confirms with the import at submit."""
    found = scan_trainer(name, environ)
    if found is None:
        return None
    base, base_epochs = found.base_trainer, found.base_epochs
    if base is None and found.module == _BUILTIN_LENGTH_MODULE:
        match = _BUILTIN_LENGTH_RE.fullmatch(found.name)
        if match is not None:
            base, base_epochs = "nnUNetTrainer", int(match.group(1))
    return TrainerInfo(name=found.name, module=found.module, search_path=found.search_path,
                       base_trainer=base, base_epochs=base_epochs)


def render_variant_source(name: str, epochs: int, parent: TrainerInfo) -> str:
    """The text of a generated variant module (pure: what ``install_variant`` writes)."""
    validate_name("trainer", name)
    validate_name("trainer", parent.name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", parent.module):
        raise VariantError(f"unexpected module name for trainer {parent.name}: {parent.module!r}")
    return f'''"""nnU-Net trainer generated by nnwatch: {parent.name} with num_epochs = {epochs}. Do not edit.

Runs trained with {name} need this module for nnUNetv2_predict; delete it only with them.
"""

import importlib
import inspect
import sys

_PARENT_MODULE = {parent.module!r}
_PARENT_NAME = {parent.name!r}
_SEARCH_PATH = {parent.search_path!r}


def _load_parent():
    if _SEARCH_PATH is not None and _SEARCH_PATH not in sys.path:
        sys.path.append(_SEARCH_PATH)
    return getattr(importlib.import_module(_PARENT_MODULE), _PARENT_NAME)


try:
    _Parent = _load_parent()
except Exception:  # nnU-Net imports every trainer module on each lookup: never break the others
    _Parent = None

if _Parent is not None:

    class {name}(_Parent):
        """{parent.name}, trained for {epochs} epochs from scratch (generated by nnwatch)."""

        nnwatch_base_trainer = {parent.name!r}
        nnwatch_epochs = {epochs}

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_epochs = {epochs}

        # nnU-Net records its init arguments by reading the signature: keep the parent's.
        __init__.__signature__ = inspect.signature(_Parent.__init__)
'''


def resolve_variant(parent_trainer: str, epochs: int, environ: Mapping[str, str] | None = None) -> VariantSpec:
    """Decide which trainer an ``epochs``-long copy of ``parent_trainer`` uses (writes nothing, imports nothing:
    the classes are found in the sources by :func:`find_trainer`).

    Raises :class:`VariantError` when the parent cannot be found by nnU-Net, or when a class with the
    variant's name exists but is not a schedule-only variant of the same parent.
    """
    environ = os.environ if environ is None else environ
    validate_name("trainer", parent_trainer)
    parent = find_trainer(parent_trainer, environ)
    if parent is None:
        raise VariantError(
            f"nnU-Net cannot find the parent run's trainer {parent_trainer!r} (searched its "
            f"nnunetv2/training/nnUNetTrainer package and nnUNet_extTrainer="
            f"{environ.get('nnUNet_extTrainer', '')!r}); it must be importable to be extended"
        )
    if parent.base_trainer is not None:
        base = find_trainer(parent.base_trainer, environ)
        if base is None:
            raise VariantError(f"{parent_trainer} lengthens {parent.base_trainer}, which nnU-Net cannot find")
        parent = base
    name = validate_name("trainer", f"{parent.name}_{epochs}epochs")
    existing = find_trainer(name, environ)
    if existing is not None:
        if existing.base_trainer != parent.name or existing.base_epochs != epochs:
            raise VariantError(
                f"a trainer called {name} already exists ({existing.module}) but is not {parent.name} with "
                f"num_epochs = {epochs}; rename it to let nnwatch generate its own"
            )
        return VariantSpec(name=name, epochs=epochs, parent=parent, builtin=True, folder=None,
                           in_nnunet_package=existing.search_path is None, source="")
    folder, in_package = variants_folder(environ)
    return VariantSpec(name=name, epochs=epochs, parent=parent, builtin=False, folder=folder,
                       in_nnunet_package=in_package, source=render_variant_source(name, epochs, parent))


def install_variant(spec: VariantSpec, environ: Mapping[str, str] | None = None) -> None:
    """Write the generated module (idempotent, atomic) and check that nnU-Net's search now finds it, by importing
    it as nnU-Net will (a variant that nnU-Net ships or that exists already is only imported)."""
    environ = dict(os.environ if environ is None else environ)
    if spec.module_path is None:
        if locate_trainer(spec.name, environ) is None:
            raise VariantError(f"nnU-Net's search does not find {spec.name} when it imports its trainers "
                               f"(a module that fails to import, or a missing parent of {spec.name})")
        return
    assert spec.folder is not None
    if not spec.in_nnunet_package and not nnunet_supports_ext_trainers():
        raise VariantError(f"this nnunetv2 has no nnUNet_extTrainer support and cannot find {spec.folder}; "
                           "upgrade nnunetv2 to >= 2.6 or make its package folder writable")
    try:
        spec.folder.mkdir(parents=True, exist_ok=True)
        init = spec.folder / "__init__.py"
        if spec.in_nnunet_package and not init.exists():
            init.write_text('"""Trainer variants generated by nnwatch (one module per class)."""\n')
        target = spec.module_path
        if not target.exists() or target.read_text() != spec.source:
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(spec.source)
            os.replace(tmp, target)
    except OSError as exc:
        raise VariantError(f"cannot write trainer variant {spec.name} to {spec.folder}: {exc}") from exc
    if spec.ext_trainer_dir is not None:
        environ["nnUNet_extTrainer"] = join_search_path(spec.ext_trainer_dir, environ.get("nnUNet_extTrainer"))
    found = locate_trainer(spec.name, environ)
    if found is None or found.base_epochs != spec.epochs:
        raise VariantError(f"wrote {spec.module_path} but nnU-Net's search does not find {spec.name} in it")


def join_search_path(folder: str, existing: str | None) -> str:
    """``existing`` with ``folder`` appended once (``nnUNet_extTrainer`` is an ``os.pathsep`` list)."""
    parts = [part for part in (existing or "").split(os.pathsep) if part]
    if folder not in parts:
        parts.append(folder)
    return os.pathsep.join(parts)
