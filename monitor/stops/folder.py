"""Stop causes from the run folder alone, for any run: the training log, the merged curves, the checkpoints
and the disk they are on.

nnU-Net's training log holds no traceback (that goes to the console), so what it can show is NaN or inf
losses, a Dice stuck at 0, an epoch time that exploded before the stop, and its last lines. The folder adds a
truncated checkpoint and a full disk.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.runs.merge import Curves
from monitor.runs.status import is_dead_dice
from monitor.stops.causes import StopCause, StopDiagnosis, Strength
from monitor.stops.text import classify_text, last_lines
from monitor.tail import tail_text

__all__ = ["FolderSigns", "read_folder"]

_TAIL_BYTES = 16_384  # about the last 25 epochs of a v2 log
#: v2 ``train_loss nan`` / ``val_loss inf``; v1 ``train loss : nan``.
_NAN_LOSS = re.compile(r"\b(?:train|val(?:idation)?)[_ ]loss\s*:?\s*(?:nan|[-+]?inf)\b", re.I)
#: Below either, a write (checkpoint, validation export) can fail.
DISK_FULL_BYTES = 512 * 1024**2
DISK_FULL_FRACTION = 0.002
_EXPLODED_FACTOR = 3.0
_CHECKPOINTS = ("checkpoint_latest.pth", "checkpoint_final.pth", "checkpoint_best.pth")


@dataclass(frozen=True)
class FolderSigns:
    """What the run folder says: findings that can name a cause, notes that support one, the log's tail."""

    findings: tuple[StopDiagnosis, ...]
    notes: tuple[str, ...]
    log_tail: str
    log_name: str | None


def _newest_log(run_dir: Path) -> Path | None:
    try:
        logs = [entry for entry in os.scandir(run_dir)
                if entry.name.startswith("training_log") and entry.name.endswith(".txt")]
    except OSError:
        return None
    if not logs:
        return None
    return Path(max(logs, key=lambda entry: entry.stat().st_mtime).path)


def _nan_loss(tail: str, source: str) -> StopDiagnosis | None:
    lowered = tail.lower()
    if "nan" not in lowered and "inf" not in lowered:
        return None
    lines = [line.strip() for line in tail.splitlines() if "loss" in line.lower() and _NAN_LOSS.search(line)]
    if not lines:
        return None
    return StopDiagnosis(StopCause.NAN_LOSS, "\n".join(lines[-4:]), source, Strength.MEDIUM,
                         f"the loss became NaN or inf ({len(lines)} such loss lines in the log's tail)")


def _disk(run_dir: Path) -> StopDiagnosis | None:
    try:
        usage = shutil.disk_usage(run_dir)
    except OSError:
        return None
    if usage.free >= DISK_FULL_BYTES and usage.free >= DISK_FULL_FRACTION * usage.total:
        return None
    evidence = (f"{usage.free / 1024**2:.0f} MB free of {usage.total / 1024**3:.1f} GB on the file system of "
                f"{run_dir}")
    return StopDiagnosis(StopCause.DISK_FULL, evidence, "run folder", Strength.MEDIUM,
                         "the disk holding the run is (nearly) full")


def _checkpoint_notes(run_dir: Path) -> list[str]:
    notes = []
    for name in _CHECKPOINTS:
        path = run_dir / name
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size == 0 or not zipfile.is_zipfile(path):
            notes.append(f"{name} is truncated or unreadable ({size} bytes): the run was stopped while saving "
                         "it, or the disk filled up")
    return notes


def _curve_notes(curves: Curves | None) -> list[str]:
    if curves is None or len(curves) == 0:
        return []
    notes = []
    if is_dead_dice(curves.mean_fg_dice[-20:].tolist()):
        notes.append("pseudo Dice was 0 or NaN over the last epochs: the run was not learning")
    times = np.asarray(curves.epoch_time_s, dtype=np.float64)
    finite = times[np.isfinite(times) & (times > 0)]
    if finite.size >= 6 and np.isfinite(times[-1]):
        before = float(np.median(finite[-21:-1]))
        if before > 0 and times[-1] > _EXPLODED_FACTOR * before:
            notes.append(f"the last epoch took {times[-1]:.0f} s, {times[-1] / before:.1f}× the median before it "
                         "(swapping, a slow file system, or a struggling data loader)")
    return notes


def read_folder(run_dir: Path, curves: Curves | None = None) -> FolderSigns:
    """The run folder's findings and notes (a missing or unreadable folder gives none)."""
    findings: list[StopDiagnosis] = []
    log = _newest_log(run_dir)
    tail = (tail_text(log, _TAIL_BYTES) or "") if log is not None else ""
    source = f"training log {log.name}" if log is not None else "run folder"
    if tail:
        nan = _nan_loss(tail, source)
        if nan is not None:
            findings.append(nan)
        from_text = classify_text(tail, source, Strength.MEDIUM)
        if from_text is not None:
            findings.append(from_text)
    disk = _disk(run_dir)
    if disk is not None:
        findings.append(disk)
    notes = _checkpoint_notes(run_dir) + _curve_notes(curves)
    return FolderSigns(tuple(findings), tuple(notes), last_lines(tail, 8), log.name if log is not None else None)
