"""Synthetic nnU-Net results trees for the report tests and benchmark: real log text, realistic curves.

The logs are written line for line the way nnU-Net prints them (v2 ``nnUNetTrainer`` and v1
``nnUNetTrainerV2``, with the epoch formatters of :mod:`logwriters`), so the reports are exercised
through the real parser, not a mocked frame. Curves
follow the usual shape: a saturating rise, noise, and a small late rise while the poly learning rate
anneals. Everything is seeded, so an image differs between runs only by its "made at" time.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from logwriters import v1_epoch, v2_epoch

__all__ = ["SyntheticRun", "make_dataset_tree", "model_dir", "write_v1_run", "write_v2_run"]

DEFAULT_LABELS = ("liver", "tumour")
_START = datetime(2024, 1, 1, 8, 0, 0)
# Class levels below the plateau; uneven, so no class sits exactly on the mean (and under the EMA line).
_CLASS_OFFSETS = (0.0, 0.22, 0.07, 0.3, 0.12, 0.18)


@dataclass(frozen=True)
class SyntheticRun:
    """What was written: the fold folder and the numbers a test may check against."""

    path: Path
    epochs: int
    planned: int
    classes: tuple[str, ...]


def _curves(epochs: int, planned: int, n_classes: int, seed: int, *, plateau: float = 0.85,
            tau: float = 60.0) -> dict[str, np.ndarray]:
    """Per-epoch lr, losses and per-class Dice shaped like a real nnU-Net run."""
    rng = np.random.default_rng(seed)
    t = np.arange(epochs, dtype=float)
    lr = 0.01 * (1.0 - t / planned) ** 0.9
    rise = 1.0 - np.exp(-t / tau)
    anneal = 0.02 * np.clip((t / planned - 0.8) / 0.2, 0.0, 1.0)
    dice = np.empty((epochs, n_classes))
    for k in range(n_classes):
        level = plateau - _CLASS_OFFSETS[k % len(_CLASS_OFFSETS)]
        noise = rng.normal(0.0, 0.012 + 0.01 * k, epochs)
        dice[:, k] = np.clip(level * rise + anneal + noise, 0.0, 1.0)
    mean = dice.mean(axis=1)
    train_loss = -0.95 * rise - 0.05 * t / max(planned, 1) + rng.normal(0, 0.01, epochs) + 0.2
    val_loss = -0.85 * rise + rng.normal(0, 0.02, epochs) + 0.25
    return {"lr": lr, "dice": dice, "mean": mean, "train_loss": train_loss, "val_loss": val_loss,
            "epoch_time": 100.0 + rng.normal(0, 3, epochs)}


def _write_side_files(run_dir: Path, planned: int, classes: Sequence[str], final_dice: float | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "debug.json").write_text(json.dumps({"num_epochs": str(planned), "initial_lr": "0.01"}))
    labels = {"background": 0, **{name: k + 1 for k, name in enumerate(classes)}}
    (run_dir.parent / "dataset.json").write_text(json.dumps({"labels": labels, "name": run_dir.parent.parent.name}))
    if final_dice is not None:
        validation = run_dir / "validation"
        validation.mkdir(exist_ok=True)
        (validation / "summary.json").write_text(json.dumps({"foreground_mean": {"Dice": final_dice}}))


def _age(path: Path, finished: bool, running: bool) -> None:
    """A crashed run's log stopped changing long ago; a running one was written just now."""
    if running:
        return
    old = time.time() - (3 * 86400 if not finished else 86400)
    os.utime(path, (old, old))


