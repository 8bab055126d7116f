"""One run's real validation: its summary, whether it is current, which checkpoint it scored, and its npz files.

nnU-Net validates at the end of training (and again with ``nnUNetv2_train … --val``) into ``fold_N/validation/``
(v1: ``validation_raw/``). A summary older than the final checkpoint scored an earlier model: it is *stale*.
``--val_best`` scores ``checkpoint_best.pth`` but writes into the same folder with nothing in it to say so (nnU-Net's
own help warns of this), so the files can prove a best-checkpoint validation only when the final checkpoint is
absent; otherwise the final checkpoint is presumed, unless the caller knows better (a job it started).
``--npz`` adds one ``.npz`` of softmax probabilities per case, which ensembling and
``nnUNetv2_find_best_configuration`` need.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from monitor.runs.labels import dataset_labels
from monitor.validation.summary import SummaryError, ValidationSummary, read_summary

__all__ = ["CheckpointUsed", "RunValidation", "ValidationStatus", "label_names", "pseudo_gap_sentence",
           "read_run_validation", "validation_folder"]

_FOLDERS = {"v2": "validation", "v1": "validation_raw"}
_FINAL = ("checkpoint_final.pth", "model_final_checkpoint.model")
_BEST = ("checkpoint_best.pth", "model_best.model")


class ValidationStatus(str, Enum):
    """Whether a run has a real validation to show."""

    CURRENT = "current"  # a readable summary at least as new as the final checkpoint
    STALE = "stale"  # a readable summary older than the final checkpoint
    MISSING = "missing"  # no summary.json
    UNREADABLE = "unreadable"  # a summary.json that is cut off or of an unknown layout

    def __str__(self) -> str:
        return self.value


class CheckpointUsed(str, Enum):
    """Which checkpoint the validation scored, as far as the files (or a caller's job record) can tell."""

    FINAL = "final"
    BEST = "best"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunValidation:
    """The real validation of one fold folder; ``summary`` is None unless it was read."""

    run_dir: Path
    folder: Path  # the validation folder (present or not)
    status: ValidationStatus
    summary: ValidationSummary | None
    error: str | None  # why an existing summary could not be read
    checkpoint: CheckpointUsed
    checkpoint_evidence: str
    npz_files: int
    prediction_files: int
    final_checkpoint_mtime: float | None
    labels: dict[str, str]  # class key → name from dataset.json (may be empty)

    @property
    def readable(self) -> bool:
        return self.summary is not None

    @property
    def cases(self) -> int:
        return len(self.summary.cases) if self.summary is not None else 0

    @property
    def npz_complete(self) -> bool:
        """Every validation case has its ``.npz`` (what ensembling and find_best_configuration read)."""
        return self.npz_files > 0 and self.npz_files >= max(self.cases, self.prediction_files)

    def label(self, key: str) -> str:
        """A class key's name from dataset.json, or ``class <key>``."""
        return self.labels.get(key, f"class {key}")

    @property
    def reason(self) -> str:
        """One sentence on the state of this validation."""
        if self.status is ValidationStatus.MISSING:
            return ("No real validation yet: nnU-Net writes validation/summary.json when training finishes "
                    "(or with nnUNetv2_train … --val).")
        if self.status is ValidationStatus.UNREADABLE:
            return f"The validation summary could not be read: {self.error}."
        assert self.summary is not None
        text = f"Real validation of {self.cases} cases"
        if self.status is ValidationStatus.STALE:
            text += (", older than checkpoint_final: it scored an earlier model; validate again "
                     "(nnUNetv2_train … --val) to score the final one")
        if self.checkpoint is CheckpointUsed.BEST:
            text += "; it scored checkpoint_best, not the final checkpoint"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary
        return {
            "status": self.status.value,
            "summary": str(summary.path) if summary is not None else None,
            "error": self.error,
            "checkpoint": self.checkpoint.value,
            "checkpoint_evidence": self.checkpoint_evidence,
            "cases": self.cases,
            "npz_files": self.npz_files,
            "foreground_dice": summary.foreground_dice if summary is not None else None,
            "per_class": ({self.label(c.key): {"key": c.key, "dice": c.dice, "iou": c.iou} for c in summary.classes}
                          if summary is not None else {}),
            "flags": list(summary.flags) if summary is not None else [],
            "reason": self.reason,
        }


def validation_folder(run_dir: Path, nnunet_version: str | None = None) -> Path:
    """Where nnU-Net writes the validation of a fold: ``validation`` (v2) or ``validation_raw`` (v1)."""
    if nnunet_version in _FOLDERS:
        return run_dir / _FOLDERS[nnunet_version]
    for name in _FOLDERS.values():
        if (run_dir / name).is_dir():
            return run_dir / name
    return run_dir / ("validation_raw" if any((run_dir / n).exists() for n in _FINAL[1:] + _BEST[1:])
                      else "validation")


def label_names(model_dir: Path) -> dict[str, str]:
    """Class key (as summary.json writes it) → name, from the ``dataset.json`` in the model folder."""
    try:
        data = json.loads((model_dir / "dataset.json").read_text())
    except (OSError, ValueError):
        return {}
    return {key: label.name for label in dataset_labels(data) for key in label.keys if key != "0"}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _count(folder: Path) -> tuple[int, int]:
    """(npz files, predicted segmentations) in a validation folder."""
    npz = predictions = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".npz"):
                    npz += 1
                elif not name.endswith((".json", ".pkl", ".txt")) and entry.is_file():
                    predictions += 1
    except OSError:
        pass
    return npz, predictions


