"""What a report shows, gathered once: a run's curves, summary and verdict; a dataset's fold groups.

Every "nothing to draw" case becomes one :class:`ReportError` with a sentence a user can act on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.analyze import Analysis, analyze_run, frame_column
from monitor.runs.layout import RunLocation, discover_runs
from monitor.runs.reader import RunReader, load_run
from monitor.stops import with_stop_cause

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DatasetGroup", "ReportError", "RunData", "RunSource", "find_group", "group_runs", "load_run_data"]

RunSource = RunReader | str | os.PathLike[str]


class ReportError(Exception):
    """Nothing sensible to draw: a missing folder, a run without a completed epoch, an unknown dataset."""


@dataclass(frozen=True)
class RunData:
    """One run as the reports need it; built by :func:`load_run_data`, never empty."""

    frame: pd.DataFrame
    summary: dict[str, Any]
    analysis: Analysis

    @property
    def epoch(self) -> np.ndarray:
        return self.frame["epoch"].to_numpy(dtype=float)

    def column(self, name: str) -> np.ndarray:
        """A float column, all-NaN when the log format lacks it (v1 logs have no EMA line, say)."""
        return frame_column(self.frame, name)

    @property
    def dice_columns(self) -> list[str]:
        return sorted((c for c in self.frame.columns if c.startswith("dice_")), key=lambda c: int(c[5:]))

    @property
    def class_names(self) -> list[str]:
        names = list(self.summary.get("class_names") or [])
        columns = self.dice_columns
        return names if len(names) == len(columns) else [f"class {k + 1}" for k in range(len(columns))]

    @property
    def epochs_done(self) -> int:
        return int(self.summary.get("epochs_completed") or len(self.frame))

    @property
    def last_epoch(self) -> int:
        return int(self.frame["epoch"].iloc[-1])

    @property
    def planned(self) -> int | None:
        value = self.summary.get("planned_epochs")
        return int(value) if value else None


def load_run_data(run: RunSource, analysis: Analysis | None = None, *,
                  root: str | os.PathLike[str] | None = None) -> RunData:
    """Read a run and its verdict; raise if nothing can be drawn. A reader passed in is not refreshed: the
    dashboard's PNG must show what its chart shows."""
    if isinstance(run, RunReader):
        reader = run
    else:
        path = Path(run)
        if not path.is_dir():
            raise ReportError(f"run folder not found: {run}")
        reader = load_run(path, root)
    frame = reader.frame()
    run_id = reader.location.run_id
    if not len(frame):
        why = "; ".join(reader.problems()) or "no training log"
        raise ReportError(f"{run_id}: no completed epoch to plot ({why})")
    summary = with_stop_cause(reader.summary(), reader.location, reader.curves())
    if analysis is None:
        analysis = analyze_run(reader, status=summary.status)  # the verdict exactly as scan and analyze compute it
    return RunData(frame, summary.row(), analysis)


@dataclass(frozen=True)
class DatasetGroup:
    """The folds of one dataset × configuration × trainer × plans: what a dataset report overlays."""

    dataset: str
    configuration: str
    trainer: str
    plans: str
    runs: tuple[RunLocation, ...]

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.configuration}/{self.trainer}__{self.plans}"


def group_runs(locations: Sequence[RunLocation]) -> list[DatasetGroup]:
    """Fold groups in a stable order (dataset, configuration, trainer, plans), folds sorted numerically."""
    groups: dict[tuple[str, str, str, str], list[RunLocation]] = {}
    for loc in locations:
        groups.setdefault((loc.dataset, loc.configuration, loc.trainer, loc.plans), []).append(loc)

    def fold_key(loc: RunLocation) -> tuple[int, str]:
        return (int(loc.fold), "") if loc.fold.isdigit() else (1 << 30, loc.fold)

    return [DatasetGroup(*key, tuple(sorted(runs, key=fold_key))) for key, runs in sorted(groups.items())]


def _choices(values: Sequence[str]) -> str:
    unique = sorted(set(values))
    shown = ", ".join(unique[:12])
    return shown + (f" (and {len(unique) - 12} more)" if len(unique) > 12 else "")


def find_group(root: str | os.PathLike[str], dataset: str, configuration: str,
               trainer: str | None = None, plans: str | None = None) -> DatasetGroup:
    """The one fold group asked for; the error names what exists when none or several match. ``trainer`` may
    be a trainer name or ``Trainer__Plans`` (two plans of one trainer are two groups); ``plans`` picks one."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise ReportError(f"results root not found or not a folder: {root}")
    locations = discover_runs(root_path)
    of_dataset = [loc for loc in locations if loc.dataset == dataset]
    if not of_dataset:
        raise ReportError(f"no runs of dataset {dataset!r} under {root}; datasets there: "
                          f"{_choices([loc.dataset for loc in locations]) or 'none'}")
    of_config = [loc for loc in of_dataset if loc.configuration == configuration]
    if not of_config:
        raise ReportError(f"dataset {dataset} has no {configuration!r} runs; configurations there: "
                          f"{_choices([loc.configuration for loc in of_dataset])}")
    groups = group_runs(of_config)
    if trainer is not None:
        groups = [g for g in groups if trainer in (g.trainer, f"{g.trainer}__{g.plans}")]
        if not groups:
            raise ReportError(f"{dataset} {configuration} has no runs of trainer {trainer!r}; trainers there: "
                              f"{_choices([f'{loc.trainer}__{loc.plans}' for loc in of_config])}")
    if plans is not None:
        with_plans = [g for g in groups if g.plans == plans]
        if not with_plans:
            raise ReportError(f"{dataset} {configuration} has no runs with plans {plans!r}"
                              + (f" of trainer {trainer!r}" if trainer else "") + "; there: "
                              f"{_choices([f'{g.trainer}__{g.plans}' for g in groups])}")
        groups = with_plans
    if len(groups) > 1:
        raise ReportError(f"{dataset} {configuration} has runs of several trainers/plans; choose one with "
                          f"--trainer: {_choices([f'{g.trainer}__{g.plans}' for g in groups])}")
    return groups[0]
