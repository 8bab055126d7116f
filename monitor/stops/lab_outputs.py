"""A folder of scheduler output files the lab already keeps (``slurm-%j.out``), matched to a run.

A file belongs to a run when it mentions the run's fold folder: its absolute path, or its
``<Dataset>/<Trainer>__<Plans>__<configuration>/fold_N`` part. The newest matching file wins. Files are read
whole up to a size limit (head and tail beyond it), so a folder of thousands of small files stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.runs.layout import RunLocation

__all__ = ["OUTPUT_SUFFIXES", "matching_output"]

OUTPUT_SUFFIXES = (".out", ".err", ".log", ".txt")
_MAX_FILES = 5000
_WHOLE_BYTES = 4 * 1024**2
_PART_BYTES = 1024**2


def _read(path: str, size: int) -> str:
    with open(path, "rb") as handle:
        if size <= _WHOLE_BYTES:
            data = handle.read()
        else:
            data = handle.read(_PART_BYTES) + b"\n...\n"
            handle.seek(size - _PART_BYTES)
            data += handle.read()
    return data.decode("utf-8", "replace")


def _needles(location: RunLocation) -> tuple[str, ...]:
    parts = Path(location.path).parts
    relative = "/".join(parts[-3:]) if location.nnunet_version == "v2" else "/".join(parts[-4:])
    return (str(location.path), relative)


def matching_output(folder: Path, location: RunLocation) -> tuple[Path, str] | None:
    """The newest output file in ``folder`` that mentions the run's fold folder, with its text; else None."""
    try:
        entries = [entry for entry in os.scandir(folder)
                   if entry.is_file() and entry.name.endswith(OUTPUT_SUFFIXES)]
    except OSError:
        return None
    entries.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    needles = _needles(location)
    for entry in entries[:_MAX_FILES]:
        try:
            text = _read(entry.path, entry.stat().st_size)
        except OSError:
            continue
        if any(needle in text for needle in needles):
            return Path(entry.path), text
    return None
