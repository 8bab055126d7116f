"""Bundled demo runs, so ``nnwatch serve`` with no results tree still shows what the product does.

The demo is a small, realistic nnU-Net results tree written from synthetic curves: v2 logs line for line
as ``nnUNetTrainer`` prints them, ``debug.json``, ``dataset.json`` with label names, ``validation/
summary.json`` for finished runs and file modification times that match the log's own timestamps (the
monitor infers running/crashed from them). It holds runs that are still improving at the end of their
schedule, plateaued, declining, a crash, five folds of one configuration, a v1 run, and an extended pair
``nnUNetTrainer`` → ``nnUNetTrainer_2000epochs`` whose child is *running*: :class:`DemoTrainer` appends
one epoch to each running log every few seconds, so the live parts of the dashboard have something to
show. The tree is rebuilt with fresh timestamps on every start, which keeps "running" plausible.

The same writers build the test fixtures and the 750-run benchmark tree, so they are public.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEMO_RUNNING",
    "CurveSpec",
    "DemoTrainer",
    "RunSpec",
    "build_demo_tree",
    "default_demo_dir",
    "epoch_lines",
    "synth_curves",
    "write_dataset_json",
    "write_run",
]

_BANNER = (
    "\n#######################################################################\n"
    "Please cite the following paper when using nnU-Net:\n"
    "Isensee, F., Jaeger, P. F., Kohl, S. A., Petersen, J., & Maier-Hein, K. H. (2021). nnU-Net: a "
    "self-configuring method for deep learning-based biomedical image segmentation. Nature methods, 18(2), "
    "203-211.\n"
    "#######################################################################\n \n"
)


@dataclass(frozen=True)
class CurveSpec:
    """The shape of a synthetic pseudo-Dice curve.

    ``timescale`` is the saturation time constant as a fraction of the schedule: a large one leaves the
    curve still rising at the end (what the analyzer calls improving), a small one flattens it early.
    ``decline_per_100`` bends the curve down after its midpoint (over-fitting).
    """

    ceilings: tuple[float, ...] = (0.85, 0.7)
    timescale: float = 0.08
    noise: float = 0.012
    decline_per_100: float = 0.0
    epoch_time_s: float = 110.0
    seed: int = 0


@dataclass(frozen=True)
class RunSpec:
    """One fold folder to write: where, how long, and how it ended."""

    dataset: str
    trainer: str
    configuration: str
    fold: int | str
    planned_epochs: int
    curve: CurveSpec
    epochs_done: int | None = None  # None: the whole schedule
    state: str = "finished"  # finished | running | crashed
    version: str = "v2"
    plans: str = "nnUNetPlans"
    ended_ago_s: float = 3 * 86400.0  # finished/crashed: when the last epoch ended

    def fold_dir(self, root: Path) -> Path:
        """The fold folder in nnU-Net's v2 or v1 layout."""
        if self.version == "v1":
            return root / "nnUNet" / self.configuration / self.dataset / f"{self.trainer}__{self.plans}" / \
                f"fold_{self.fold}"
        return root / self.dataset / f"{self.trainer}__{self.plans}__{self.configuration}" / f"fold_{self.fold}"

    @property
    def done(self) -> int:
        return self.planned_epochs if self.epochs_done is None else min(self.epochs_done, self.planned_epochs)


@dataclass
class Curves:
    """Per-epoch values of a synthetic run, for the whole schedule (the live appender reads ahead)."""

    lr: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    dice: np.ndarray  # (epochs, classes)
    epoch_time_s: np.ndarray
    ema: np.ndarray = field(default_factory=lambda: np.zeros(0))


