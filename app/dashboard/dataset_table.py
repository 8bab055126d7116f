"""The Datasets page's side-by-side table: every trainer × plans × configuration of one dataset in one row.

Which one wins? The real cross-validation Dice (mean ± SD over validated folds, and per class), what it cost
(epochs, median epoch time, GPU-hours spent, from the runs' own epoch times), the analyzer's verdicts, and the
case-by-case verdict of each row against the row with the highest cross-validation Dice on the folds both have.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from app.dashboard.store import RunStore
from app.dashboard.tables import VERDICT_LABELS, fmt_duration, model_key
from app.dashboard.validation_ui import comparison, cv_table
from monitor.analyze import signed, spread
from monitor.validation import CrossValidation, PairedVerdict

__all__ = ["ModelRow", "dataset_models", "only_differing", "side_by_side"]

_IDENTITY = ("Root", "Trainer", "Plans", "Config")


@dataclass(frozen=True)
class ModelRow:
    """One model folder of a dataset and its runs; ``root``: the label of its results root where several are
    served, "" with one."""

    model_dir: str
    run_ids: tuple[str, ...]
    table: CrossValidation
    root: str = ""

    @property
    def key(self) -> str:
        """The page's ``model`` URL parameter: the folder's name, after its root's label where there are several."""
        return model_key(self.root, self.table.model_dir.name)


def dataset_models(store: RunStore, dataset: str) -> list[ModelRow]:
    """The model folders of ``dataset`` in the store, each with its cross-validation table."""
    grouped: dict[str, list[str]] = {}
    roots: dict[str, str] = {}
    for run_id in store.run_ids():
        location = store.location(run_id)
        if location is not None and location.dataset == dataset:
            grouped.setdefault(str(location.path.parent), []).append(run_id)
            roots[str(location.path.parent)] = store.label_of(run_id)
    rows = [ModelRow(model_dir, tuple(ids), cv_table(model_dir, store.version), roots[model_dir])
            for model_dir, ids in grouped.items()]
    return sorted(rows, key=lambda r: (r.table.configuration, r.table.trainer, r.table.plans, r.root))


def _cost(store: RunStore, run_ids: tuple[str, ...]) -> dict[str, Any]:
    planned, done, medians, seconds = set(), [], [], 0.0
    verdicts: Counter[str] = Counter()
    for run_id in run_ids:
        summary, frame, analysis = store.summary(run_id), store.frame(run_id), store.analysis(run_id)
        if summary is None:
            continue
        planned.add(summary.planned_epochs)
        done.append(summary.epochs_completed)
        if summary.median_epoch_time_s is not None:
            medians.append(summary.median_epoch_time_s)
        if frame is not None and "epoch_time_s" in frame:
            seconds += float(pd.to_numeric(frame["epoch_time_s"], errors="coerce").sum())
        if analysis is not None:
            verdicts[analysis.verdict.value] += 1
    median = float(pd.Series(medians).median()) if medians else None
    return {
        "Epochs": " / ".join(str(p) for p in sorted(planned, key=lambda p: p or 0)) if planned else "–",
        "Epochs done (median)": int(pd.Series(done).median()) if done else None,
        "Median epoch time": fmt_duration(median) if median and median >= 60 else
        (f"{median:.0f} s" if median else "–"),
        "GPU-hours": round(seconds / 3600.0, 1),
        "Verdicts": ", ".join(f"{n} {VERDICT_LABELS.get(v, v).split(' ', 1)[-1]}" for v, n in verdicts.items()),
    }


def _versus(store: RunStore, leader: ModelRow | None, row: ModelRow) -> str:
    if leader is None:
        return "–"
    if row is leader:
        return "highest CV Dice"
    try:
        result = comparison(leader.model_dir, row.model_dir, True, store.version)
    except ValueError:
        return "no shared fold"
    if result.verdict is PairedVerdict.UNAVAILABLE:
        return "no shared validated cases"
    r = result.result
    word = {PairedVerdict.BETTER: "better", PairedVerdict.WORSE: "worse"}.get(r.verdict, "no difference")
    ci = "" if r.ci95 is None else f", CI {signed(r.ci95[0])} to {signed(r.ci95[1])}"
    return f"{signed(r.mean_difference)} ({word}{ci}, {r.cases} cases)"


def side_by_side(store: RunStore, models: list[ModelRow]) -> pd.DataFrame:
    """One row per model folder: identity, real CV Dice, per-class means, cost, verdicts, case-by-case vs leader."""
    validated = [m for m in models if m.table.foreground.folds and math.isfinite(m.table.foreground.mean)]
    leader = max(validated, key=lambda m: m.table.foreground.mean) if validated else None
    rows = []
    for model in models:
        t = model.table
        fg = t.foreground
        row: dict[str, Any] = {
            **({"Root": model.root} if any(m.root for m in models) else {}),
            "Trainer": t.trainer, "Plans": t.plans, "Config": t.configuration,
            "Folds validated": f"{len(t.validated)} of {len(t.folds)}",
            "CV Dice (mean ± SD)": spread(fg.mean, fg.sd, fg.folds),
            "Pooled Dice": "–" if not fg.folds else f"{fg.pooled:.4f}",
        }
        for stat in t.per_class:
            row[f"{stat.name} (mean)"] = "–" if not stat.folds else f"{stat.mean:.4f}"
        row.update(_cost(store, model.run_ids))
        row["Case by case vs highest"] = _versus(store, leader, model)
        row["model"] = model.key
        rows.append(row)
    return pd.DataFrame(rows)


def only_differing(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns whose values differ between rows; of the trainer, plans and configuration, those that tell the
    rows apart."""
    if len(frame) < 2:
        return frame
    keep = [c for c in frame.columns if c == "model" or frame[c].astype(str).nunique() > 1]
    if not any(c in _IDENTITY for c in keep):
        keep = [*(c for c in _IDENTITY if c in frame.columns), *keep]
    return frame[keep]
