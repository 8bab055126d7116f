"""Test kit for the watcher: a fake nnU-Net v2 trainer that writes like the real one, and an event recorder.

The watcher's correctness depends on *how* bytes reach the disk, not only on what they say: nnU-Net v2's
``print_to_log_file`` opens the log in append mode, writes one line and closes it again, so an epoch
arrives as ~8 separate appends spread over the epoch (three at its start, five at its end). This writer
reproduces that, byte for byte in format (``<local datetime>: <message> ``, trailing space included), so
tests exercise the same partial-epoch hold-back and event sequences the real trainer causes, and it can
write a checkpoint (a torch-format zip holding only the pickled ``logging`` dict nnU-Net saves) whose
values agree with the log. :class:`EventRecorder` awaits events with a deadline instead of sleeping.
It lives in ``monitor/`` (not in ``tests/``) because ``bench/bench_watch.py`` needs it too; it never
touches anything but the paths it is given.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import pickle
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.watch.events import WatchEvent
    from monitor.watch.watcher import ResultsWatcher

__all__ = ["EventRecorder", "FakeRun", "log_name", "make_run_dir", "write_tree"]

_BANNER = (
    "\n#######################################################################\n"
    "Please cite the following paper when using nnU-Net:\n"
    "Isensee, F., Jaeger, P. F., Kohl, S. A., Petersen, J., & Maier-Hein, K. H. (2021). nnU-Net: a self-configuring "
    "method for deep learning-based biomedical image segmentation. Nature methods, 18(2), 203-211.\n"
    "#######################################################################\n"
)


def log_name(start: _dt.datetime) -> str:
    """nnU-Net's log file name: the start time without zero padding (``training_log_2024_3_9_07_05_01.txt``)."""
    return (f"training_log_{start.year}_{start.month}_{start.day}_{start.hour:02d}_{start.minute:02d}_"
            f"{start.second:02d}.txt")