def synth_curves(spec: CurveSpec, planned_epochs: int) -> Curves:
    """Deterministic curves with nnU-Net's shape: a saturating rise, AR(1) noise, a late annealing bump.

    The lr follows nnU-Net's poly schedule ``0.01·(1 − e/N)^0.9``; the annealing bump in the last ~17 %
    of the schedule is what makes every nnU-Net curve rise at its end, and why the analyzer looks at the
    trend before it.
    """
    rng = np.random.default_rng(spec.seed)
    n = planned_epochs
    e = np.arange(n, dtype=float)
    frac = e / n
    lr = np.round(0.01 * (1.0 - frac) ** 0.9, 5)
    rise = 1.0 - np.exp(-(e + 1.0) / max(1.0, spec.timescale * n))
    anneal = np.clip((frac - 0.83) / 0.17, 0.0, 1.0)
    decline = np.where(frac > 0.5, (e - 0.5 * n) * spec.decline_per_100 / 100.0, 0.0)
    noise = np.zeros((n, len(spec.ceilings)))
    innovations = rng.normal(0.0, spec.noise, size=noise.shape)
    for i in range(1, n):
        noise[i] = 0.4 * noise[i - 1] + innovations[i]
    dice = np.empty((n, len(spec.ceilings)))
    for k, ceiling in enumerate(spec.ceilings):
        base = ceiling * (0.08 + 0.92 * rise) + 0.005 * anneal * ceiling - decline
        dice[:, k] = np.clip(base + noise[:, k] * (1.0 + 0.5 * k), 0.0, 0.999)
    mean = dice.mean(axis=1)
    train_loss = -(0.25 + 0.65 * (1.0 - np.exp(-(e + 1.0) / (0.12 * n)))) + rng.normal(0, 0.006, n)
    val_loss = -(mean * 0.95) + 0.04 + rng.normal(0, 0.01, n) + 0.3 * decline
    # Epoch times drift slowly (I/O, other jobs on the node) with rare spikes, not white noise.
    drift = np.convolve(rng.normal(0, 0.02, n + 49), np.ones(50) / 50, mode="valid")[:n]
    spikes = np.where(rng.random(n) < 0.01, rng.uniform(0.1, 0.4, n), 0.0)
    epoch_time = spec.epoch_time_s * (1.0 + drift + rng.normal(0, 0.004, n) + spikes)
    ema = np.empty(n)
    current = mean[0]
    for i in range(n):
        current = mean[0] if i == 0 else 0.9 * current + 0.1 * mean[i]
        ema[i] = current
    return Curves(lr, train_loss, val_loss, dice, epoch_time, ema)


def _stamp(ts: float) -> str:
    """nnU-Net's timestamp prefix: local wall time with microseconds."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int((ts % 1) * 1e6):06d}"


def epoch_lines(curves: Curves, epoch: int, start_ts: float, *, best_so_far: float | None = None,
                version: str = "v2") -> tuple[str, float]:
    """The log lines nnU-Net writes for one epoch, and the EMA best after it (v2 prints "Yayy!")."""
    t = curves.epoch_time_s[epoch]
    end = start_ts + t
    dice = curves.dice[epoch]
    if version == "v1":
        text = (f"{_stamp(start_ts)}: \nepoch:  {epoch} \n"
                f"{_stamp(end - 1)}: train loss : {curves.train_loss[epoch]:.4f} \n"
                f"{_stamp(end - 1)}: validation loss: {curves.val_loss[epoch]:.4f} \n"
                f"{_stamp(end - 1)}: Average global foreground Dice: [{', '.join(f'{d:.4f}' for d in dice)}]\n"
                f"{_stamp(end - 1)}: (interpret this as an estimate for the Dice of the different classes. "
                "This is not exact.)\n"
                f"{_stamp(end)}: lr: {curves.lr[min(epoch + 1, len(curves.lr) - 1)]:.6f}\n"
                f"{_stamp(end)}: This epoch took {t:.6f} s\n \n")
        return text, best_so_far if best_so_far is not None else 0.0
    dice_text = ", ".join(f"np.float32({d:.4f})" for d in dice)
    text = (f"{_stamp(start_ts)}: \n{_stamp(start_ts)}: Epoch {epoch} \n"
            f"{_stamp(start_ts)}: Current learning rate: {curves.lr[epoch]:.5f} \n"
            f"{_stamp(end - 0.4)}: train_loss {curves.train_loss[epoch]:.4f} \n"
            f"{_stamp(end - 0.4)}: val_loss {curves.val_loss[epoch]:.4f} \n"
            f"{_stamp(end - 0.4)}: Pseudo dice [{dice_text}] \n"
            f"{_stamp(end - 0.4)}: Epoch time: {t:.2f} s \n")
    ema = float(curves.ema[epoch])
    if best_so_far is None or ema > best_so_far:
        text += f"{_stamp(end - 0.3)}: Yayy! New best EMA pseudo Dice: {ema:.4f} \n"
        best_so_far = ema
    return text, best_so_far


def _header(spec: RunSpec, start_ts: float) -> str:
    if spec.version == "v1":
        return (f"Starting... \n{_stamp(start_ts)}: Using splits from existing split file: "
                f"nnUNet_preprocessed/{spec.dataset}/splits_final.pkl\n"
                f"{_stamp(start_ts)}: The split file contains 5 splits.\n"
                f"{_stamp(start_ts)}: Desired fold for training: {spec.fold}\n"
                f"{_stamp(start_ts)}: lr: 0.01\n")
    return (_BANNER + f"{_stamp(start_ts)}: Using splits from existing split file: "
            f"nnUNet_preprocessed/{spec.dataset}/splits_final.json \n"
            f"{_stamp(start_ts)}: The split file contains 5 splits. \n"
            f"{_stamp(start_ts)}: Desired fold for training: {spec.fold} \n"
            f"\nThis is the configuration used by this training:\nConfiguration name: {spec.configuration}\n"
            f" {{'data_identifier': '{spec.plans}_{spec.configuration}', 'batch_size': 2}} \n \n"
            f"{_stamp(start_ts)}: unpacking dataset... \n{_stamp(start_ts)}: unpacking done... \n")


def write_dataset_json(model_dir: Path, labels: Sequence[str]) -> None:
    """nnU-Net v2's ``dataset.json`` copy in the model folder: where class names come from."""
    model_dir.mkdir(parents=True, exist_ok=True)
    data = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, **{n: i + 1 for i, n in enumerate(labels)}},
            "numTraining": 32, "file_ending": ".nii.gz"}
    (model_dir / "dataset.json").write_text(json.dumps(data, indent=2))


