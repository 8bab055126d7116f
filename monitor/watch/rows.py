"""What changed in one run between two snapshots: new epoch rows, summary changes, and frozen copies.

Pure functions over :class:`~monitor.runs.merge.Curves` and summary rows, kept apart from the watcher's threads so
the one subtle rule — which merged rows are *new epochs* — is readable on its own: appended rows are new; after
a resume (a new session replaying epochs from its checkpoint) the replayed rows are new too, even when their
values repeat; a checkpoint's full-precision copy of a logged epoch is not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.runs.merge import Curves
from monitor.runs.status import RunAssessment
from monitor.watch.events import iso_time

__all__ = ["changed", "epoch_row", "freeze_curves", "freeze_summary", "iso_seconds", "new_rows", "status_data"]

_LOSS_TOLERANCE = 2e-4  # logs print 4 decimals; checkpoints hold full precision of the same epoch
_VOLATILE = frozenset({"last_update", "eta_s", "eta"})  # clock-driven: not a reason for a run_updated event


def freeze_curves(curves: Curves) -> Curves:
    """Mark the arrays read-only: snapshots share them with every reader (the run reader never writes them
    in place; it builds new arrays on each change)."""
    for name in curves.__dataclass_fields__:
        array = getattr(curves, name)
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return curves


def freeze_summary(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view of a summary row with its lists as tuples, so readers cannot change a shared row."""
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in summary.items()})


def iso_seconds(timestamp: float | None) -> str | None:
    """The run table's time format (``2024-03-09T07:05:01Z``), as ``RunReader.summary`` writes ``eta``."""
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Did anything but the clock-driven fields change?"""
    for key, value in new.items():
        if key in _VOLATILE:
            continue
        before = old.get(key)
        if isinstance(value, list):
            value = tuple(value)
        if before != value and not (isinstance(before, float) and isinstance(value, float)
                                    and math.isnan(before) and math.isnan(value)):
            return True
    return False


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (np.abs(a - b) <= _LOSS_TOLERANCE) | (np.isnan(a) & np.isnan(b))


def _rows_differ(old: Curves, new: Curves, rows: slice) -> np.ndarray:
    """Per row: another epoch, other values, or another log session (a deterministic replay after a resume has
    the same values but is still new). A checkpoint's full-precision copy of a logged epoch is the same row."""
    differs = old.epoch[rows] != new.epoch[rows]
    for column in ("train_loss", "val_loss", "mean_fg_dice"):
        differs |= ~_same(getattr(old, column)[rows], getattr(new, column)[rows])
    sessions = [a != b and str(a).startswith("log:") and str(b).startswith("log:")
                for a, b in zip(old.source[rows], new.source[rows])]
    return differs | np.asarray(sessions, dtype=bool).reshape(differs.shape)


def new_rows(old: Curves, new: Curves) -> range:
    """Rows of ``new`` that are new epochs: appended ones, or those a resumed session replaced.

    Fast path (an append): the old last row is unchanged, so only the rows after it are new, O(appended).
    Otherwise (a resume, a replaced log) compare the common prefix and start at the first row that differs.
    """
    n_old, n_new = len(old), len(new)
    if n_old == 0:
        return range(n_new)
    if n_new >= n_old and not _rows_differ(old, new, slice(n_old - 1, n_old)).any():
        return range(n_old, n_new)
    common = min(n_old, n_new)
    first = np.flatnonzero(_rows_differ(old, new, slice(0, common)))
    return range(int(first[0]) if first.size else common, n_new)


def epoch_row(curves: Curves, ema: np.ndarray, i: int) -> dict[str, Any]:
    """The ``epoch`` event's data: row ``i`` as plain Python values (NaN stays NaN; JSON writers map it to null)."""
    row: dict[str, Any] = {
        "epoch": int(curves.epoch[i]),
        "mean_fg_dice": float(curves.mean_fg_dice[i]),
        "ema_fg_dice": float(ema[i]),
        "lr": float(curves.lr[i]),
        "train_loss": float(curves.train_loss[i]),
        "val_loss": float(curves.val_loss[i]),
    }
    for k in range(curves.dice.shape[1]):
        row[f"dice_{k + 1}"] = float(curves.dice[i, k])
    row["epoch_time_s"] = float(curves.epoch_time_s[i])
    end = curves.epoch_end[i]
    row["epoch_end"] = None if np.isnat(end) else iso_time(end.astype("datetime64[us]").astype(np.int64) / 1e6)
    return row


def status_data(assessment: RunAssessment, previous: str) -> dict[str, Any]:
    """The ``status`` event's data: the new status with its reason and ETA, and the one it replaces."""
    return {"status": assessment.status, "previous": previous, "reason": assessment.reason,
            "eta_s": assessment.eta_s, "eta": iso_seconds(assessment.eta), "dead_dice": assessment.dead_dice}
