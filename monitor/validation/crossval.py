"""The cross-validation table of one model folder (dataset × trainer × plans × configuration): folds 0–4 with their
real validation, mean ± SD over the validated folds, the pooled result, and nnU-Net's own accumulated results.

Two summaries of the same folds are shown because both are in use: the mean ± SD of the folds' foreground Dice
(how papers report cross-validation), and the *pooled* Dice, where every validation case of every fold is scored
together, which is what ``nnUNetv2_find_best_configuration`` computes (``accumulate_cv_results`` copies the folds'
predictions into ``crossval_results_folds_<folds>/`` and evaluates them again). The pooled value is rebuilt here
from the folds' per-case metrics and checked against nnU-Net's file where one exists.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from monitor.runs.layout import FOLD_DIR_RE, RunLocation, parse_run_path
from monitor.validation.run import RunValidation, ValidationStatus, label_names, read_run_validation
from monitor.validation.summary import SummaryError, ValidationSummary, read_summary

__all__ = ["AGREEMENT_TOLERANCE", "ClassStats", "CrossValidation", "FoldState", "FoldValidation", "NnunetCrossval",
           "crossval_table", "crossval_tables", "nnunet_crossval_stamp", "pooled_dice"]

DEFAULT_FOLDS = ("0", "1", "2", "3", "4")
AGREEMENT_TOLERANCE = 1e-6
_CROSSVAL_RE = re.compile(r"^crossval_results_folds_(?P<folds>[0-9_]+)$")


class FoldState(str, Enum):
    """One fold of the table."""

    VALIDATED = "validated"  # a current, readable validation: in the mean
    STALE = "stale"  # validated before the final checkpoint was written: not in the mean
    UNVALIDATED = "unvalidated"  # a fold folder without validation/summary.json
    UNREADABLE = "unreadable"  # a summary.json that could not be read
    MISSING = "missing"  # no fold folder at all

    def __str__(self) -> str:
        return self.value


_STATE_OF = {ValidationStatus.CURRENT: FoldState.VALIDATED, ValidationStatus.STALE: FoldState.STALE,
             ValidationStatus.MISSING: FoldState.UNVALIDATED, ValidationStatus.UNREADABLE: FoldState.UNREADABLE}


@dataclass(frozen=True)
class FoldValidation:
    """One fold: its state and, when its folder exists, its validation."""

    fold: str
    state: FoldState
    validation: RunValidation | None

    @property
    def summary(self) -> ValidationSummary | None:
        return self.validation.summary if self.validation is not None else None

    @property
    def in_mean(self) -> bool:
        return self.state is FoldState.VALIDATED and self.summary is not None and self.summary.usable


@dataclass(frozen=True)
class ClassStats:
    """One class (or the foreground mean) across folds: mean ± sample SD of the folds, and the pooled value."""

    key: str  # "foreground" or nnU-Net's class key
    name: str
    mean: float
    sd: float  # NaN with fewer than two folds
    folds: int
    pooled: float


@dataclass(frozen=True)
class NnunetCrossval:
    """nnU-Net's accumulated cross-validation (``crossval_results_folds_*``) and whether this table agrees."""

    folder: Path
    folds: tuple[str, ...]
    summary: ValidationSummary | None
    error: str | None
    ours: float | None  # the pooled foreground Dice rebuilt from the same folds, when all of them are validated
    agrees: bool | None  # None when it cannot be checked (unreadable, or a fold no longer validated)
    note: str


