"""A real, tiny nnU-Net v2 environment for tests: dataset, plans, preprocessing and short CPU runs.

Everything here runs the genuine nnU-Net command-line tools (``nnUNetv2_plan_and_preprocess``,
``nnUNetv2_train``) on a generated 2D dataset small enough for a 2-core machine: ten 32×32 PNG cases
with two foreground labels. A test trainer with few iterations per epoch keeps an epoch to ~2 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASET_ID = 971
DATASET_NAME = f"Dataset{DATASET_ID:03d}_NnwatchTiny"
LABELS = {"background": 0, "disc": 1, "ring": 2}
TINY_TRAINER = "nnUNetTrainer_nnwatchTiny"

# Installed into nnU-Net's own trainer folder, which is where nnU-Net looks trainers up by name.
_TRAINER_SOURCE = '''"""Test trainers written by nnwatch's test suite: few iterations so a CPU epoch takes seconds."""
import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_nnwatchTiny(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(__import__("os").environ.get("NNWATCH_TINY_EPOCHS", "4"))
        self.num_iterations_per_epoch = int(__import__("os").environ.get("NNWATCH_TINY_ITERS", "6"))
        self.num_val_iterations_per_epoch = 3
        self.save_every = 2
'''


@dataclass(frozen=True)
class TinyNnunet:
    """Paths of one tiny nnU-Net installation; ``env`` is what to pass to subprocesses."""

    base: Path
    raw: Path
    preprocessed: Path
    results: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            nnUNet_raw=str(self.raw),
            nnUNet_preprocessed=str(self.preprocessed),
            nnUNet_results=str(self.results),
            nnUNet_n_proc_DA="1",
            nnUNet_def_n_proc="1",
            nnUNet_compile="false",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        return env

    def model_dir(self, trainer: str = TINY_TRAINER, configuration: str = "2d") -> Path:
        return self.results / DATASET_NAME / f"{trainer}__nnUNetPlans__{configuration}"


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def install_test_trainer() -> Path:
    """Write the tiny trainer into nnU-Net's trainer package (idempotent) so ``-tr`` finds it by name."""
    import nnunetv2

    folder = Path(nnunetv2.__file__).parent / "training" / "nnUNetTrainer" / "variants" / "nnwatch_tests"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").touch()
    target = folder / f"{TINY_TRAINER}.py"
    if not target.exists() or target.read_text() != _TRAINER_SOURCE:
        target.write_text(_TRAINER_SOURCE)
    return target


def make_dataset(raw: Path, n_cases: int = 10, size: int = 32, seed: int = 0) -> Path:
    """Generate discs and rings on noise: two foreground labels, learnable in a few epochs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = raw / DATASET_NAME
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for case in range(n_cases):
        cy, cx = rng.integers(10, size - 10, size=2)
        radius = rng.integers(4, 8)
        dist = np.hypot(yy - cy, xx - cx)
        label = np.zeros((size, size), np.uint8)
        label[dist <= radius] = 1
        label[(dist > radius) & (dist <= radius + 2)] = 2
        image = rng.normal(60, 20, (size, size)) + 120.0 * (label == 1) + 60.0 * (label == 2)
        image = np.clip(image, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / "imagesTr" / f"case_{case:03d}_0000.png")
        Image.fromarray(label).save(folder / "labelsTr" / f"case_{case:03d}.png")
    dataset_json = {
        "channel_names": {"0": "intensity"},
        "labels": LABELS,
        "numTraining": n_cases,
        "file_ending": ".png",
        "name": "nnwatch tiny test dataset",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder


def prepare(base: Path) -> TinyNnunet:
    """Create the dataset, then run nnU-Net's real planning and preprocessing (about 30 s)."""
    tiny = TinyNnunet(base=base, raw=base / "raw", preprocessed=base / "preprocessed", results=base / "results")
    for folder in (tiny.raw, tiny.preprocessed, tiny.results):
        folder.mkdir(parents=True, exist_ok=True)
    make_dataset(tiny.raw)
    install_test_trainer()
    subprocess.run(
        [_venv_bin("nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-c", "2d", "-np", "1",
         "--verify_dataset_integrity"],
        env=tiny.env, check=True, capture_output=True, text=True, timeout=600,
    )
    return tiny


def train_command(fold: int | str = 0, trainer: str = TINY_TRAINER, extra: tuple[str, ...] = ()) -> list[str]:
    """argv of a real ``nnUNetv2_train`` call on the CPU."""
    return [_venv_bin("nnUNetv2_train"), str(DATASET_ID), "2d", str(fold), "-tr", trainer, "-device", "cpu",
            *extra]


def train(tiny: TinyNnunet, fold: int | str = 0, *, epochs: int = 4, trainer: str = TINY_TRAINER,
          extra: tuple[str, ...] = (), timeout: float = 900) -> Path:
    """Run a complete short training (with nnU-Net's final validation) and return the fold folder."""
    env = tiny.env
    env["NNWATCH_TINY_EPOCHS"] = str(epochs)
    completed = subprocess.run(train_command(fold, trainer, extra), env=env, capture_output=True, text=True,
                               timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"nnUNetv2_train failed ({completed.returncode}):\n{completed.stdout[-3000:]}\n"
                           f"{completed.stderr[-3000:]}")
    return tiny.model_dir(trainer) / f"fold_{fold}"
