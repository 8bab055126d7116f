"""Test values for nnU-Net logs, formatted by :mod:`monitor.synth` (the one writer of nnU-Net's log lines).

The values encode the epoch (and ``base`` shifts them), so a test can tell which session a row came from.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from monitor.synth import log_line, make_run_dir
from monitor.synth import v1_epoch as synth_v1_epoch
from monitor.synth import v2_epoch as synth_v2_epoch

START = dt.datetime(2024, 5, 1, 10, 0, 0, 250000)


def v2_epoch(epoch: int, *, dice: list[float], lr: float = 0.01, train: float = -0.5, val: float = -0.4,
             took: float = 100.0, at: dt.datetime | None = None, numpy_repr: bool = False) -> str:
    """One completed v2 epoch starting ``at`` (default: 102 s per epoch from ``START``)."""
    at = at or START + dt.timedelta(seconds=epoch * 102)
    return "".join(synth_v2_epoch(epoch, at, lr=lr, train=train, val=val, dice=dice, seconds=took,
                                  numpy_repr=numpy_repr))


def v2_log(epochs: range | list[int], *, n_classes: int = 2, done: bool = False, base: float = 0.5,
           numpy_repr: bool = False) -> str:
    """A v2 log of ``epochs`` whose values encode the epoch."""
    text = "\n#######################################################################\nPlease cite ...\n \n"
    for e in epochs:
        text += v2_epoch(e, dice=[base + e / 10000 + k / 100 for k in range(n_classes)],
                         lr=0.01 * (1 - e / 1000) ** 0.9, train=-base - e / 10000, val=-base + e / 10000,
                         numpy_repr=numpy_repr)
    if done:
        text += log_line(START + dt.timedelta(days=3), "Training done.")
    return text


def v1_epoch(epoch: int, *, dice: list[float], next_lr: float, train: float = -0.5, val: float = -0.4,
             took: float = 120.5) -> str:
    """One completed v1 epoch, 125 s per epoch from ``START``."""
    at = START + dt.timedelta(seconds=epoch * 125)
    return "".join(synth_v1_epoch(epoch, at, next_lr=next_lr, train=train, val=val, dice=dice, seconds=took))


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def v2_run(root: Path, dataset: str = "Dataset001_Test", trainer: str = "nnUNetTrainer", config: str = "3d_fullres",
           fold: str = "0") -> Path:
    """An empty v2 fold folder with the label names liver and tumour."""
    return make_run_dir(root, dataset, trainer, "nnUNetPlans", config, fold, labels=("liver", "tumour"))
