"""One run: its logs, checkpoints and side files read incrementally and merged into one per-epoch series.

``refresh()`` reads only what was appended to each log since the last call; checkpoints are re-read only when
their size or mtime changed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.runs.cursor import LogCursor, log_sort_key
from monitor.runs.layout import RunLocation, locate_run
from monitor.runs.merge import Curves, merge_sessions, overlay_checkpoint, stale_from, stale_problem
from monitor.runs.metadata import RunMetadata, default_planned_epochs, planned_epochs_from_lr, read_metadata
from monitor.runs.resume import CheckpointState, ReaderState
from monitor.runs.status import (
    RECENT_EPOCHS,
    RunAssessment,
    RunStatus,
    StatusInputs,
    assess,
    dead_dice_problem,
    is_dead_dice,
    typical_epoch_seconds,
)
from monitor.runs.summary import RunSummary, assessment_fields, iso_seconds

if TYPE_CHECKING:
    import pandas as pd

    from monitor.checkpoints.reader import CheckpointCurves

__all__ = ["CURVE_COLUMNS", "RunReader", "curves_frame", "load_run"]

# nnU-Net's checkpoint names, most complete first: final covers the whole run, best only up to its epoch.
CHECKPOINT_NAMES = (
    "checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth",
    "model_final_checkpoint.model", "model_latest.model", "model_best.model",
)
FINAL_MARKERS = ("checkpoint_final.pth", "model_final_checkpoint.model")
# A watcher's ``checkpoint_settle_s``: a checkpoint that fails to open this soon after its last write is still
# being written (nnU-Net saves in place), so it is retried instead of reported.
CHECKPOINT_SETTLE_S = 120.0
# The median epoch time is over this many trailing epochs: the run's speed as it is now.
_EPOCH_TIME_WINDOW = 50

CURVE_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "mean_fg_dice", "ema_fg_dice")


@dataclass
class _CheckpointEntry:
    signature: tuple[int, float]
    curves: Curves | None
    problem: str | None


class RunReader:
    """Incremental reader of one fold folder; the watcher keeps one per run, a scan makes it once."""

    def __init__(self, location: RunLocation, *, checkpoint_settle_s: float = 0.0) -> None:
        """A checkpoint still being written and younger than ``checkpoint_settle_s`` keeps its previous state
        and is retried (``retry_pending``)."""
        self.location = location
        self.checkpoint_settle_s = checkpoint_settle_s
        self._logs: dict[str, LogCursor] = {}
        self._ordered_logs: list[LogCursor] = []  # by the start time in their names
        self._checkpoints: dict[str, _CheckpointEntry] = {}
        self._metadata: RunMetadata | None = None
        self._metadata_signature: tuple[Any, ...] = ()
        self._curves: Curves | None = None
        self._log_curves: Curves | None = None
        self._problems: list[str] = list(location.problems)
        self._files: set[str] = set()
        self._transient: list[str] = []  # problems of the last refresh only (a flaky mount), cleared by the next
        self.version = 0  # bumped whenever the merged curves or the metadata changed
        # The last refresh could not read everything: call refresh() again even without a file event.
        self.retry_pending = False

    # -- resuming --------------------------------------------------------------------------------
    def state(self) -> ReaderState:
        """What :meth:`resume` needs to go on from here without reading anything again."""
        return ReaderState(
            tuple(sorted(self._files)), tuple(c.state() for c in self._ordered_logs),
            tuple(CheckpointState(name, int(e.signature[0]), float(e.signature[1]), e.curves, e.problem)
                  for name, e in self._checkpoints.items()),
            self._metadata, self._metadata_signature)

    @classmethod
    def resume(cls, location: RunLocation, state: ReaderState, *, checkpoint_settle_s: float = 0.0) -> RunReader:
        """A reader in the state :meth:`state` saved: its curves and summary at once, and the next
        :meth:`refresh` reads only what changed since (a replaced or shorter log again in full)."""
        reader = cls(location, checkpoint_settle_s=checkpoint_settle_s)
        reader._files = set(state.files)
        reader._ordered_logs = [LogCursor.resume(location.path, cursor) for cursor in state.logs]
        reader._logs = {cursor.path.name: cursor for cursor in reader._ordered_logs}
        reader._checkpoints = {c.name: _CheckpointEntry((c.size, c.mtime), c.curves, c.problem)
                               for c in state.checkpoints}
        reader._metadata, reader._metadata_signature = state.metadata, state.metadata_signature
        reader.version = 1
        return reader

    # -- reading -------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Read whatever changed on disk; True when anything a reader sees has changed. Raises
        ``FileNotFoundError`` when the folder is gone; any other ``OSError`` (a flaky mount) keeps the last state."""
        folder = self.location.path
        self.retry_pending = False
        self._transient = []
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            raise
        except OSError as exc:
            self._note_transient(f"cannot list folder ({exc.strerror or exc}); showing last known state")
            return False
        self._files = set(names)
        changed = self._refresh_logs(names)
        if changed:
            self._log_curves = None
        changed |= self._refresh_metadata(names)
        changed |= self._refresh_checkpoints(names)
        if changed or self._curves is None:
            self._curves = None
            self.version += 1
        return changed

    def _note_transient(self, problem: str) -> None:
        """A problem that may go away (network mount): shown until the next refresh, which retries."""
        self.retry_pending = True
        if problem not in self._transient:
            self._transient.append(problem)

    def _refresh_logs(self, names: list[str]) -> bool:
        folder = self.location.path
        log_names = [n for n in names if n.startswith("training_log") and n.endswith(".txt")]
        changed = False
        for gone in set(self._logs) - set(log_names):
            del self._logs[gone]
            changed = True
        ordered = []
        for name in log_names:
            cursor = self._logs.get(name)
            if cursor is None:
                cursor = self._logs[name] = LogCursor(folder / name)
                changed = True
            ordered.append(cursor)
        stats: dict[str, float] = {}
        for cursor in ordered:
            try:
                stats[cursor.path.name] = os.stat(cursor.path).st_mtime
            except OSError:
                stats[cursor.path.name] = 0.0
        ordered.sort(key=lambda c: log_sort_key(c.path.name, stats[c.path.name]))
        for position, cursor in enumerate(ordered):
            try:
                changed |= cursor.read_new(later_log=position < len(ordered) - 1)
            except FileNotFoundError:
                self._logs.pop(cursor.path.name, None)
                changed = True
            except OSError as exc:
                self._note_transient(f"{cursor.path.name}: unreadable ({exc.strerror or exc}); will retry")
        self._ordered_logs = [c for c in ordered if c.path.name in self._logs]
        return changed

    def _refresh_metadata(self, names: list[str]) -> bool:
        folder = self.location.path
        signature: list[tuple[int, float] | None] = []
        for candidate in (folder / "debug.json", folder.parent / "dataset.json",
                          folder / "validation" / "summary.json", folder / "validation_raw" / "summary.json"):
            try:
                info = os.stat(candidate)
                signature.append((info.st_size, info.st_mtime))
            except OSError:
                signature.append(None)
        if self._metadata is not None and tuple(signature) == self._metadata_signature:
            return False
        self._metadata_signature = tuple(signature)
        self._metadata = read_metadata(folder, self.location.trainer)
        return True

    def _refresh_checkpoints(self, names: list[str]) -> bool:
        changed = False
        present = [n for n in CHECKPOINT_NAMES if n in self._files]
        if present:
            from monitor.checkpoints.reader import CheckpointError, read_checkpoint_curves
        for gone in set(self._checkpoints) - set(present):
            del self._checkpoints[gone]
            changed = True
        for name in present:
            path = self.location.path / name
            try:
                info = os.stat(path)
            except OSError:
                continue
            signature = (info.st_size, info.st_mtime)
            entry = self._checkpoints.get(name)
            if entry is not None and entry.signature == signature:
                continue
            try:
                read = read_checkpoint_curves(path)
                curves = _checkpoint_to_curves(read, name)
                problem = "; ".join(f"{name}: {p}" for p in getattr(read, "problems", [])) or None
            except CheckpointError as exc:
                if "still being written" in str(exc) and time.time() - info.st_mtime < self.checkpoint_settle_s:
                    # nnU-Net rewrites checkpoints in place: keep what the previous version said, no problem
                    # yet, and try again (the impossible signature makes the next refresh re-read it).
                    self.retry_pending = True
                    self._checkpoints[name] = _CheckpointEntry(
                        (-1, -1.0), entry.curves if entry is not None else None, None)
                    continue
                curves, problem = None, f"{name}: {exc}"
            except OSError as exc:
                curves, problem = None, f"{name}: unreadable ({exc.strerror or exc})"
            self._checkpoints[name] = _CheckpointEntry(signature, curves, problem)
            changed = True
        return changed

    # -- merged views ----------------------------------------------------------------------------
    def _merged_logs(self) -> Curves:
        if self._log_curves is None:
            ordered = self._ordered_logs
            self._log_curves = merge_sessions([(c.path.name, c.rows) for c in ordered])
        return self._log_curves

    def curves(self) -> Curves:
        """The merged per-epoch series (cached until the next change)."""
        if self._curves is None:
            curves = self._merged_logs()
            # Least complete first, so the final checkpoint's rows are the ones that remain.
            for name in reversed(CHECKPOINT_NAMES):
                entry = self._checkpoints.get(name)
                if entry is None or entry.curves is None:
                    continue
                curves, _ = overlay_checkpoint(curves, entry.curves, name)
            self._curves = curves
        return self._curves

    @property
    def metadata(self) -> RunMetadata:
        return self._metadata if self._metadata is not None else RunMetadata()

    def problems(self) -> list[str]:
        found = list(self._problems) + self._transient
        for cursor in self._logs.values():
            found.extend(cursor.problems)
        if self._metadata is not None:
            found.extend(self._metadata.problems)
        curves = self.curves() if self._curves is None else self._curves
        merged = self._merged_logs() if self._checkpoints else None
        for name in CHECKPOINT_NAMES:
            entry = self._checkpoints.get(name)
            if entry is None:
                continue
            if entry.problem:
                found.append(entry.problem)
            if entry.curves is not None and merged is not None:
                stale = stale_from(merged, entry.curves)
                if stale is not None:
                    found.append(stale_problem(name, stale))
        if not self._logs and not self._checkpoints:
            found.append("no training log or checkpoint in this folder")
        elif len(curves) == 0:
            found.append("no completed epoch yet")
        if len(curves) and curves.dice.shape[1]:
            dead = np.flatnonzero(np.all(np.nan_to_num(curves.dice[-min(len(curves), 20):], nan=0.0) == 0, axis=0))
            for k in dead:
                found.append(f"class {k + 1} pseudo Dice is 0 or NaN over the last epochs")
        if len(curves) and is_dead_dice(curves.mean_fg_dice[-RECENT_EPOCHS:].tolist()):
            found.append(dead_dice_problem(len(curves)))
        return found

    def planned_epochs(self) -> tuple[int | None, str | None]:
        meta = self.metadata
        if meta.planned_epochs is not None:
            return meta.planned_epochs, meta.planned_epochs_source
        curves = self.curves()
        inferred = planned_epochs_from_lr(curves.epoch.tolist(), curves.lr.tolist(), meta.initial_lr)
        if inferred:
            return inferred, "lr schedule"
        default = default_planned_epochs(self.location.trainer)
        return (default, "nnU-Net default") if default else (None, None)

    def training_done(self) -> bool:
        return any(c.parser.training_done for c in self._logs.values()) or any(
            name in self._files for name in FINAL_MARKERS)

    def last_update(self) -> float | None:
        """Newest mtime among logs (seconds since the epoch): when the run last showed life."""
        times = [c.mtime for c in self._logs.values() if c.mtime]
        return max(times) if times else None

    def status_inputs(self, now: float | None = None) -> StatusInputs:
        """What :func:`monitor.runs.status.assess` needs; the watcher caches it per ``version`` and varies ``now``."""
        curves = self.curves()
        window = curves.epoch_end[-(RECENT_EPOCHS + 1):]
        ends = np.where(np.isnat(window), np.nan, window.astype("datetime64[us]").astype(np.float64) / 1e6)
        return StatusInputs(
            now=time.time() if now is None else now,
            last_update=self.last_update(),
            finished=self.training_done() or self.final_validation_dice() is not None,
            epochs_completed=len(curves),
            planned_epochs=self.planned_epochs()[0],
            typical_epoch_s=typical_epoch_seconds(curves.epoch[-(RECENT_EPOCHS + 1):],
                                                  curves.epoch_time_s[-RECENT_EPOCHS:], ends),
            last_epoch=int(curves.epoch[-1]) if len(curves) else None,
            last_epoch_end=float(ends[-1]) if len(curves) and np.isfinite(ends[-1]) else None,
            recent_mean_fg_dice=tuple(curves.mean_fg_dice[-RECENT_EPOCHS:].tolist()),
        )

    def assess(self) -> RunAssessment:
        """Status with its reason, ETA and dead-Dice flag now (rules in :mod:`monitor.runs.status`)."""
        return assess(self.status_inputs())

    def status(self) -> RunStatus:
        """running / stalled / crashed / finished / unknown (rules in :mod:`monitor.runs.status`)."""
        return self.assess().status

    def final_validation_dice(self) -> float | None:
        if self.metadata.final_validation_dice is not None:
            return self.metadata.final_validation_dice
        for cursor in reversed(self._ordered_logs):
            if cursor.final_dice is not None:
                return cursor.final_dice
        return None

    def class_names(self, n_classes: int) -> list[str]:
        names = list(self.metadata.class_names)
        if len(names) != n_classes:
            names = [f"class {k}" for k in range(1, n_classes + 1)]
        return names

    @property
    def log_files(self) -> int:
        """How many training logs the run has."""
        return len(self._logs)

    def summary(self, *, assessment: RunAssessment | None = None) -> RunSummary:
        """The run's row of the run table; ``assessment`` when the caller has already assessed its status."""
        curves = self.curves()
        n = len(curves)
        ema = curves.ema_fg_dice
        finite = np.flatnonzero(np.isfinite(ema))
        best = int(finite[np.argmax(ema[finite])]) if finite.size else None
        n_classes = int(curves.dice.shape[1]) if n else len(self.metadata.class_names)
        recent_times = curves.epoch_time_s[-_EPOCH_TIME_WINDOW:]
        location = self.location
        return RunSummary(
            run_id=location.run_id,
            nnunet_version=location.nnunet_version,
            dataset=location.dataset,
            trainer=location.trainer,
            plans=location.plans,
            configuration=location.configuration,
            fold=location.fold,
            epochs_completed=n,
            last_epoch=int(curves.epoch[-1]) if n else None,
            planned_epochs=self.planned_epochs()[0],
            last_mean_fg_dice=_finite(curves.mean_fg_dice[-1]) if n else None,
            last_ema_fg_dice=_finite(ema[-1]) if n else None,
            best_ema_fg_dice=_finite(ema[best]) if best is not None else None,
            best_ema_epoch=int(curves.epoch[best]) if best is not None else None,
            n_classes=n_classes,
            class_names=tuple(self.class_names(n_classes)),
            final_validation_dice=self.final_validation_dice(),
            median_epoch_time_s=_finite(np.nanmedian(recent_times)) if np.isfinite(recent_times).any() else None,
            last_update=iso_seconds(self.last_update()),
            training_done=self.training_done(),
            log_files=self.log_files,
            problems=tuple(self.problems()),
            device=self.metadata.device,
            **assessment_fields(assessment if assessment is not None else self.assess()),
        )

    def frame(self) -> pd.DataFrame:
        """The per-epoch DataFrame: one row per completed epoch, sorted (schema in the README)."""
        return curves_frame(self.curves())


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def curves_frame(curves: Curves) -> pd.DataFrame:
    """The per-epoch DataFrame of merged curves (:meth:`RunReader.frame`, the watcher's snapshots)."""
    import pandas as pd

    data: dict[str, Any] = {
        "epoch": curves.epoch.astype(np.int64),
        "lr": curves.lr,
        "train_loss": curves.train_loss,
        "val_loss": curves.val_loss,
        "mean_fg_dice": curves.mean_fg_dice,
        "ema_fg_dice": curves.ema_fg_dice,
    }
    for k in range(curves.dice.shape[1]):
        data[f"dice_{k + 1}"] = curves.dice[:, k]
    data["epoch_time_s"] = curves.epoch_time_s
    data["epoch_end"] = pd.to_datetime(curves.epoch_end).tz_localize("UTC")
    data["source"] = curves.source.astype(str) if len(curves) else np.empty(0, dtype=object)
    return pd.DataFrame(data)


def _checkpoint_to_curves(read: CheckpointCurves, name: str) -> Curves:
    columns = read.columns
    n = read.epochs
    dice = columns.get("dice")
    return Curves(
        epoch=columns["epoch"],
        lr=columns["lr"],
        train_loss=columns["train_loss"],
        val_loss=columns["val_loss"],
        dice=dice if dice is not None else np.empty((n, 0)),
        mean_fg_dice=columns["mean_fg_dice"],
        epoch_time_s=columns["epoch_time_s"],
        epoch_end=columns["epoch_end"].astype("datetime64[us]"),
        source=np.full(n, name, dtype=object),
    )


def load_run(run_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> RunReader:
    """Read one fold folder completely (logs, checkpoints, side files) and return its reader."""
    reader = RunReader(locate_run(run_dir, root))
    reader.refresh()
    return reader