def write_v2_run(
    run_dir: Path,
    *,
    epochs: int,
    planned: int = 1000,
    classes: Sequence[str] = DEFAULT_LABELS,
    finished: bool | None = None,
    running: bool = False,
    nan_classes: Sequence[int] = (),
    final_dice: float | None = None,
    seed: int = 0,
    plateau: float = 0.85,
    tau: float = 60.0,
) -> SyntheticRun:
    """Write a v2 ``training_log_*.txt`` (plus ``debug.json`` and ``../dataset.json``) into ``run_dir``.

    ``finished`` defaults to "all planned epochs done"; an unfinished run that is not ``running`` gets an
    old mtime, so nnwatch calls it crashed. ``nan_classes`` (0-based) log ``nan`` for those classes,
    as nnU-Net does when a label never appears in the validation batches.
    """
    finished = (epochs >= planned) if finished is None else finished
    _write_side_files(run_dir, planned, classes, final_dice if finished else None)
    c = _curves(epochs, planned, len(classes), seed, plateau=plateau, tau=tau)
    now = _START
    lines = ["\n#######################################################################\nPlease cite nnU-Net\n"]
    for e in range(epochs):
        dice = [math.nan if k in nan_classes else float(c["dice"][e, k]) for k in range(len(classes))]
        took = float(c["epoch_time"][e])
        lines.append(v2_epoch(e, dice=dice, lr=float(c["lr"][e]), train=float(c["train_loss"][e]),
                              val=float(c["val_loss"][e]), took=took, at=now, numpy_repr=True))
        now += timedelta(seconds=took)
    if finished:
        stamp = f"{now:%Y-%m-%d %H:%M:%S.%f}"
        lines.append(f"{stamp}: Training done. \n")
        if final_dice is not None:
            lines.append(f"{stamp}: Mean Validation Dice:  {final_dice} \n")
    log = run_dir / f"training_log_{_START:%Y_%-m_%-d_%H_%M_%S}.txt"
    log.write_text("".join(lines))
    _age(log, finished, running)
    return SyntheticRun(run_dir, epochs, planned, tuple(classes))


def write_v1_run(run_dir: Path, *, epochs: int, planned: int = 1000, classes: Sequence[str] = DEFAULT_LABELS,
                 seed: int = 1) -> SyntheticRun:
    """Write a v1 (``nnUNetTrainerV2``) log: ``epoch:  N``, ``train loss :``, ``lr:`` for the next epoch."""
    _write_side_files(run_dir, planned, classes, None)
    c = _curves(epochs, planned, len(classes), seed)
    lines = [f"Starting... \n{_START:%Y-%m-%d %H:%M:%S.%f}: lr: 0.01 \n"]
    for e in range(epochs):
        lines.append(v1_epoch(e, dice=[float(v) for v in c["dice"][e]],
                              next_lr=round(0.01 * (1.0 - (e + 1) / planned) ** 0.9, 6),
                              train=float(c["train_loss"][e]), val=float(c["val_loss"][e]),
                              took=round(float(c["epoch_time"][e]), 6)))
    log = run_dir / f"training_log_{_START:%Y_%-m_%-d_%H_%M_%S}.txt"
    log.write_text("".join(lines))
    _age(log, epochs >= planned, False)
    return SyntheticRun(run_dir, epochs, planned, tuple(classes))


def model_dir(root: Path, dataset: str, configuration: str, trainer: str = "nnUNetTrainer",
              plans: str = "nnUNetPlans") -> Path:
    """``<root>/<Dataset>/<Trainer>__<Plans>__<configuration>`` (nnU-Net v2's layout)."""
    return root / dataset / f"{trainer}__{plans}__{configuration}"


def make_dataset_tree(
    root: Path,
    *,
    dataset: str = "Dataset004_Hippocampus",
    configuration: str = "3d_fullres",
    trainer: str = "nnUNetTrainer",
    folds: int = 5,
    epochs: int | Sequence[int] = 1000,
    planned: int = 1000,
    classes: Sequence[str] = ("anterior", "posterior"),
    seed: int = 10,
) -> list[SyntheticRun]:
    """Several folds of one dataset/configuration; ``epochs`` may differ per fold (a crashed fold)."""
    per_fold = [epochs] * folds if isinstance(epochs, int) else list(epochs)
    runs = []
    for fold, n in enumerate(per_fold):
        run_dir = model_dir(root, dataset, configuration, trainer) / f"fold_{fold}"
        plateau = 0.86 + 0.04 * math.sin(1.7 * fold)
        runs.append(write_v2_run(run_dir, epochs=n, planned=planned, classes=classes, seed=seed + fold,
                                 plateau=plateau, tau=40.0 + 15 * fold, final_dice=round(plateau - 0.03, 4)))
    return runs