def _checkpoint(run_dir: Path, summary_mtime: float | None, val_best: bool | None) -> tuple[CheckpointUsed, str]:
    final = next((run_dir / n for n in _FINAL if (run_dir / n).exists()), None)
    best = next((run_dir / n for n in _BEST if (run_dir / n).exists()), None)
    if val_best is True:
        return CheckpointUsed.BEST, "the job that ran this validation passed --val_best"
    if val_best is False:
        return CheckpointUsed.FINAL, "the job that ran this validation scored checkpoint_final"
    if summary_mtime is None:
        return CheckpointUsed.UNKNOWN, "no validation"
    if final is None and best is not None:
        return CheckpointUsed.BEST, (f"there is no final checkpoint, only {best.name}: nnU-Net validates without "
                                     "the final checkpoint only with --val_best")
    if final is not None:
        return CheckpointUsed.FINAL, ("presumed: nnU-Net validates checkpoint_final unless --val_best was given, "
                                      "and --val_best writes into the same folder without marking it")
    return CheckpointUsed.UNKNOWN, "neither a final nor a best checkpoint is left in the fold folder"


def read_run_validation(run_dir: str | os.PathLike[str], *, nnunet_version: str | None = None,
                        val_best: bool | None = None) -> RunValidation:
    """The real validation of one fold folder. Never raises for a missing or broken summary: the status says so.

    ``val_best``: what a job record says about the last validation (True: ``--val_best``), when the caller knows.
    """
    run_dir = Path(run_dir)
    folder = validation_folder(run_dir, nnunet_version)
    summary: ValidationSummary | None = None
    error = None
    try:
        summary = read_summary(folder / "summary.json")
    except FileNotFoundError:
        pass
    except SummaryError as exc:
        error = exc.reason
    final_mtime = next((m for m in (_mtime(run_dir / n) for n in _FINAL) if m is not None), None)
    summary_mtime = summary.mtime if summary is not None else _mtime(folder / "summary.json")
    if summary is None:
        status = ValidationStatus.UNREADABLE if error is not None else ValidationStatus.MISSING
    elif final_mtime is not None and summary_mtime is not None and summary_mtime < final_mtime:
        status = ValidationStatus.STALE
    else:
        status = ValidationStatus.CURRENT
    checkpoint, evidence = _checkpoint(run_dir, summary_mtime, val_best)
    npz, predictions = _count(folder)
    return RunValidation(run_dir=run_dir, folder=folder, status=status, summary=summary, error=error,
                         checkpoint=checkpoint, checkpoint_evidence=evidence, npz_files=npz,
                         prediction_files=predictions, final_checkpoint_mtime=final_mtime,
                         labels=label_names(run_dir.parent))


def pseudo_gap_sentence(real: float, pseudo: float | None) -> str:
    """One sentence on why the real validation Dice differs from the last pseudo Dice of training."""
    why = ("pseudo Dice is nnU-Net's training-time estimate, one Dice over all voxels of a few random validation "
           "patches without sliding-window inference or mirroring, while the real validation predicts every "
           "validation case whole and averages Dice per case, so small or hard cases weigh as much as large ones")
    if pseudo is None or not math.isfinite(pseudo) or not math.isfinite(real):
        return why[0].upper() + why[1:] + "."
    gap = real - pseudo
    direction = "higher" if gap > 0 else "lower"
    return f"The real Dice is {abs(gap):.3f} {direction} than the last pseudo Dice because {why}."
