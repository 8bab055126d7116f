"""Synthetic nnU-Net runs for the demo, the tests and the benchmarks: one curve model, one writer.

:class:`FakeRun` writes a fold folder as a trainer does, live, one open-append-close per line like
``print_to_log_file`` (the watcher depends on how bytes reach the disk). :func:`write_run` writes a whole fold
with mtimes that match its log, since status is inferred from them.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from monitor.runs.merge import ema

__all__ = ["START", "CurveSpec", "FakeRun", "RunSpec", "log_line", "make_run_dir", "synth_curves",
           "v1_epoch", "v2_epoch", "validation_summary", "write_folds", "write_run", "write_tree"]

START = datetime(2024, 3, 9, 7, 5, 1)
_RULE = "#######################################################################\n"
_BANNER = f"\n{_RULE}Please cite the following paper when using nnU-Net:\nIsensee, F. et al. (2021).\n{_RULE} \n"


def log_line(at: datetime, *parts: object) -> str:
    """One ``print_to_log_file`` call (v1 and v2 alike): ``str(datetime)``, a colon, each part plus a space."""
    return f"{at}: " + "".join(f"{part} " for part in parts) + "\n"


def v2_epoch(epoch: int, at: datetime, *, lr: float, train: float, val: float, dice: Sequence[float],
             seconds: float, numpy_repr: bool = True, new_best: float | None = None) -> list[str]:
    """One v2 epoch: three lines at ``at``, the rest ``seconds`` later, rounded as nnU-Net does."""
    end = at + timedelta(seconds=float(seconds))
    shown = ", ".join(f"np.float32({round(float(d), 4)})" if numpy_repr else str(round(float(d), 4)) for d in dice)
    lines = [log_line(at, ""), log_line(at, "Epoch", epoch), log_line(at, f"Current learning rate: {round(lr, 5)}"),
             log_line(end, "train_loss", round(float(train), 4)), log_line(end, "val_loss", round(float(val), 4)),
             log_line(end, "Pseudo dice", f"[{shown}]"), log_line(end, f"Epoch time: {round(float(seconds), 2)} s")]
    if new_best is not None:
        lines.append(log_line(end, f"Yayy! New best EMA pseudo Dice: {round(float(new_best), 4)}"))
    return lines


def v1_epoch(epoch: int, at: datetime, *, next_lr: float, train: float, val: float, dice: Sequence[float],
             seconds: float) -> list[str]:
    """The lines of one v1 (``nnUNetTrainerV2``) epoch; v1 prints the *next* epoch's learning rate."""
    end = at + timedelta(seconds=float(seconds))
    return [log_line(at, "\nepoch: ", epoch), log_line(end, f"train loss : {train:.4f}"),
            log_line(end, f"validation loss: {val:.4f}"),
            log_line(end, "Average global foreground Dice:", [round(float(d), 4) for d in dice]),
            log_line(end, "(interpret this as an estimate for the Dice of the different classes. This is not exact.)"),
            log_line(end, "lr:", round(float(next_lr), 6)), log_line(end, f"This epoch took {float(seconds):f} s\n")]


@dataclass(frozen=True)
class CurveSpec:
    """The shape of a synthetic run, one pseudo-Dice ceiling per class. ``timescale`` (a fraction of the
    schedule): large still rises at the end, small plateaus early; ``decline_per_100`` over-fits."""

    ceilings: tuple[float, ...] = (0.85, 0.7)
    timescale: float = 0.08
    noise: float = 0.012
    decline_per_100: float = 0.0
    epoch_time_s: float = 110.0
    seed: int = 0


@dataclass
class SyntheticCurves:
    """Per-epoch values for the whole schedule (a live writer reads ahead), full precision."""

    lr: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    dice: np.ndarray  # (epochs, classes)
    epoch_time_s: np.ndarray
    ema: np.ndarray  # nnU-Net's ema_fg_dice: 0.9 · previous + 0.1 · mean over classes


def synth_curves(spec: CurveSpec, planned_epochs: int) -> SyntheticCurves:
    """Seeded curves with nnU-Net's shape: a saturating rise, AR(1) noise, and a small rise as the lr anneals."""
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
    mean = np.nanmean(dice, axis=1) if not np.isnan(dice).all() else np.full(n, np.nan)
    train_loss = -(0.25 + 0.65 * (1.0 - np.exp(-(e + 1.0) / (0.12 * n)))) + rng.normal(0, 0.006, n)
    val_loss = -(mean * 0.95) + 0.04 + rng.normal(0, 0.01, n) + 0.3 * decline
    # Epoch times drift slowly (I/O, other jobs on the node) with rare spikes, not white noise.
    drift = np.convolve(rng.normal(0, 0.02, n + 49), np.ones(50) / 50, mode="valid")[:n]
    spikes = np.where(rng.random(n) < 0.01, rng.uniform(0.1, 0.4, n), 0.0)
    epoch_time = spec.epoch_time_s * (1.0 + drift + rng.normal(0, 0.004, n) + spikes)
    return SyntheticCurves(lr, train_loss, val_loss, dice, epoch_time, ema(mean))


