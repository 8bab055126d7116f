"""Was the second run worth it? Two runs of one dataset compared case by case on their real validation.

The second run is compared with the first (a parent and its longer-schedule extension, or two trainers, plans or
configurations) on the validation cases both scored: per fold, matched by case file name, and over all folds that
both model folders validated, pooled. Cases that only one run scored are left out and counted. Where either run has
no readable ``summary.json`` there is nothing to compare case by case; the result says so (its verdict is
``unavailable``) and the progress-normalised pseudo-Dice curves remain the only comparison.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.numbers import signed
from monitor.runs.layout import FOLD_DIR_RE, RunLocation, parse_run_path, split_schedule_suffix
from monitor.validation.paired import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MIN_CASES,
    PairedDifference,
    PairedVerdict,
    paired_bootstrap,
)
from monitor.validation.run import RunValidation, ValidationStatus, read_run_validation

__all__ = ["ClassDifference", "FoldDifference", "ValidationComparison", "compare_model_folders", "compare_runs",
           "compare_validations", "labels_for"]


@dataclass(frozen=True)
class ClassDifference:
    key: str
    name: str
    result: PairedDifference


@dataclass(frozen=True)
class FoldDifference:
    """One fold's foreground result and how many cases only one of the two runs scored there."""

    fold: str
    result: PairedDifference
    first_only: int
    second_only: int


@dataclass(frozen=True)
class ValidationComparison:
    """Second minus first on the shared validation cases; ``reason`` is the verdict in plain words."""

    first: str
    second: str
    first_label: str
    second_label: str
    result: PairedDifference  # foreground mean Dice per case, pooled over ``folds``
    per_class: tuple[ClassDifference, ...]
    per_fold: tuple[FoldDifference, ...]
    first_only: int  # cases only the first run scored (left out)
    second_only: int
    unavailable: tuple[str, ...]  # why folds or runs could not be compared (no real validation, …)
    reason: str

    @property
    def verdict(self) -> PairedVerdict:
        return self.result.verdict

    @property
    def folds(self) -> tuple[str, ...]:
        return tuple(f.fold for f in self.per_fold if f.result.cases)

    @property
    def pseudo_only(self) -> bool:
        """True when no case could be compared because real validation is missing (only pseudo Dice exists)."""
        return self.result.cases == 0 and bool(self.unavailable)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``nnwatch compare``: the contract keys first."""
        def entry(result: PairedDifference) -> dict[str, Any]:
            return {"cases": result.cases, "mean_difference": result.mean_difference,
                    "ci95": list(result.ci95) if result.ci95 is not None else None, "better": result.better,
                    "worse": result.worse, "ties": result.ties, "verdict": result.verdict.value,
                    "mean_first": result.mean_first, "mean_second": result.mean_second}

        return {
            **{k: v for k, v in entry(self.result).items() if k not in ("mean_first", "mean_second")},
            "per_class": {c.name: {"key": c.key, **entry(c.result)} for c in self.per_class},
            "reason": self.reason,
            "first": self.first, "second": self.second,
            "first_label": self.first_label, "second_label": self.second_label,
            "mean_first": self.result.mean_first, "mean_second": self.result.mean_second,
            "folds": list(self.folds),
            "per_fold": [{"fold": f.fold, **entry(f.result), "first_only": f.first_only,
                          "second_only": f.second_only} for f in self.per_fold],
            "cases_first_only": self.first_only, "cases_second_only": self.second_only,
            "pseudo_dice_only": self.pseudo_only, "unavailable": list(self.unavailable),
            "resamples": self.result.resamples, "seed": self.result.seed, "min_cases": MIN_CASES,
        }


def labels_for(first: RunLocation | None, second: RunLocation | None) -> tuple[str, str]:
    """Short names for the two runs in a sentence: ``2000 epochs`` for a schedule variant, else what differs."""
    if first is None or second is None:
        return "the first run", "the second run"
    schedule_b, schedule_a = split_schedule_suffix(second.trainer), split_schedule_suffix(first.trainer)
    base_a = schedule_a[0] if schedule_a else first.trainer
    if schedule_b is not None and schedule_b[0] == base_a:
        return (f"{schedule_a[1]} epochs" if schedule_a else first.trainer), f"{schedule_b[1]} epochs"
    for attribute in ("trainer", "plans", "configuration"):
        a, b = getattr(first, attribute), getattr(second, attribute)
        if a != b:
            return a, b
    return first.run_id, second.run_id


def _align(first: RunValidation, second: RunValidation) -> tuple[list[str], np.ndarray, np.ndarray, int, int]:
    """Shared case names and the (cases × classes) Dice of each run on them, classes in the first run's order."""
    assert first.summary is not None and second.summary is not None
    names_a, dice_a = first.summary.case_table()
    names_b, _ = second.summary.case_table()
    keys = first.summary.keys
    index_b = {name: i for i, name in enumerate(names_b)}
    shared = [name for name in names_a if name in index_b]
    rows_a = [names_a.index(name) for name in shared]
    cases_b = second.summary.cases
    b = np.array([[cases_b[index_b[name]].dice(key) for key in keys] for name in shared], dtype=float)
    a = dice_a[rows_a] if rows_a else np.empty((0, len(keys)))
    return shared, a, b.reshape(len(shared), len(keys)), len(names_a) - len(shared), len(names_b) - len(shared)


