"""What the Compare page shows, as plain pandas: fold bands and the fold table.

How an extended run stands against its parent is not decided here: :func:`monitor.analyze.compare_extension`
is the one rule, which the banner, the compare PNG and the JSON all state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from monitor.analyze import mean_sd

__all__ = ["FoldRow", "fold_band", "fold_table", "with_fraction"]


def fold_band(frames: Mapping[str, pd.DataFrame], column: str = "ema_fg_dice", min_folds: int = 2) -> pd.DataFrame:
    """Per-epoch mean, standard deviation, min, max and count of ``column`` across folds.

    Epochs are aligned by number (folds of one configuration share the schedule). Only epochs that at
    least ``min_folds`` folds reached are kept: a "mean" of one fold is no mean, and drawing it would
    make a crashed or still-running fold look like a jump of the configuration. ``n`` says how many
    folds each epoch rests on.
    """
    series = {fold: frame.set_index("epoch")[column] for fold, frame in frames.items()
              if len(frame) and column in frame.columns}
    if not series:
        return pd.DataFrame(columns=["epoch", "mean", "std", "min", "max", "n"])
    wide = pd.DataFrame(series).sort_index()
    out = pd.DataFrame({
        "epoch": wide.index.to_numpy(),
        "mean": wide.mean(axis=1, skipna=True).to_numpy(),
        "std": wide.std(axis=1, ddof=1, skipna=True).to_numpy(),  # sample SD, as the dataset PNG's band
        "min": wide.min(axis=1, skipna=True).to_numpy(),
        "max": wide.max(axis=1, skipna=True).to_numpy(),
        "n": wide.notna().sum(axis=1).to_numpy(),
    })
    return out[out["n"] >= min(min_folds, len(series))].reset_index(drop=True)


def with_fraction(frame: pd.DataFrame, planned_epochs: int | None) -> pd.DataFrame:
    """The frame with ``fraction`` = (epoch + 1) / planned epochs (NaN when the schedule is unknown)."""
    out = frame.copy()
    out["fraction"] = (out["epoch"] + 1) / planned_epochs if planned_epochs else math.nan
    return out


@dataclass(frozen=True)
class FoldRow:
    """One fold of the Compare page's fold table, as numbers; ``link`` is the run page's URL."""

    fold: str
    status: str
    epochs: str
    last_ema: float | None
    best_ema: float | None
    final_validation_dice: float | None
    verdict: str
    link: str


def _dice(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(float(value)) else f"{float(value):.4f}"


def fold_table(rows: Sequence[FoldRow]) -> pd.DataFrame:
    """The folds with their numbers (4 decimals) and a last row "mean ± SD" over the folds that have each
    value (sample SD, as the dataset PNG prints it); ``Run`` holds each fold's link, empty on the summary row."""
    out = [{"Fold": r.fold, "Run": r.link, "Status": r.status, "Epoch": r.epochs, "Last EMA": _dice(r.last_ema),
            "Best EMA": _dice(r.best_ema), "Final val Dice": _dice(r.final_validation_dice), "Verdict": r.verdict}
           for r in rows]
    if rows:
        out.append({"Fold": "mean ± SD", "Run": "", "Status": "", "Epoch": "",
                    "Last EMA": mean_sd([r.last_ema for r in rows]), "Best EMA": mean_sd([r.best_ema for r in rows]),
                    "Final val Dice": mean_sd([r.final_validation_dice for r in rows]), "Verdict": ""})
    return pd.DataFrame(out, columns=["Fold", "Run", "Status", "Epoch", "Last EMA", "Best EMA", "Final val Dice",
                                      "Verdict"])
