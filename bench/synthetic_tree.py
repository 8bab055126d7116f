"""Generate realistic nnU-Net v2 results trees for benchmarks (and tests that need size, not realism).

Each run gets one ``training_log_*.txt`` written exactly as nnUNetTrainer prints it (timestamps,
4-decimal losses, ``np.float32(...)`` pseudo Dice reprs, "Yayy! New best EMA" lines) plus
``debug.json`` and a ``dataset.json`` in the model folder.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

__all__ = ["make_tree", "write_v2_log"]


def write_v2_log(path: Path, *, epochs: int, planned: int = 1000, n_classes: int = 2, seed: int = 0,
                 start: dt.datetime | None = None, first_epoch: int = 0, done: bool | None = None) -> None:
    """Write one v2 training log with ``epochs`` completed epochs from ``first_epoch``."""
    rng = np.random.default_rng(seed)
    t = start or dt.datetime(2025, 3, 1, 9, 0, 0, 123456)
    lines = [
        "\n#######################################################################\n",
        "Please cite the following paper when using nnU-Net:\n",
        "#######################################################################\n \n",
        f"{t}: do_dummy_2d_data_aug: False \n",
    ]
    best = -1.0
    ema = None
    for epoch in range(first_epoch, first_epoch + epochs):
        progress = epoch / planned
        level = 0.88 - 0.5 * np.exp(-epoch / 60.0) + 0.02 * progress
        dice = [float(np.clip(level - 0.05 * k + rng.normal(0, 0.01), 0, 1)) for k in range(n_classes)]
        mean = float(np.mean(dice))
        ema = mean if ema is None else 0.9 * ema + 0.1 * mean
        lr = 0.01 * (1 - epoch / planned) ** 0.9
        took = 100 + rng.random() * 3
        lines.append(f"{t}:  \n{t}: Epoch {epoch} \n{t}: Current learning rate: {np.round(lr, 5)} \n")
        t += dt.timedelta(seconds=took)
        dice_text = ", ".join(f"np.float32({round(d, 4)})" for d in dice)
        lines.append(
            f"{t}: train_loss {round(-0.4 - 0.5 * level + rng.normal(0, 0.01), 4)} \n"
            f"{t}: val_loss {round(-0.3 - 0.5 * level + rng.normal(0, 0.02), 4)} \n"
            f"{t}: Pseudo dice [{dice_text}] \n"
            f"{t}: Epoch time: {round(took, 2)} s \n"
        )
        if ema > best:
            best = ema
            lines.append(f"{t}: Yayy! New best EMA pseudo Dice: {round(ema, 4)} \n")
        t += dt.timedelta(seconds=1.2)
    if done if done is not None else first_epoch + epochs >= planned:
        lines.append(f"{t}: Training done. \n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def make_tree(root: Path, *, runs: int, epochs: int, n_classes: int = 2) -> Path:
    """``runs`` v2 runs (5 folds per model folder) of ``epochs`` epochs each under ``root``."""
    labels = {"background": 0, **{f"structure_{k}": k for k in range(1, n_classes + 1)}}
    for index in range(runs):
        dataset = f"Dataset{100 + index // 15:03d}_Bench"
        config = ("2d", "3d_fullres", "3d_lowres")[(index // 5) % 3]
        model = root / dataset / f"nnUNetTrainer__nnUNetPlans__{config}"
        fold = model / f"fold_{index % 5}"
        write_v2_log(fold / "training_log_2025_3_1_09_00_00.txt", epochs=epochs, n_classes=n_classes, seed=index)
        (fold / "debug.json").write_text(json.dumps({"num_epochs": "1000", "initial_lr": "0.01"}))
        if not (model / "dataset.json").exists():
            (model / "dataset.json").write_text(json.dumps({"labels": labels, "file_ending": ".nii.gz"}))
    return root