def _foreground(values: np.ndarray) -> np.ndarray:
    """Per case, the mean over the classes with a Dice (NaN when none)."""
    if values.size == 0:
        return np.empty(len(values))
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _why(validation: RunValidation) -> str:
    if validation.status is ValidationStatus.UNREADABLE:
        return f"its summary.json is unreadable: {validation.error}"
    return "no validation/summary.json yet"


def _sentence(result: PairedDifference, folds: int, first_label: str, second_label: str, left_out: int) -> str:
    if result.cases == 0:
        return f"{second_label} vs {first_label}: no validation case scored by both runs, so nothing to compare."
    assert result.ci95 is not None
    low, high = result.ci95
    head = (f"{second_label}: {signed(result.mean_difference)} Dice, 95 % CI {signed(low)} to {signed(high)} over "
            f"{result.cases} case{'s' if result.cases != 1 else ''} in {folds} fold{'s' if folds != 1 else ''}")
    if result.cases < MIN_CASES:
        tail = f"too few cases to tell (at least {MIN_CASES} are needed)"
    elif result.verdict is PairedVerdict.BETTER:
        tail = f"better than {first_label}"
    elif result.verdict is PairedVerdict.WORSE:
        tail = f"worse than {first_label}"
    else:
        tail = "not distinguishable from no change"
    sentence = f"{head}: {tail}."
    if left_out:
        sentence += f" {left_out} case{'s' if left_out != 1 else ''} scored by only one run left out."
    return sentence


