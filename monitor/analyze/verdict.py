"""The analyzer applied to a run as read from disk: the one call the CLI, scan and dashboard share.

``analyze`` works on a bare DataFrame; this module supplies what it needs to know about the run
(planned epochs, whether training finished or is still running) from the run's reader.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from monitor.analyze.analyzer import Analysis, AnalyzerOptions, analyze, analyze_series, mean_dice_series
from monitor.runs.merge import Curves
from monitor.runs.reader import RunReader, curves_frame, load_run
from monitor.runs.status import RunStatus

if TYPE_CHECKING:
    import pandas as pd

_DICE_COLUMN = re.compile(r"dice_(\d+)")
_CURVE_COLUMNS = ("ema_fg_dice", "lr", "train_loss", "val_loss", "epoch_time_s")

__all__ = ["analyze_curves", "analyze_run"]


def analyze_run(run: RunReader | str | os.PathLike[str], options: AnalyzerOptions | None = None,
                *, status: RunStatus | None = None) -> Analysis:
    """The analyzer's typed result for one run (a reader, or a fold folder to read).

    ``status`` may be passed by a caller that knows better than the files (the watcher, a job registry).
    """
    reader = run if isinstance(run, RunReader) else load_run(run)
    state = status or reader.status()
    return analyze_curves(reader.curves(), planned_epochs=reader.planned_epochs()[0], status=state,
                          options=options, frame=reader.frame, device=reader.metadata.device)


def analyze_curves(curves: Curves, *, planned_epochs: int | None, status: RunStatus,
                   options: AnalyzerOptions | None = None,
                   frame: Callable[[], pd.DataFrame] | None = None, device: str | None = None) -> Analysis:
    """The analyzer on a run's merged curves, given its status: what the scan and the dashboard both call.

    The series is read straight off the arrays; ``frame`` builds the DataFrame only if the chosen series is
    a column the arrays do not have. ``device`` (``debug.json``'s, e.g. ``cuda:0`` or ``cpu``) sets the cost's unit.
    """
    opts = options or AnalyzerOptions()
    finished, running = status == RunStatus.FINISHED, status in (RunStatus.RUNNING, RunStatus.STALLED)
    values = _curve_series(curves, opts.series)
    if values is None:
        return analyze(frame() if frame is not None else curves_frame(curves), planned_epochs=planned_epochs,
                       finished=finished, running=running, options=opts, device=device)
    return analyze_series(curves.epoch, values, curves.lr, curves.epoch_time_s, curves.epoch_end,
                          planned_epochs=planned_epochs, finished=finished, running=running, options=opts,
                          device=device)


def _curve_series(curves: Curves, name: str) -> np.ndarray | None:
    """The column ``name`` of the per-epoch frame, read straight off the merged curves (no DataFrame)."""
    if name == "mean_fg_dice":
        return mean_dice_series(curves.mean_fg_dice, curves.dice)
    if name in _CURVE_COLUMNS:
        return np.asarray(getattr(curves, name), dtype=float)
    match = _DICE_COLUMN.fullmatch(name)
    if match and 1 <= int(match.group(1)) <= curves.dice.shape[1]:
        return curves.dice[:, int(match.group(1)) - 1]
    return None
