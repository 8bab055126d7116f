"""Write nnU-Net-format log lines for tests, exactly as the trainers print them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

START = dt.datetime(2024, 5, 1, 10, 0, 0, 250000)


def v2_epoch(epoch: int, *, dice: list[float], lr: float = 0.01, train: float = -0.5, val: float = -0.4,
             took: float = 100.0, at: dt.datetime | None = None, numpy_repr: bool = False) -> str:
    """The lines v2 prints for one completed epoch (4-decimal values, as nnU-Net rounds them)."""
    t0 = at or START + dt.timedelta(seconds=epoch * 102)
    t1 = t0 + dt.timedelta(seconds=took)
    shown = ", ".join(f"np.float32({round(d, 4)})" if numpy_repr else str(round(d, 4)) for d in dice)
    return (f"{t0}:  \n{t0}: Epoch {epoch} \n{t0}: Current learning rate: {round(lr, 5)} \n"
            f"{t1}: train_loss {round(train, 4)} \n{t1}: val_loss {round(val, 4)} \n"
            f"{t1}: Pseudo dice [{shown}] \n{t1}: Epoch time: {round(took, 2)} s \n")


def v2_log(epochs: range | list[int], *, n_classes: int = 2, done: bool = False, base: float = 0.5,
           numpy_repr: bool = False) -> str:
    """A v2 log whose values encode the epoch, so tests can tell sessions apart (``base`` shifts them)."""
    text = "\n#######################################################################\nPlease cite ...\n \n"
    for e in epochs:
        text += v2_epoch(e, dice=[base + e / 10000 + k / 100 for k in range(n_classes)],
                         lr=0.01 * (1 - e / 1000) ** 0.9, train=-base - e / 10000, val=-base + e / 10000,
                         numpy_repr=numpy_repr)
    if done:
        text += f"{START + dt.timedelta(days=3)}: Training done. \n"
    return text


def v1_epoch(epoch: int, *, dice: list[float], next_lr: float, train: float = -0.5, val: float = -0.4,
             took: float = 120.5) -> str:
    t = START + dt.timedelta(seconds=epoch * 125)
    return (f"{t}: \nepoch:  {epoch} \n{t}: train loss : {train:.4f} \n{t}: validation loss: {val:.4f} \n"
            f"{t}: Average global foreground Dice: {dice} \n"
            f"{t}: (interpret this as an estimate for the Dice of the different classes. This is not exact.) \n"
            f"{t}: lr: {next_lr} \n{t}: This epoch took {took} s\n \n")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def v2_run(root: Path, dataset: str = "Dataset001_Test", trainer: str = "nnUNetTrainer", config: str = "3d_fullres",
           fold: str = "0") -> Path:
    """An empty v2 fold folder with dataset.json (label names) in its model folder."""
    fold_dir = root / dataset / f"{trainer}__nnUNetPlans__{config}" / f"fold_{fold}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    (fold_dir.parent / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "liver": 1, "tumour": 2}, "file_ending": ".nii.gz"}))
    return fold_dir