def make_run_dir(root: Path, dataset: str = "Dataset001_Fake", trainer: str = "nnUNetTrainer",
                 plans: str = "nnUNetPlans", configuration: str = "3d_fullres", fold: int | str = 0) -> Path:
    """Create ``root/<dataset>/<trainer>__<plans>__<configuration>/fold_<fold>`` and return it."""
    path = root / dataset / f"{trainer}__{plans}__{configuration}" / f"fold_{fold}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class FakeRun:
    """One fake training run writing nnU-Net v2 log lines into ``folder``.

    ``clock`` is the wall time the log's timestamps claim (it advances by ``epoch_s`` per epoch); it is
    independent of the real clock so a 1000-epoch history can be written in a fraction of a second.
    """

    folder: Path
    planned_epochs: int = 1000
    epoch_s: float = 100.0
    n_classes: int = 2
    initial_lr: float = 0.01
    clock: _dt.datetime = field(default_factory=lambda: _dt.datetime(2024, 3, 9, 7, 5, 1))
    log_path: Path | None = None
    next_epoch: int = 0
    dice_value: float | None = None  # fixed pseudo Dice for every class (0.0 or NaN to simulate a dead run)

    # -- files ---------------------------------------------------------------------------------
    def start_session(self, *, at_epoch: int | None = None, write_debug: bool = True) -> Path:
        """Begin a new log file (a fresh start or a resume at ``at_epoch``), as ``nnUNetv2_train`` does."""
        if at_epoch is not None:
            self.next_epoch = at_epoch
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path = self.folder / log_name(self.clock)
        while self.log_path.exists():  # two sessions in one second: nnU-Net would overwrite; we bump
            self.clock += _dt.timedelta(seconds=1)
            self.log_path = self.folder / log_name(self.clock)
        if write_debug:
            debug = {"num_epochs": str(self.planned_epochs), "initial_lr": str(self.initial_lr)}
            (self.folder / "debug.json").write_text(json.dumps(debug))
        self._append_text(_BANNER)
        self._line("Using splits from existing split file: splits_final.json")
        self._line(f"The split file contains 5 splits.\n{self._stamp()}: Desired fold for training: 0")
        return self.log_path

    def _stamp(self) -> str:
        return str(self.clock)  # nnU-Net prints datetime.fromtimestamp(...) with str()

    def _append_text(self, text: str) -> None:
        assert self.log_path is not None, "call start_session() first"
        with open(self.log_path, "a", encoding="utf-8") as handle:  # open-write-close, like nnU-Net
            handle.write(text)

    def _line(self, message: str) -> None:
        self._append_text(f"{self._stamp()}: {message} \n")

    # -- epochs --------------------------------------------------------------------------------
    def lr(self, epoch: int) -> float:
        """nnU-Net's PolyLRScheduler, rounded to 5 decimals as the log prints it."""
        return round(self.initial_lr * (1 - epoch / self.planned_epochs) ** 0.9, 5)

    def dice(self, epoch: int, digits: int | None = 4) -> list[float]:
        if self.dice_value is not None:
            return [self.dice_value] * self.n_classes
        base = 0.9 * (1 - math.exp(-(epoch + 1) / 60))
        values = [min(max(base - 0.05 * k + 0.01 * math.sin(epoch * (k + 1)), 0.0), 1.0)
                  for k in range(self.n_classes)]
        return [round(v, digits) for v in values] if digits is not None else values

    @staticmethod
    def train_loss(epoch: int, digits: int | None = 4) -> float:
        value = -0.5 * (1 - math.exp(-(epoch + 1) / 80)) - 1e-5 * math.sin(epoch)
        return round(value, digits) if digits is not None else value

    def _dice_text(self, epoch: int) -> str:
        return ", ".join("nan" if math.isnan(v) else f"np.float32({v})" for v in self.dice(epoch))

    def begin_epoch(self) -> None:
        """The three lines nnU-Net writes when an epoch starts."""
        self._line("")
        self._line(f"Epoch {self.next_epoch}")
        self._line(f"Current learning rate: {self.lr(self.next_epoch)}")

    def end_epoch(self) -> None:
        """The lines written when the epoch ends; the epoch is complete after ``Epoch time``."""
        epoch = self.next_epoch
        self.clock += _dt.timedelta(seconds=self.epoch_s)
        self._line(f"train_loss {self.train_loss(epoch)}")
        self._line(f"val_loss {round(self.train_loss(epoch, None) + 0.05, 4)}")
        self._line(f"Pseudo dice [{self._dice_text(epoch)}]")
        self._line(f"Epoch time: {self.epoch_s:.2f} s")
        self.next_epoch += 1

    def epoch(self) -> None:
        self.begin_epoch()
        self.end_epoch()

    def history(self, n_epochs: int) -> None:
        """Write ``n_epochs`` complete epochs in one append (a past that exists before the watcher starts)."""
        lines: list[str] = []
        for _ in range(n_epochs):
            epoch = self.next_epoch
            lines += [f"{self._stamp()}:  ", f"{self._stamp()}: Epoch {epoch} ",
                      f"{self._stamp()}: Current learning rate: {self.lr(epoch)} "]
            self.clock += _dt.timedelta(seconds=self.epoch_s)
            lines += [f"{self._stamp()}: train_loss {self.train_loss(epoch)} ",
                      f"{self._stamp()}: val_loss {round(self.train_loss(epoch, None) + 0.05, 4)} ",
                      f"{self._stamp()}: Pseudo dice [{self._dice_text(epoch)}] ",
                      f"{self._stamp()}: Epoch time: {self.epoch_s:.2f} s "]
            self.next_epoch += 1
        self._append_text("\n".join(lines) + ("\n" if lines else ""))

    def checkpoint_bytes(self, n_epochs: int | None = None) -> bytes:
        """A checkpoint as ``torch.save`` lays it out (zip, ``<name>/data.pkl``) with nnU-Net's ``logging`` dict
        for epochs ``0..n_epochs-1`` (default: all written), full precision, agreeing with the log."""
        n = self.next_epoch if n_epochs is None else n_epochs
        dice = [self.dice(e, None) for e in range(n)]
        mean = [sum(d) / len(d) for d in dice]
        ema: list[float] = []
        for value in mean:
            ema.append(value if not ema else 0.9 * ema[-1] + 0.1 * value)
        start = self.clock.timestamp() - n * self.epoch_s
        logging = {
            "mean_fg_dice": mean, "ema_fg_dice": ema, "dice_per_class_or_region": dice,
            "train_losses": [self.train_loss(e, None) for e in range(n)],
            "val_losses": [self.train_loss(e, None) + 0.05 for e in range(n)],
            "lrs": [self.initial_lr * (1 - e / self.planned_epochs) ** 0.9 for e in range(n)],
            "epoch_start_timestamps": [start + e * self.epoch_s for e in range(n)],
            "epoch_end_timestamps": [start + (e + 1) * self.epoch_s for e in range(n)],
        }
        payload = {"network_weights": {}, "optimizer_state": {}, "grad_scaler_state": None, "logging": logging,
                   "_best_ema": max(ema, default=None), "current_epoch": n, "init_args": {},
                   "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2)}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("checkpoint_latest/data.pkl", pickle.dumps(payload, protocol=2))
            archive.writestr("checkpoint_latest/version", "3\n")
            archive.writestr("checkpoint_latest/data/0", b"\0" * 4096)  # a stand-in tensor storage
        return buffer.getvalue()

    def finish(self, *, final_dice: float | None = 0.8) -> None:
        """``Training done.`` (and the final validation's ``Mean Validation Dice`` when given)."""
        self._line("Training done.")
        if final_dice is not None:
            self._line(f"Mean Validation Dice:  {final_dice}")


class EventRecorder:
    """Collects a watcher's events and awaits conditions with a deadline (no fixed sleeps in tests)."""

    def __init__(self, watcher: ResultsWatcher, since: int = 0) -> None:
        self.watcher = watcher
        self.version = since
        self.events: list[WatchEvent] = []

    def poll(self, timeout: float = 0.0) -> list[WatchEvent]:
        changes = self.watcher.changes_since(self.version, timeout=timeout)
        if changes.events is None:
            raise AssertionError(f"event buffer overflow: version {self.version} is gone")
        self.events.extend(changes.events)
        self.version = changes.version
        return list(changes.events)

    def of(self, kind: str, run_id: str | None = None, after: int = 0) -> list[WatchEvent]:
        return [e for e in self.events
                if e.kind == kind and (run_id is None or e.run_id == run_id) and e.version > after]

    def wait_for(self, predicate: Callable[[WatchEvent], bool], *, timeout: float = 10.0, after: int = 0,
                 what: str = "an event") -> WatchEvent:
        """The first recorded event after version ``after`` that satisfies ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for event in self.events[checked:]:
                if event.version > after and predicate(event):
                    return event
            checked = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(e.kind, e.run_id, dict(e.data).get("epoch", dict(e.data).get("status")))
                        for e in self.events if e.version > after]
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; saw {seen}")
            self.poll(timeout=min(remaining, 0.5))

    def wait_until(self, condition: Callable[[], bool], *, timeout: float = 10.0, what: str = "a condition") -> None:
        """Wait (recording events meanwhile) until ``condition()`` holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            self.poll(timeout=min(remaining, 0.1))


def write_tree(root: Path, n_runs: int, epochs: int, *, epoch_s: float = 100.0,
               datasets: Sequence[str] = ("Dataset001_Liver", "Dataset002_Heart", "Dataset003_Lung"),
               planned_epochs: int = 2000) -> list[FakeRun]:
    """A results tree of ``n_runs`` unfinished runs with ``epochs`` epochs each (the benchmark's tree)."""
    runs = []
    configurations = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres", "3d_fullres_bs4")
    for index in range(n_runs):
        dataset = datasets[index % len(datasets)]
        configuration = configurations[(index // len(datasets)) % len(configurations)]
        per_trainer = len(datasets) * len(configurations) * 5
        trainer = f"nnUNetTrainer_v{index // per_trainer}"
        fold = (index // (len(datasets) * len(configurations))) % 5
        folder = make_run_dir(root, dataset, trainer, "nnUNetPlans", configuration, fold)
        run = FakeRun(folder, planned_epochs=planned_epochs, epoch_s=epoch_s)
        run.start_session()
        run.history(epochs)
        runs.append(run)
    return runs
