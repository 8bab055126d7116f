"""Runs for the report tests, written by :mod:`monitor.synth` at the fold folder a test names.

The reports are exercised through the real parser and analyzer on real log text, not a mocked frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from monitor.synth import CurveSpec, RunSpec, write_folds, write_run

__all__ = ["make_dataset_tree", "model_dir", "write_v1_run", "write_v2_run"]

DEFAULT_LABELS = ("liver", "tumour")
# Class levels below the plateau; uneven, so no class sits exactly on the mean (and under the EMA line).
_CLASS_OFFSETS = (0.0, 0.22, 0.07, 0.3, 0.12, 0.18)


def model_dir(root: Path, dataset: str, configuration: str, trainer: str = "nnUNetTrainer",
              plans: str = "nnUNetPlans") -> Path:
    """``<root>/<Dataset>/<Trainer>__<Plans>__<configuration>`` (nnU-Net v2's layout)."""
    return root / dataset / f"{trainer}__{plans}__{configuration}"


def write_v2_run(run_dir: Path, *, epochs: int, planned: int = 1000, classes: Sequence[str] = DEFAULT_LABELS,
                 running: bool = False, nan_classes: Sequence[int] = (), seed: int = 0, plateau: float = 0.85,
                 tau: float = 60.0) -> Path:
    """A v2 fold at ``run_dir``: finished when all ``planned`` epochs are done, else running or crashed.

    ``nan_classes`` (0-based) log ``nan``, as nnU-Net does when a label never appears in the validation batches.
    """
    trainer, plans, configuration = run_dir.parent.name.split("__")
    ceilings = tuple(math.nan if k in nan_classes else plateau - _CLASS_OFFSETS[k % len(_CLASS_OFFSETS)]
                     for k in range(len(classes)))
    state = "finished" if epochs >= planned else "running" if running else "crashed"
    spec = RunSpec(run_dir.parent.parent.name, trainer, configuration, run_dir.name[5:], planned,
                   CurveSpec(ceilings, timescale=tau / planned, seed=seed), epochs_done=epochs, state=state,
                   plans=plans)
    return write_run(run_dir.parents[2], spec, labels=classes).folder


def write_v1_run(run_dir: Path, *, epochs: int, planned: int = 1000, seed: int = 1) -> Path:
    """A crashed v1 (``nnUNetTrainerV2``) fold at ``run_dir`` (``<root>/nnUNet/<config>/<Task>/<Trainer>__<Plans>``)."""
    trainer, plans = run_dir.parent.name.split("__")
    spec = RunSpec(run_dir.parent.parent.name, trainer, run_dir.parents[2].name, run_dir.name[5:], planned,
                   CurveSpec(seed=seed), epochs_done=epochs, state="crashed", version="v1", plans=plans)
    return write_run(run_dir.parents[4], spec).folder


def make_dataset_tree(root: Path, *, dataset: str = "Dataset004_Hippocampus", configuration: str = "3d_fullres",
                      trainer: str = "nnUNetTrainer", epochs: Sequence[int] = (1000,) * 5, planned: int = 1000,
                      classes: Sequence[str] = ("anterior", "posterior"), seed: int = 10) -> list[Path]:
    """The folds of one dataset × configuration; a fold with fewer epochs than ``planned`` crashed."""
    return write_folds(root, dataset, configuration, epochs, planned=planned, trainer=trainer, labels=classes,
                       seed=seed)
