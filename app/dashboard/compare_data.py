"""What the Compare page plots, as plain pandas: fold bands and where an extension stands against its parent.

Comparing a parent run with its extension only makes sense at the same *fraction of schedule*: nnU-Net's
poly learning rate is a function of epoch/N, so epoch 700 of 2000 is at a much higher learning rate than
epoch 700 of 1000 and its Dice is expected to be lower. "Ahead" therefore means: at the fraction the
extended run has reached, its EMA pseudo Dice is above the parent's EMA at that same fraction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Standing", "fold_band", "standing", "with_fraction"]


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
        "std": wide.std(axis=1, ddof=0, skipna=True).to_numpy(),
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
class Standing:
    """Where an extended run stands against its parent at the same fraction of schedule."""

    fraction: float
    child_value: float
    parent_value: float

    @property
    def delta(self) -> float:
        return self.child_value - self.parent_value

    @property
    def ahead(self) -> bool:
        return self.delta > 0

    def sentence(self, column_label: str = "EMA pseudo Dice") -> str:
        where = "ahead of" if self.ahead else "behind"
        return (f"At {self.fraction:.0%} of its schedule the extended run is **{where}** its parent by "
                f"{abs(self.delta):.4f} {column_label} ({self.child_value:.4f} vs {self.parent_value:.4f} at the "
                "same fraction of schedule).")


def standing(parent: pd.DataFrame, parent_planned: int | None, child: pd.DataFrame, child_planned: int | None,
             column: str = "ema_fg_dice") -> Standing | None:
    """The comparison at the child's latest epoch; None when either schedule or value is unknown."""
    if not parent_planned or not child_planned or parent.empty or child.empty:
        return None
    p = with_fraction(parent, parent_planned).dropna(subset=[column])
    c = with_fraction(child, child_planned).dropna(subset=[column])
    if p.empty or c.empty:
        return None
    fraction = float(c["fraction"].iloc[-1])
    if fraction < float(p["fraction"].iloc[0]) or fraction > float(p["fraction"].iloc[-1]):
        return None  # the parent never reached this fraction (it crashed earlier): nothing to compare
    parent_value = float(np.interp(fraction, p["fraction"].to_numpy(), p[column].to_numpy()))
    return Standing(fraction=fraction, child_value=float(c[column].iloc[-1]), parent_value=parent_value)