def write_run(root: Path, spec: RunSpec, *, now: float | None = None,
              labels: Sequence[str] | None = None) -> tuple[Path, Curves, float, float | None]:
    """Write one fold folder; return it, its curves, when its next epoch would start and its best EMA.

    A running run's last epoch ends a few seconds before ``now``; finished and crashed runs end
    ``spec.ended_ago_s`` before it, and every file's mtime is set to match.
    """
    now = time.time() if now is None else now
    folder = spec.fold_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    curves = synth_curves(spec.curve, spec.planned_epochs)
    done = spec.done
    ended_ago = 4.0 if spec.state == "running" else spec.ended_ago_s
    end_ts = now - ended_ago
    start_ts = end_ts - float(curves.epoch_time_s[:done].sum()) - 60.0
    if labels is not None and spec.version == "v2":
        write_dataset_json(folder.parent, labels)
    debug = {"num_epochs": str(spec.planned_epochs), "initial_lr": "0.01", "fold": str(spec.fold),
             "configuration_name": spec.configuration, "device": "cuda:0"}
    if spec.version == "v1":
        debug = {"max_num_epochs": str(spec.planned_epochs), "initial_lr": "0.01", "fold": str(spec.fold)}
    (folder / "debug.json").write_text(json.dumps(debug, indent=2))
    parts = [_header(spec, start_ts)]
    t = start_ts + 60.0
    best: float | None = None
    for epoch in range(done):
        text, best = epoch_lines(curves, epoch, t, best_so_far=best, version=spec.version)
        parts.append(text)
        t += float(curves.epoch_time_s[epoch]) + 0.7
    final_dice = None
    if spec.state == "finished":
        final_dice = float(np.clip(curves.dice[done - 1].mean() + 0.035, 0, 0.99))
        if spec.version == "v1":
            parts.append(f"{_stamp(t)}: finished prediction\n{_stamp(t)}: evaluation of raw predictions\n")
            summary: dict[str, Any] = {
                "results": {"mean": {str(k + 1): {"Dice": final_dice} for k in range(curves.dice.shape[1])}}}
            target = folder / "validation_raw"
        else:
            parts.append(f"{_stamp(t)}: Training done. \n{_stamp(t)}: predicting case_000 \n"
                         f"{_stamp(t + 30)}: Validation complete \n"
                         f"{_stamp(t + 30)}: Mean Validation Dice:  {final_dice} \n")
            summary = {"foreground_mean": {"Dice": final_dice}, "mean": {}}
            target = folder / "validation"
        target.mkdir(exist_ok=True)
        (target / "summary.json").write_text(json.dumps(summary, indent=1))
    log = folder / f"training_log_{time.strftime('%Y_%-m_%-d_%H_%M_%S', time.localtime(start_ts))}.txt"
    log.write_text("".join(parts))
    for path in folder.rglob("*"):
        os.utime(path, (end_ts, end_ts))
    os.utime(folder / "debug.json", (start_ts, start_ts))
    return log, curves, t, best if spec.version == "v2" else final_dice


DEMO_RUNNING = ("Dataset101_Prostate/nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres/fold_0",
                "Dataset102_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0")


