"""nnU-Net's results-tree layout: the only module that knows its folder names.

v2: ``<Dataset>/<Trainer>__<Plans>__<configuration>/fold_<N>/``; v1:
``nnUNet/<configuration>/<Task>/<Trainer>__<Plans>/fold_<N>/``. Trees may nest them at any depth, so a run
is recognised by its fold folder and the names of its parents.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FOLD_DIR_RE",
    "RunLocation",
    "discover_runs",
    "locate_run",
    "parse_run_path",
    "split_schedule_suffix",
]

FOLD_DIR_RE = re.compile(r"^fold_(\d+|all)$")
_V2_MODEL_DIR_RE = re.compile(r"^(?P<trainer>[^_][^/]*?)__(?P<plans>[^/]+?)__(?P<configuration>[^/_][^/]*)$")
_V1_MODEL_DIR_RE = re.compile(r"^(?P<trainer>[^/]+?)__(?P<plans>[^/]+)$")
_V1_CONFIGURATIONS = frozenset({"2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres"})

# Files whose presence marks a folder as a run even before its first log line is written.
RUN_MARKERS = ("training_log_", "checkpoint_", "model_", "debug.json", "progress.png")


@dataclass(frozen=True)
class RunLocation:
    """Where a run lives and what its folder names say about it; ``run_id`` is the fold folder relative to the
    results root, ``/``-separated, stable across machines."""

    run_id: str
    path: Path
    nnunet_version: str  # "v2" or "v1"
    dataset: str
    trainer: str
    plans: str
    configuration: str
    fold: str  # "0".."N" or "all"
    problems: tuple[str, ...] = field(default=(), compare=False)


_SCHEDULE_SUFFIX_RE = re.compile(r"^(?P<base>.+)_(?P<epochs>\d+)epochs$")


def split_schedule_suffix(trainer: str) -> tuple[str, int] | None:
    """``nnUNetTrainer_2000epochs`` → (``nnUNetTrainer``, 2000), a schedule-length variant; else None."""
    match = _SCHEDULE_SUFFIX_RE.match(trainer)
    return (match.group("base"), int(match.group("epochs"))) if match else None


def parse_run_path(path: Path, run_id: str) -> RunLocation | None:
    """Interpret a fold folder's path; ``None`` when its parents do not follow either layout."""
    fold_match = FOLD_DIR_RE.match(path.name)
    if fold_match is None:
        return None
    fold = fold_match.group(1)
    model_dir = path.parent.name
    v1_match = _V1_MODEL_DIR_RE.match(model_dir)
    parents = path.parent.parent
    # v1: .../nnUNet/<configuration>/<Task>/<Trainer>__<Plans>/fold_N (no configuration in the folder name).
    if (
        v1_match is not None
        and "__" not in v1_match.group("plans")
        and parents.parent.name in _V1_CONFIGURATIONS
    ):
        return RunLocation(
            run_id=run_id,
            path=path,
            nnunet_version="v1",
            dataset=parents.name,
            trainer=v1_match.group("trainer"),
            plans=v1_match.group("plans"),
            configuration=parents.parent.name,
            fold=fold,
        )
    v2_match = _V2_MODEL_DIR_RE.match(model_dir)
    if v2_match is not None:
        return RunLocation(
            run_id=run_id,
            path=path,
            nnunet_version="v2",
            dataset=parents.name,
            trainer=v2_match.group("trainer"),
            plans=v2_match.group("plans"),
            configuration=v2_match.group("configuration"),
            fold=fold,
        )
    return None


def locate_run(run_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> RunLocation:
    """Describe one fold folder given by the user; its ``run_id`` is relative to ``root`` when under it, else
    the last three path parts (as a scan would name it)."""
    path = Path(run_dir).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    run_id = None
    if root is not None:
        try:
            run_id = path.relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            run_id = None
    if run_id is None:
        run_id = "/".join(path.parts[-3:])
    location = parse_run_path(path, run_id)
    if location is not None:
        return location
    return RunLocation(
        run_id=run_id,
        path=path,
        nnunet_version="unknown",
        dataset=path.parent.parent.name,
        trainer=path.parent.name,
        plans="",
        configuration="",
        fold=path.name,
        problems=(f"folder {path.name!r} does not follow nnU-Net's fold_<N> layout",),
    )


def _looks_like_run(entries: list[os.DirEntry[str]]) -> bool:
    return any(entry.name.startswith(RUN_MARKERS) for entry in entries)


def discover_runs(root: str | os.PathLike[str], problems: list[str] | None = None) -> list[RunLocation]:
    """Every fold folder under ``root``, at any depth, sorted by ``run_id``.

    Symlinks are followed, but each real folder once, so loops end. Unreadable folders go to ``problems`` and
    are skipped: one bad permission must not hide the rest of the tree.
    """
    root_path = Path(root).absolute()
    found: list[RunLocation] = []
    notes = problems if problems is not None else []
    for path, entries in _walk(root_path, notes):
        if FOLD_DIR_RE.match(path.name) is None:
            continue
        run_id = path.relative_to(root_path).as_posix()
        location = parse_run_path(path, run_id)
        if location is None:
            if _looks_like_run(entries):
                notes.append(f"{run_id}: looks like a run but its parent folders follow no nnU-Net layout")
            continue
        found.append(location)
    found.sort(key=lambda loc: loc.run_id)
    return found


def _walk(root: Path, problems: list[str]) -> Iterator[tuple[Path, list[os.DirEntry[str]]]]:
    """Depth-first walk yielding each folder with its entries; survives loops and unreadable folders."""
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
        except OSError as exc:
            problems.append(f"{folder}: cannot stat ({exc.strerror or exc})")
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            with os.scandir(folder) as iterator:
                entries = list(iterator)
        except OSError as exc:
            rel = folder.relative_to(root).as_posix() if folder != root else "."
            problems.append(f"{rel}: cannot read folder ({exc.strerror or exc})")
            continue
        yield folder, entries
        # A fold folder never contains further runs; skip its (possibly huge) validation output.
        if FOLD_DIR_RE.match(folder.name) and folder != root:
            continue
        children = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    children.append(Path(entry.path))
            except OSError:
                continue
        children.sort(reverse=True)
        stack.extend(children)