@dataclass(frozen=True)
class CrossValidation:
    """The cross-validation table of one model folder."""

    model_dir: Path
    dataset: str
    trainer: str
    plans: str
    configuration: str
    keys: tuple[str, ...]
    labels: dict[str, str]
    folds: tuple[FoldValidation, ...]
    foreground: ClassStats
    per_class: tuple[ClassStats, ...]
    nnunet: tuple[NnunetCrossval, ...] = field(default=())

    def label(self, key: str) -> str:
        return self.labels.get(key, f"class {key}")

    def fold(self, fold: str) -> FoldValidation | None:
        return next((f for f in self.folds if f.fold == fold), None)

    def folds_in(self, *states: FoldState) -> tuple[str, ...]:
        return tuple(f.fold for f in self.folds if f.state in states)

    @property
    def validated(self) -> tuple[str, ...]:
        return tuple(f.fold for f in self.folds if f.in_mean)

    @property
    def missing(self) -> tuple[str, ...]:
        return self.folds_in(FoldState.MISSING)

    @property
    def unvalidated(self) -> tuple[str, ...]:
        """Folds with a folder but no usable current validation (none, stale, unreadable, or NaN)."""
        return tuple(f.fold for f in self.folds if f.state is not FoldState.MISSING and not f.in_mean)

    @property
    def cases(self) -> int:
        return sum(len(f.summary.cases) for f in self.folds if f.in_mean and f.summary is not None)

    @property
    def name(self) -> str:
        return f"{self.trainer}__{self.plans}__{self.configuration}"

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per fold, then the mean ± SD and pooled rows: what a table view or CSV shows."""
        out = []
        for fold in self.folds:
            summary = fold.summary
            validation = fold.validation
            row: dict[str, Any] = {"fold": fold.fold, "state": fold.state.value,
                                   "cases": len(summary.cases) if summary is not None else None,
                                   "foreground": summary.foreground_dice if summary is not None else None}
            for key in self.keys:
                row[self.label(key)] = summary.class_dice(key) if summary is not None else None
            row["checkpoint"] = validation.checkpoint.value if validation is not None and summary else None
            row["npz"] = validation.npz_files if validation is not None else None
            out.append(row)
        stats = (self.foreground, *self.per_class)
        mean_row: dict[str, Any] = {"fold": "mean", "state": f"{self.foreground.folds} folds", "cases": self.cases}
        sd_row: dict[str, Any] = {"fold": "sd", "state": "", "cases": None}
        pooled_row: dict[str, Any] = {"fold": "pooled", "state": "all cases", "cases": self.cases}
        for stat in stats:
            column = "foreground" if stat.key == "foreground" else self.label(stat.key)
            mean_row[column], sd_row[column], pooled_row[column] = stat.mean, stat.sd, stat.pooled
        return [*out, mean_row, sd_row, pooled_row]

    def to_dict(self) -> dict[str, Any]:
        def stat(s: ClassStats) -> dict[str, Any]:
            return {"key": s.key, "mean": s.mean, "sd": s.sd, "folds": s.folds, "pooled": s.pooled}

        return {
            "model_dir": str(self.model_dir), "dataset": self.dataset, "trainer": self.trainer, "plans": self.plans,
            "configuration": self.configuration,
            "folds": [{"fold": f.fold, "state": f.state.value,
                       **({"validation": f.validation.to_dict()} if f.validation is not None else {})}
                      for f in self.folds],
            "foreground": stat(self.foreground),
            "per_class": {self.label(s.key): stat(s) for s in self.per_class},
            "validated": list(self.validated), "missing": list(self.missing), "unvalidated": list(self.unvalidated),
            "nnunet_crossval": [{"folder": str(n.folder), "folds": list(n.folds), "error": n.error, "ours": n.ours,
                                 "theirs": n.summary.foreground_dice if n.summary is not None else None,
                                 "agrees": n.agrees, "note": n.note} for n in self.nnunet],
        }


def pooled_dice(summaries: Sequence[ValidationSummary], keys: Sequence[str]) -> tuple[float, list[float]]:
    """nnU-Net's numbers over all cases of ``summaries`` together: per class the NaN-ignoring mean over cases, and the
    foreground Dice as the plain mean of those (``compute_metrics_on_folder``'s rule)."""
    per_class = []
    for key in keys:
        values = np.array([case.dice(key) for s in summaries for case in s.cases], dtype=float)
        per_class.append(float(np.nanmean(values)) if np.isfinite(values).any() else math.nan)
    foreground = float(np.mean(per_class)) if per_class else math.nan
    return foreground, per_class


def _stats(key: str, name: str, values: list[float], pooled: float) -> ClassStats:
    finite = [v for v in values if math.isfinite(v)]
    mean = float(np.mean(finite)) if finite else math.nan
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    return ClassStats(key, name, mean, sd, len(finite), pooled)


def _fold_sort_key(fold: str) -> tuple[int, str]:
    return (int(fold), "") if fold.isdigit() else (1 << 30, fold)


def nnunet_crossval_stamp(model_dir: str | os.PathLike[str]) -> tuple[tuple[str, int], ...]:
    """Which ``crossval_results_folds_*`` folders of ``model_dir`` exist, with their summary.json's modification
    time (0 while it is absent): it changes when nnU-Net accumulates (again), so a cached table can be rebuilt.
    One listing of the model folder; the fold folders are not read."""
    found = []
    try:
        entries = [e for e in os.scandir(model_dir) if _CROSSVAL_RE.match(e.name)]
    except OSError:
        return ()
    for entry in entries:
        try:
            stamp = os.stat(os.path.join(entry.path, "summary.json")).st_mtime_ns
        except OSError:
            stamp = 0
        found.append((entry.name, stamp))
    return tuple(sorted(found))


def _nnunet_crossval(model_dir: Path, folds: dict[str, FoldValidation], keys: Sequence[str]) -> list[NnunetCrossval]:
    found = []
    try:
        entries = sorted(e.name for e in os.scandir(model_dir) if e.is_dir())
    except OSError:
        return []
    for name in entries:
        match = _CROSSVAL_RE.match(name)
        if match is None:
            continue
        fold_ids = tuple(match.group("folds").split("_"))
        folder = model_dir / name
        try:
            theirs: ValidationSummary | None = read_summary(folder / "summary.json")
            error = None
        except FileNotFoundError:
            theirs, error = None, "no summary.json (accumulation interrupted?)"
        except SummaryError as exc:
            theirs, error = None, exc.reason
        members = [folds.get(f) for f in fold_ids]
        summaries = [m.summary for m in members if m is not None and m.in_mean and m.summary is not None]
        if len(summaries) != len(fold_ids):
            absent = [f for f, m in zip(fold_ids, members) if m is None or not m.in_mean]
            found.append(NnunetCrossval(folder, fold_ids, theirs, error, None, None,
                                        f"fold(s) {', '.join(absent)} no longer have a current validation"))
            continue
        ours, ours_classes = pooled_dice(summaries, keys)
        if theirs is None:
            found.append(NnunetCrossval(folder, fold_ids, None, error, ours, None, f"unreadable: {error}"))
            continue
        their_classes = [theirs.class_dice(k) for k in keys]
        pairs = [(ours, theirs.foreground_dice), *zip(ours_classes, their_classes)]
        same_cases = len(theirs.cases) == sum(len(s.cases) for s in summaries)
        agrees = same_cases and all(
            (math.isnan(a) and math.isnan(b)) or abs(a - b) <= AGREEMENT_TOLERANCE for a, b in pairs)
        if agrees:
            note = f"agrees with nnU-Net's {name}/summary.json ({len(theirs.cases)} cases)"
        elif not same_cases:
            note = (f"nnU-Net's {name} scored {len(theirs.cases)} cases, the folds' validations "
                    f"{sum(len(s.cases) for s in summaries)}: a fold was validated again since")
        else:
            note = (f"nnU-Net's {name} says {theirs.foreground_dice:.4f}, the folds' cases give {ours:.4f}: a fold "
                    "was validated again since it was accumulated")
        found.append(NnunetCrossval(folder, fold_ids, theirs, None, ours, agrees, note))
    return found


def crossval_table(model_dir: str | os.PathLike[str], *, folds: Iterable[str] = DEFAULT_FOLDS,
                   location: RunLocation | None = None) -> CrossValidation:
    """The table of one model folder (``<Trainer>__<Plans>__<configuration>``). Folds 0–4 are always listed; other
    numbered folds found there are added; ``fold_all`` is not a cross-validation fold and is left out."""
    model_dir = Path(model_dir)
    wanted = [str(f) for f in folds]
    try:
        present = sorted((e.name[5:] for e in os.scandir(model_dir)
                          if e.is_dir() and FOLD_DIR_RE.match(e.name) and e.name != "fold_all"), key=_fold_sort_key)
    except OSError:
        present = []
    fold_ids = sorted(set(wanted) | set(present), key=_fold_sort_key)
    if location is None:
        sample = model_dir / f"fold_{present[0] if present else wanted[0]}"
        location = parse_run_path(sample, sample.name)
    version = location.nnunet_version if location is not None else None
    rows: dict[str, FoldValidation] = {}
    for fold in fold_ids:
        run_dir = model_dir / f"fold_{fold}"
        if fold not in present:
            rows[fold] = FoldValidation(fold, FoldState.MISSING, None)
            continue
        validation = read_run_validation(run_dir, nnunet_version=version)
        rows[fold] = FoldValidation(fold, _STATE_OF[validation.status], validation)
    keys: list[str] = []
    for row in rows.values():
        if row.summary is not None:
            keys += [k for k in row.summary.keys if k not in keys]
    labels = label_names(model_dir)
    used = [r.summary for r in rows.values() if r.in_mean and r.summary is not None]
    pooled_fg, pooled_classes = pooled_dice(used, keys)
    per_class = tuple(_stats(key, labels.get(key, f"class {key}"), [s.class_dice(key) for s in used], pooled)
                      for key, pooled in zip(keys, pooled_classes))
    foreground = _stats("foreground", "foreground mean", [s.foreground_dice for s in used], pooled_fg)
    return CrossValidation(
        model_dir=model_dir,
        dataset=location.dataset if location is not None else model_dir.parent.name,
        trainer=location.trainer if location is not None else model_dir.name,
        plans=location.plans if location is not None else "",
        configuration=location.configuration if location is not None else "",
        keys=tuple(keys), labels=labels, folds=tuple(rows.values()), foreground=foreground, per_class=per_class,
        nnunet=tuple(_nnunet_crossval(model_dir, rows, keys)))


def crossval_tables(locations: Iterable[RunLocation]) -> list[CrossValidation]:
    """One table per model folder among ``locations`` (runs found by a scan), sorted by dataset and name."""
    models: dict[Path, RunLocation] = {}
    for location in locations:
        models.setdefault(location.path.parent, location)
    tables = [crossval_table(path, location=location) for path, location in models.items()]
    return sorted(tables, key=lambda t: (t.dataset, t.configuration, t.trainer, t.plans))