def make_run_dir(root: Path, dataset: str = "Dataset001_Fake", trainer: str = "nnUNetTrainer",
                 plans: str = "nnUNetPlans", configuration: str = "3d_fullres", fold: int | str = 0,
                 labels: Sequence[str] | None = None) -> Path:
    """Create ``root/<dataset>/<trainer>__<plans>__<configuration>/fold_<fold>`` and, given ``labels``, the
    model folder's ``dataset.json``."""
    path = root / dataset / f"{trainer}__{plans}__{configuration}" / f"fold_{fold}"
    path.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        names = {"background": 0, **{name: k + 1 for k, name in enumerate(labels)}}
        (path.parent / "dataset.json").write_text(json.dumps({"labels": names, "file_ending": ".nii.gz"}, indent=2))
    return path


@dataclass
class FakeRun:
    """A training run written into ``folder`` session by session, epoch by epoch.

    ``clock`` is the time the log claims, apart from the real clock so a long history takes no time to write;
    a ``spec`` ceiling of 0 or NaN makes a dead class.
    """

    folder: Path
    planned_epochs: int = 1000
    epoch_s: float | None = 100.0
    spec: CurveSpec = CurveSpec((0.9, 0.85), timescale=0.06, seed=1)
    clock: datetime = START
    log_path: Path | None = None
    next_epoch: int = 0
    version: str = "v2"
    best_lines: bool = False
    curves: SyntheticCurves = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.curves = synth_curves(self.spec, self.planned_epochs)
        if self.epoch_s is not None:
            self.curves.epoch_time_s[:] = self.epoch_s

    def start_session(self, *, at_epoch: int | None = None) -> Path:
        """Begin a new log file (a fresh start or a resume at ``at_epoch``) and write ``debug.json``."""
        if at_epoch is not None:
            self.next_epoch = at_epoch
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:  # nnU-Net's name: the start time, month and day unpadded; one per second, so bump
            c = self.clock
            self.log_path = self.folder / f"training_log_{c.year}_{c.month}_{c.day}_{c:%H_%M_%S}.txt"
            if not self.log_path.exists():
                break
            self.clock += timedelta(seconds=1)
        v1 = self.version == "v1"
        epochs_key = "max_num_epochs" if v1 else "num_epochs"
        debug = {epochs_key: str(self.planned_epochs), "initial_lr": "0.01", "fold": self.folder.name[5:]}
        (self.folder / "debug.json").write_text(json.dumps(debug, indent=2))
        split = f"nnUNet_preprocessed/{self.folder.parent.parent.name}/splits_final.{'pkl' if v1 else 'json'}"
        self._append("Starting... \n" if v1 else _BANNER, self._line("Using splits from existing split file:", split),
                     self._line("The split file contains 5 splits."),
                     self._line("Desired fold for training:", self.folder.name[5:]),
                     *([self._line("lr:", 0.01)] if v1 else []))
        return self.log_path

    def _line(self, *parts: object) -> str:
        return log_line(self.clock, *parts)

    def _append(self, *chunks: str) -> None:
        assert self.log_path is not None, "call start_session() first"
        for chunk in chunks:
            with open(self.log_path, "a", encoding="utf-8") as handle:  # open-write-close, like nnU-Net
                handle.write(chunk)

    def lr(self, epoch: int) -> float:  # lr, dice, train_loss: the values as the log prints them
        return round(float(self.curves.lr[epoch]), 5)

    def dice(self, epoch: int) -> list[float]:
        return [round(float(v), 4) for v in self.curves.dice[epoch]]

    def train_loss(self, epoch: int) -> float:
        return round(float(self.curves.train_loss[epoch]), 4)

    def _lines(self) -> list[str]:
        """The log lines of the next epoch, started at ``clock``."""
        c, e = self.curves, self.next_epoch
        values = {"train": c.train_loss[e], "val": c.val_loss[e], "dice": c.dice[e], "seconds": c.epoch_time_s[e]}
        if self.version == "v1":
            return v1_epoch(e, self.clock, next_lr=c.lr[min(e + 1, len(c.lr) - 1)], **values)
        best = self.best_lines and (e == 0 or c.ema[e] > c.ema[:e].max())
        return v2_epoch(e, self.clock, lr=float(c.lr[e]), new_best=float(c.ema[e]) if best else None, **values)

    def _advance(self) -> None:
        self.clock += timedelta(seconds=float(self.curves.epoch_time_s[self.next_epoch]))
        self.next_epoch += 1

    def begin_epoch(self) -> None:
        """The three lines nnU-Net writes when an epoch starts, one append each."""
        self._append(*self._lines()[:3])

    def end_epoch(self) -> None:
        """The lines written when the epoch ends; the epoch is complete after ``Epoch time``."""
        self._append(*self._lines()[3:])
        self._advance()

    def epoch(self) -> None:
        self.begin_epoch()
        self.end_epoch()

    def history(self, n_epochs: int) -> None:
        """Write ``n_epochs`` complete epochs in one append (a past that exists before a watcher looks)."""
        lines: list[str] = []
        for _ in range(n_epochs):
            lines += self._lines()
            self._advance()
        self._append("".join(lines))

    def finish(self, *, final_dice: float | None = 0.8, cases: int = 8) -> None:
        """The end of training and the final validation: log lines, and a ``summary.json`` of ``cases`` cases whose
        foreground mean is near ``final_dice`` (see :func:`validation_summary`)."""
        summary = None
        if final_dice is not None:
            ceilings = np.asarray(self.spec.ceilings, dtype=float)
            centres = np.clip(final_dice + 0.5 * (ceilings - ceilings.mean()), 0.05, 0.99)
            dataset, fold = self.folder.parent.parent.name, self.folder.name[5:]
            summary = validation_summary(dataset, fold, centres, cases=cases, seed=self.spec.seed,
                                         version=self.version)
            final_dice = _foreground_mean(summary)
        if self.version == "v1":
            self._append(self._line("finished prediction"), self._line("evaluation of raw predictions"))
        else:
            self._append(self._line("Training done."),
                         *([self._line("Mean Validation Dice: ", final_dice)] if final_dice is not None else []))
        if summary is None:
            return
        target = self.folder / ("validation_raw" if self.version == "v1" else "validation")
        target.mkdir(exist_ok=True)
        (target / "summary.json").write_text(json.dumps(summary, indent=1))

    def checkpoint_bytes(self, n_epochs: int | None = None) -> bytes:
        """A checkpoint laid out as ``torch.save`` does, with nnU-Net's ``logging`` dict for the first ``n_epochs``
        in the types nnU-Net logs: numpy scalars for Dice, its mean and EMA and the losses, floats for the rest."""
        n = self.next_epoch if n_epochs is None else n_epochs
        c = self.curves
        starts = self.clock.timestamp() - np.cumsum(c.epoch_time_s[:self.next_epoch][::-1])[::-1]

        def scalars(values: np.ndarray) -> list[Any]:
            return [np.float32(v) for v in values]

        ema = scalars(c.ema[:n])
        logging = {
            "mean_fg_dice": scalars(np.nanmean(c.dice[:n], axis=1)), "ema_fg_dice": ema,
            "dice_per_class_or_region": [scalars(row) for row in c.dice[:n]],
            "train_losses": scalars(c.train_loss[:n]), "val_losses": scalars(c.val_loss[:n]), "lrs": c.lr[:n].tolist(),
            "epoch_start_timestamps": starts[:n].tolist(),
            "epoch_end_timestamps": (starts[:n] + c.epoch_time_s[:n]).tolist(),
        }
        payload = {"network_weights": _STAND_IN_WEIGHTS, "optimizer_state": _STAND_IN_OPTIMIZER,
                   "grad_scaler_state": None, "logging": logging,
                   "_best_ema": max(ema, default=None), "current_epoch": n, "init_args": {},
                   "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2)}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("checkpoint_latest/data.pkl", pickle.dumps(payload, protocol=2))
            archive.writestr("checkpoint_latest/version", "3\n")
            archive.writestr("checkpoint_latest/data/0", b"\0" * 4096)  # a stand-in tensor storage
        return buffer.getvalue()


#: Parameter names of a 6-stage U-Net with their shapes, and SGD's momentum per parameter, in place of the tensors
#: a checkpoint holds before its ``logging`` dict (they fill the pickle's memo as nnU-Net's do).
_STAND_IN_WEIGHTS = {f"{part}.stages.{stage}.convs.{conv}.{layer}.{kind}": (32 * 2 ** min(stage, 4),)
                     for part in ("encoder", "decoder") for stage in range(6) for conv in range(2)
                     for layer in ("conv", "norm") for kind in ("weight", "bias")}
_STAND_IN_OPTIMIZER = {"state": {i: {"momentum_buffer": shape} for i, shape in enumerate(_STAND_IN_WEIGHTS.values())},
                       "param_groups": [{"lr": 0.01, "momentum": 0.99, "nesterov": True, "weight_decay": 3e-05,
                                         "params": list(range(len(_STAND_IN_WEIGHTS)))}]}


def _counts(dice: float, n_ref: int) -> dict[str, Any]:
    """Voxel counts with this Dice (FP = FN), and the metrics nnU-Net derives from them."""
    tp = int(round(dice * n_ref))
    fn = fp = n_ref - tp
    return {"Dice": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
            "IoU": tp / (tp + fp + fn) if tp + fp + fn else math.nan,
            "FN": fn, "FP": fp, "TN": 20 * n_ref, "TP": tp, "n_pred": tp + fp, "n_ref": n_ref}


def validation_summary(dataset: str, fold: int | str, class_dice: Sequence[float], *, cases: int = 8, seed: int = 0,
                       version: str = "v2") -> dict[str, Any]:
    """nnU-Net's ``summary.json`` content (v2 or v1) for ``cases`` validation cases of one fold.

    A case's difficulty depends on the dataset and the case only, so two runs of one fold score the same cases
    alike, as real runs do; ``seed`` adds the run's own per-case noise. Fold ``k`` validates cases
    ``k·cases`` … ``k·cases + cases − 1``.
    """
    first = int(fold) * cases if str(fold).isdigit() else 0
    names = [f"case_{first + i:03d}" for i in range(cases)]
    case_rng = np.random.default_rng([zlib.crc32(dataset.encode()), first])
    difficulty = case_rng.normal(0.0, 0.05, (cases, len(class_dice))) - np.abs(case_rng.normal(0, 0.03, (cases, 1)))
    sizes = case_rng.integers(400, 4000, (cases, len(class_dice)))
    noise = np.random.default_rng([seed, first, 7]).normal(0.0, 0.012, difficulty.shape)
    dice = np.clip(np.asarray(class_dice, dtype=float) + difficulty + noise, 0.0, 1.0)
    keys = [str(k + 1) for k in range(len(class_dice))]
    per_case = [{key: _counts(float(dice[i, k]), int(sizes[i, k])) for k, key in enumerate(keys)}
                for i in range(cases)]
    means = {key: {metric: float(np.nanmean([case[key][metric] for case in per_case]))
                   for metric in per_case[0][key]} for key in keys}
    ending = ".nii.gz"
    if version == "v1":
        rows = [{**{key: {"Dice": c[key]["Dice"], "Jaccard": c[key]["IoU"]} for key in keys},
                 "test": f"validation_raw/{n}{ending}", "reference": f"gt_segmentations/{n}{ending}"}
                for n, c in zip(names, per_case)]
        mean = {key: {"Dice": means[key]["Dice"], "Jaccard": means[key]["IoU"]} for key in keys}
        return {"name": "", "description": "", "task": dataset, "author": "Fabian", "results": {"all": rows,
                                                                                               "mean": mean}}
    foreground = {metric: float(np.mean([means[key][metric] for key in keys])) for metric in means[keys[0]]}
    return {"foreground_mean": foreground, "mean": means,
            "metric_per_case": [{"metrics": c, "prediction_file": f"validation/{n}{ending}",
                                 "reference_file": f"gt_segmentations/{n}{ending}"} for n, c in zip(names, per_case)]}


def _foreground_mean(summary: dict[str, Any]) -> float:
    if "foreground_mean" in summary:
        return round(float(summary["foreground_mean"]["Dice"]), 6)
    return round(float(np.mean([v["Dice"] for v in summary["results"]["mean"].values()])), 6)


@dataclass(frozen=True)
class RunSpec:
    """One fold folder to write: where, how long, how it ended (``finished``, ``running`` or ``crashed``)."""

    dataset: str
    trainer: str
    configuration: str
    fold: int | str
    planned_epochs: int
    curve: CurveSpec
    epochs_done: int | None = None  # None: the whole schedule
    state: str = "finished"
    version: str = "v2"
    plans: str = "nnUNetPlans"
    ended_ago_s: float = 3 * 86400.0  # finished/crashed: when the last epoch ended
    checkpoints: bool = False  # v2: the checkpoints nnU-Net leaves (final or latest, and best)


def write_run(root: Path, spec: RunSpec, *, now: float | None = None, labels: Sequence[str] | None = None) -> FakeRun:
    """Write one fold folder in nnU-Net's v2 or v1 layout; the returned run can go on appending epochs. Its last
    epoch ends seconds before ``now`` if running, else ``spec.ended_ago_s`` before it; mtimes match."""
    now = time.time() if now is None else now
    if spec.version == "v1":
        folder = root / "nnUNet" / spec.configuration / spec.dataset / f"{spec.trainer}__{spec.plans}" / \
            f"fold_{spec.fold}"
    else:
        folder = make_run_dir(root, spec.dataset, spec.trainer, spec.plans, spec.configuration, spec.fold, labels)
    run = FakeRun(folder, spec.planned_epochs, None, spec.curve, version=spec.version, best_lines=True)
    curves = run.curves
    done = spec.planned_epochs if spec.epochs_done is None else min(spec.epochs_done, spec.planned_epochs)
    end_ts = now - (4.0 if spec.state == "running" else spec.ended_ago_s)
    start_ts = end_ts - float(curves.epoch_time_s[:done].sum()) - 60.0
    run.clock = datetime.fromtimestamp(start_ts)
    run.start_session()
    run.clock += timedelta(seconds=60.0)  # preprocessing: unpacking the dataset, compiling the network
    run.history(done)
    if spec.state == "finished":
        run.finish(final_dice=round(float(np.clip(np.nanmean(curves.dice[done - 1]) + 0.035, 0, 0.99)), 4))
    if spec.checkpoints and spec.version == "v2":
        write_checkpoints(run, done, finished=spec.state == "finished")
    for path in folder.rglob("*"):
        os.utime(path, (end_ts, end_ts))
    os.utime(folder / "debug.json", (start_ts, start_ts))
    return run


def write_checkpoints(run: FakeRun, epochs: int, *, finished: bool) -> None:
    """The checkpoints nnU-Net leaves after ``epochs`` epochs: ``checkpoint_best.pth`` at the best EMA so far, and
    ``checkpoint_final.pth`` once finished, else ``checkpoint_latest.pth`` (written every 50 epochs)."""
    if epochs <= 0:
        return
    saved = {"checkpoint_best.pth": int(np.argmax(run.curves.ema[:epochs])) + 1}
    if finished:
        saved["checkpoint_final.pth"] = epochs
    elif epochs >= 50:
        saved["checkpoint_latest.pth"] = epochs // 50 * 50
    for name, n in saved.items():
        (run.folder / name).write_bytes(run.checkpoint_bytes(n))


def write_folds(root: Path, dataset: str, configuration: str, epochs: Sequence[int], *, planned: int = 1000,
                trainer: str = "nnUNetTrainer", labels: Sequence[str] = ("anterior", "posterior"),
                seed: int = 10) -> list[Path]:
    """The folds of one model folder, each with its own plateau and pace; a fold short of ``planned`` crashed."""
    specs = [RunSpec(dataset, trainer, configuration, fold, planned, epochs_done=n,
                     curve=CurveSpec(tuple(0.86 + 0.04 * math.sin(1.7 * fold) - 0.08 * k for k in range(len(labels))),
                                     timescale=(40 + 15 * fold) / planned, seed=seed + fold),
                     state="finished" if n >= planned else "crashed") for fold, n in enumerate(epochs)]
    return [write_run(root, spec, labels=labels).folder for spec in specs]


def write_tree(root: Path, n_runs: int, epochs: int, *, planned_epochs: int = 2000,
               checkpoints: bool = False) -> list[FakeRun]:
    """A results tree of ``n_runs`` unfinished runs with ``epochs`` epochs each, for the benchmarks; with
    ``checkpoints``, each also has the checkpoints nnU-Net keeps during training."""
    runs = []
    datasets = ("Dataset001_Liver", "Dataset002_Heart", "Dataset003_Lung")
    configurations = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres", "3d_fullres_bs4")
    per_trainer = len(datasets) * len(configurations) * 5
    for index in range(n_runs):
        configuration = configurations[(index // len(datasets)) % len(configurations)]
        fold = (index // (len(datasets) * len(configurations))) % 5
        folder = make_run_dir(root, datasets[index % len(datasets)], f"nnUNetTrainer_v{index // per_trainer}",
                              "nnUNetPlans", configuration, fold, labels=("structure_1", "structure_2"))
        run = FakeRun(folder, planned_epochs=planned_epochs, epoch_s=None)  # epoch times vary, as in a real log
        run.start_session()
        run.history(epochs)
        if checkpoints:
            write_checkpoints(run, epochs, finished=False)
        runs.append(run)
    return runs
