"""What a run reader needs to go on where it stopped, and the file signature that says nothing changed since.

A persistent index (:mod:`monitor.index`) stores a :class:`ReaderState` per run; ``RunReader.resume`` rebuilds the
reader from it without parsing, and the next ``refresh()`` reads only what was appended. :func:`files_signature`
is compared before that: equal signatures mean the stored summary is still the run's summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from monitor.runs.cursor import CursorState
from monitor.runs.layout import RunLocation
from monitor.runs.merge import Curves
from monitor.runs.metadata import RunMetadata

__all__ = ["CheckpointState", "FileSignature", "ReaderState", "files_signature"]

#: (path relative to the fold folder, size, mtime in ns, inode) per file the reader looks at, sorted.
FileSignature = tuple[tuple[str, int, int, int], ...]

_SIDE_FILES = ("debug.json", "../dataset.json", "validation/summary.json", "validation_raw/summary.json")
_CHECKPOINT_SUFFIXES = (".pth", ".model")


@dataclass(frozen=True)
class CheckpointState:
    """One checkpoint as the reader last saw it: its (size, mtime) signature, curves read from it, or why not."""

    name: str
    size: int
    mtime: float
    curves: Curves | None
    problem: str | None


@dataclass(frozen=True)
class ReaderState:
    """A :class:`monitor.runs.RunReader` between two refreshes: cursors in log order, checkpoints, side files."""

    files: tuple[str, ...]
    logs: tuple[CursorState, ...]
    checkpoints: tuple[CheckpointState, ...]
    metadata: RunMetadata | None
    metadata_signature: tuple[tuple[int, float] | None, ...]


def files_signature(location: RunLocation) -> FileSignature:
    """Size, mtime and inode of every file the reader reads in this fold folder (logs, checkpoints, side files).
    Raises ``FileNotFoundError`` when the folder is gone."""
    folder = location.path
    names = [name for name in os.listdir(folder)
             if (name.startswith("training_log") and name.endswith(".txt")) or name.endswith(_CHECKPOINT_SUFFIXES)]
    found = []
    for name in sorted(set(names) | set(_SIDE_FILES)):
        try:
            info = os.stat(folder / name)
        except OSError:
            continue
        found.append((name, info.st_size, info.st_mtime_ns, info.st_ino))
    return tuple(found)