def _demo_specs() -> Sequence[tuple[RunSpec, Sequence[str]]]:
    prostate = ("peripheral zone", "transition zone")
    liver = ("liver", "tumor")
    hippo = ("anterior", "posterior")
    pro = "Dataset101_Prostate"
    rising = CurveSpec((0.78, 0.88), timescale=0.55, noise=0.010, epoch_time_s=112.0, seed=11)
    specs = [
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 0, 1000, rising), prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 1, 1000, CurveSpec((0.77, 0.87), 0.45, 0.011, 0, 109, 12)),
         prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 2, 1000, CurveSpec((0.80, 0.89), 0.07, 0.010, 0, 111, 13)),
         prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 3, 1000, CurveSpec((0.79, 0.88), 0.06, 0.012, 0, 114, 14)),
         prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 4, 1000, CurveSpec((0.76, 0.86), 0.30, 0.012, 0, 110, 15),
                 epochs_done=612, state="crashed", ended_ago_s=2 * 86400.0), prostate),
        (RunSpec(pro, "nnUNetTrainer_2000epochs", "3d_fullres", 0, 2000,
                 CurveSpec((0.80, 0.895), timescale=0.30, noise=0.010, epoch_time_s=112.0, seed=21),
                 epochs_done=700, state="running"), prostate),
        (RunSpec(pro, "nnUNetTrainer", "2d", 0, 1000, CurveSpec((0.70, 0.82), 0.05, 0.014, 0, 38, 16)), prostate),
        (RunSpec("Dataset102_Liver", "nnUNetTrainer", "2d", 0, 1000,
                 CurveSpec((0.95, 0.62), 0.06, 0.015, 0.035, 41, 31)), liver),
        (RunSpec("Dataset102_Liver", "nnUNetTrainer", "2d", 1, 1000, CurveSpec((0.95, 0.65), 0.05, 0.015, 0, 40, 32)),
         liver),
        (RunSpec("Dataset102_Liver", "nnUNetTrainer", "3d_fullres", 0, 1000,
                 CurveSpec((0.96, 0.68), 0.15, 0.013, 0, 150, 33), epochs_done=230, state="running"), liver),
        (RunSpec("Task004_Hippocampus", "nnUNetTrainerV2", "3d_fullres", 0, 1000,
                 CurveSpec((0.89, 0.87), 0.05, 0.008, 0, 48, 41), version="v1", plans="nnUNetPlansv2.1",
                 ended_ago_s=200 * 86400.0), hippo),
    ]
    return list(specs)


def default_demo_dir() -> Path:
    """Where the demo tree lives: the user's cache folder (rebuilt on every start, never precious)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("nnwatch")) / "demo"


@dataclass
class _LiveRun:
    log: Path
    curves: Curves
    next_epoch: int
    planned: int
    best: float | None


class DemoTrainer:
    """Appends one epoch to each running demo log every ``interval_s`` seconds, like a fast GPU would.

    A daemon thread: it dies with the server. ``stop()`` ends it (tests, and the CLI on shutdown).
    """

    def __init__(self, runs: list[_LiveRun], interval_s: float = 5.0) -> None:
        self.runs = runs
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nnwatch-demo-trainer", daemon=True)

    def start(self) -> DemoTrainer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def step(self) -> None:
        """Append the next epoch of every running demo run (one ``write`` per epoch, as nnU-Net flushes)."""
        for run in self.runs:
            if run.next_epoch >= run.planned or not run.log.exists():
                continue
            text, run.best = epoch_lines(run.curves, run.next_epoch, time.time() - run.curves.epoch_time_s[
                run.next_epoch], best_so_far=run.best)
            with open(run.log, "a") as handle:
                handle.write(text)
            run.next_epoch += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except OSError:
                return  # the demo folder was removed under us


def build_demo_tree(target: Path | None = None, *, now: float | None = None, live: bool = True,
                    interval_s: float = 5.0) -> tuple[Path, DemoTrainer | None]:
    """(Re)write the demo results tree and, with ``live``, start appending epochs to its running runs."""
    target = default_demo_dir() if target is None else Path(target)
    root = target / "nnUNet_results"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    now = time.time() if now is None else now
    live_runs = []
    for spec, labels in _demo_specs():
        log, curves, _next_start, best = write_run(root, spec, now=now, labels=labels)
        if spec.state == "running":
            live_runs.append(_LiveRun(log, curves, spec.done, spec.planned_epochs, best))
    trainer = DemoTrainer(live_runs, interval_s).start() if live and live_runs else None
    return root, trainer