def compare_validations(pairs: Sequence[tuple[str, RunValidation, RunValidation]], *, first: str, second: str,
                        first_label: str = "the first run", second_label: str = "the second run",
                        resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> ValidationComparison:
    """Compare ``(fold, first, second)`` validations fold by fold and pooled over the folds."""
    unavailable: list[str] = []
    notes: list[str] = []
    per_fold: list[FoldDifference] = []
    keys: tuple[str, ...] = ()
    a_rows: list[np.ndarray] = []
    b_rows: list[np.ndarray] = []
    folds: list[str] = []
    first_only = second_only = 0
    for fold, a, b in pairs:
        missing = [(label, v) for label, v in ((first_label, a), (second_label, b)) if v.summary is None]
        if missing:
            unavailable += [f"fold {fold}: only pseudo Dice for {label} ({_why(v)})" for label, v in missing]
            continue
        notes += [f"fold {fold}: the validation of {label} is older than its final checkpoint"
                  for label, v in ((first_label, a), (second_label, b)) if v.status is ValidationStatus.STALE]
        assert a.summary is not None
        shared, dice_a, dice_b, only_a, only_b = _align(a, b)
        first_only += only_a
        second_only += only_b
        per_fold.append(FoldDifference(fold, paired_bootstrap(_foreground(dice_a), _foreground(dice_b),
                                                              resamples=resamples, seed=seed), only_a, only_b))
        if shared:
            keys = keys or a.summary.keys
            a_rows.append(dice_a)
            b_rows.append(dice_b)
            folds += [fold] * len(shared)
    width = len(keys)
    all_a = np.vstack([r[:, :width] for r in a_rows]) if a_rows else np.empty((0, width))
    all_b = np.vstack([r[:, :width] for r in b_rows]) if b_rows else np.empty((0, width))
    result = paired_bootstrap(_foreground(all_a), _foreground(all_b), groups=folds or None, resamples=resamples,
                              seed=seed)
    label_of = next((v.label for _, v, _ in pairs if v.summary is not None), None)
    per_class = tuple(
        ClassDifference(key, label_of(key) if label_of else f"class {key}",
                        paired_bootstrap(all_a[:, k], all_b[:, k], groups=folds or None, resamples=resamples,
                                         seed=seed))
        for k, key in enumerate(keys))
    n_folds = len({f for f in folds})
    reason = _sentence(result, n_folds, first_label, second_label, first_only + second_only)
    if result.cases == 0 and unavailable:
        reason = (f"Only pseudo Dice to compare: {'; '.join(unavailable)}. Real validation (nnU-Net's "
                  "validation/summary.json) is needed for a case-by-case comparison; compare the progress-normalised "
                  "pseudo-Dice curves instead.")
    elif unavailable:
        reason += " Not compared: " + "; ".join(unavailable) + "."
    if notes:
        reason += " Note: " + "; ".join(notes) + "."
    return ValidationComparison(first=first, second=second, first_label=first_label, second_label=second_label,
                                result=result, per_class=per_class, per_fold=tuple(per_fold), first_only=first_only,
                                second_only=second_only, unavailable=tuple(unavailable), reason=reason)


def _location(run_dir: Path) -> RunLocation | None:
    return parse_run_path(run_dir.absolute(), "/".join(run_dir.absolute().parts[-3:]))


def compare_runs(first_dir: str | os.PathLike[str], second_dir: str | os.PathLike[str], *,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> ValidationComparison:
    """Compare two fold folders. :class:`ValueError` when they belong to different datasets."""
    first_path, second_path = Path(first_dir), Path(second_dir)
    for path in (first_path, second_path):
        if not path.is_dir():
            raise FileNotFoundError(f"run folder not found: {path}")
    loc_a, loc_b = _location(first_path), _location(second_path)
    if loc_a is not None and loc_b is not None and loc_a.dataset != loc_b.dataset:
        raise ValueError(f"the two runs belong to different datasets ({loc_a.dataset}, {loc_b.dataset}): "
                         "they share no validation case")
    label_a, label_b = labels_for(loc_a, loc_b)
    a = read_run_validation(first_path, nnunet_version=loc_a.nnunet_version if loc_a else None)
    b = read_run_validation(second_path, nnunet_version=loc_b.nnunet_version if loc_b else None)
    fold = loc_b.fold if loc_b is not None else second_path.name
    comparison = compare_validations([(fold, a, b)], first=str(first_path), second=str(second_path),
                                     first_label=label_a, second_label=label_b, resamples=resamples, seed=seed)
    if loc_a is not None and loc_b is not None and loc_a.fold != loc_b.fold and comparison.result.cases == 0:
        return _with_reason(comparison, f"fold {loc_a.fold} and fold {loc_b.fold} validate different cases: "
                                        "compare the same fold of two runs, or two model folders with --folds.")
    return comparison


def _with_reason(comparison: ValidationComparison, extra: str) -> ValidationComparison:
    from dataclasses import replace

    return replace(comparison, reason=f"{comparison.reason} {extra}")


def _folds_of(model_dir: Path) -> dict[str, Path]:
    try:
        return {e.name[5:]: Path(e.path) for e in os.scandir(model_dir)
                if e.is_dir() and FOLD_DIR_RE.match(e.name) and e.name != "fold_all"}
    except OSError:
        return {}


def compare_model_folders(first_dir: str | os.PathLike[str], second_dir: str | os.PathLike[str], *,
                          resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> ValidationComparison:
    """Compare two model folders (``<Trainer>__<Plans>__<configuration>``) over every fold both contain."""
    first_path, second_path = Path(first_dir), Path(second_dir)
    for path in (first_path, second_path):
        if not path.is_dir():
            raise FileNotFoundError(f"model folder not found: {path}")
    folds_a, folds_b = _folds_of(first_path), _folds_of(second_path)
    shared = sorted(set(folds_a) & set(folds_b), key=lambda f: (len(f), f))
    if not shared:
        raise ValueError(f"no fold_N folder in both {first_path.name} and {second_path.name}")
    loc_a, loc_b = _location(folds_a[shared[0]]), _location(folds_b[shared[0]])
    if loc_a is not None and loc_b is not None and loc_a.dataset != loc_b.dataset:
        raise ValueError(f"the two model folders belong to different datasets ({loc_a.dataset}, {loc_b.dataset})")
    label_a, label_b = labels_for(loc_a, loc_b)
    version_a = loc_a.nnunet_version if loc_a else None
    version_b = loc_b.nnunet_version if loc_b else None
    pairs = [(fold, read_run_validation(folds_a[fold], nnunet_version=version_a),
              read_run_validation(folds_b[fold], nnunet_version=version_b)) for fold in shared]
    comparison = compare_validations(pairs, first=str(first_path), second=str(second_path), first_label=label_a,
                                     second_label=label_b, resamples=resamples, seed=seed)
    alone = sorted(set(folds_a) ^ set(folds_b), key=lambda f: (len(f), f))
    if alone:
        comparison = _with_reason(comparison, f"Fold(s) {', '.join(alone)} exist in only one of the two folders.")
    return comparison

