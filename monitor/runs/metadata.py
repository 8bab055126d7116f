"""The small JSON files around a run: planned epochs, label names, final validation Dice.

``debug.json`` (trainer attributes) in the fold folder, ``dataset.json`` in the model folder, and
``validation/summary.json`` (v1: ``validation_raw/``). All optional: a run that died early has none, and a
half-written one must not take the run down with it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.runs.labels import dataset_labels

__all__ = ["RunMetadata", "default_planned_epochs", "planned_epochs_from_lr", "read_metadata"]

_EPOCHS_IN_NAME = re.compile(r"_(\d+)(?:ep|epochs?)(?:_|$)")
# Trainers whose schedule length is known without any file: nnU-Net's defaults.
_DEFAULT_EPOCHS = {"nnUNetTrainer": 1000, "nnUNetTrainerV2": 1000}


@dataclass
class RunMetadata:
    """What the JSON side files say; every field may be unknown (None / empty)."""

    planned_epochs: int | None = None
    planned_epochs_source: str | None = None  # "debug.json" or "trainer name"
    class_names: list[str] = field(default_factory=list)
    final_validation_dice: float | None = None
    initial_lr: float | None = None
    device: str | None = None  # the torch device nnU-Net trained on ("cuda:0", "cpu"), from debug.json
    problems: list[str] = field(default_factory=list)


def _load_json(path: Path, problems: list[str]) -> Any:
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: unreadable ({type(exc).__name__}: {str(exc)[:80]})")
        return None


def _as_int(value: Any) -> int | None:
    try:
        number = int(float(str(value)))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def read_metadata(fold_dir: Path, trainer: str) -> RunMetadata:
    """Read the side files of one fold folder; missing files are normal, broken ones are problems."""
    meta = RunMetadata()
    debug = _load_json(fold_dir / "debug.json", meta.problems)
    if isinstance(debug, dict):
        epochs = _as_int(debug.get("num_epochs", debug.get("max_num_epochs")))
        if epochs is not None:
            meta.planned_epochs, meta.planned_epochs_source = epochs, "debug.json"
        device = debug.get("device")
        meta.device = str(device) if isinstance(device, str) and device else None
        lr = debug.get("initial_lr")
        try:
            meta.initial_lr = float(lr) if lr is not None else None
        except ValueError:
            meta.initial_lr = None
    if meta.planned_epochs is None:
        match = _EPOCHS_IN_NAME.search(trainer)
        if match:
            meta.planned_epochs, meta.planned_epochs_source = int(match.group(1)), "trainer name"
    for candidate in (fold_dir.parent / "dataset.json", fold_dir / "dataset.json"):
        names = [label.name for label in dataset_labels(_load_json(candidate, meta.problems))]
        if names:
            meta.class_names = names
            break
    meta.final_validation_dice = _final_dice(fold_dir, meta.problems)
    return meta


def _final_dice(fold_dir: Path, problems: list[str]) -> float | None:
    """The foreground mean Dice of nnU-Net's final validation, read by :mod:`monitor.validation`."""
    from monitor.validation import SummaryError, read_summary  # imported here: monitor.validation reads layouts

    for name in ("validation", "validation_raw"):
        try:
            return read_summary(fold_dir / name / "summary.json").foreground_dice
        except FileNotFoundError:
            continue
        except SummaryError as exc:
            problems.append(f"{name}/summary.json: {exc.reason}")
    return None


def default_planned_epochs(trainer: str) -> int | None:
    """nnU-Net's own default schedule for its stock trainer names; a last resort after the lr schedule."""
    return _DEFAULT_EPOCHS.get(trainer)


def planned_epochs_from_lr(epochs: list[int], lrs: list[float], initial_lr: float | None) -> int | None:
    """Invert nnU-Net's poly schedule ``lr = lr0·(1 − e/N)^0.9`` to recover N from logged rates. Each rate
    between 5 % and 95 % of ``lr0`` gives an estimate; None unless they agree within 2 %."""
    lr0 = initial_lr if initial_lr else (lrs[0] if epochs and epochs[0] == 0 and lrs[0] > 0 else 0.01)
    estimates = []
    for epoch, lr in zip(epochs, lrs):
        if math.isnan(lr) or epoch <= 0:
            continue
        ratio = lr / lr0
        if 0.05 < ratio < 0.95:
            remaining = ratio ** (1 / 0.9)
            estimates.append(epoch / (1 - remaining))
    if len(estimates) < 5:
        return None
    estimates.sort()
    low, mid, high = (estimates[len(estimates) // 10], estimates[len(estimates) // 2],
                      estimates[(9 * len(estimates)) // 10])
    if mid <= 0 or (high - low) / mid > 0.02 or not math.isfinite(mid):
        return None
    return int(round(mid))
