"""Synthetic nnU-Net-like per-epoch frames with a known trend, for the analyzer's tests (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from monitor.analyze.analyzer import Analysis, analyze


def make_run(
    n: int = 1000,
    planned: int = 1000,
    *,
    slope: float = 0.0,
    late_slope: float | None = None,
    anneal_gain: float = 0.0,
    noise: float = 0.01,
    phi: float = 0.3,
    seed: int = 0,
    epoch_seconds: float = 120.0,
) -> pd.DataFrame:
    """A per-epoch frame like ``monitor.load_run`` returns, with a known underlying trend.

    ``slope`` is Dice per 100 epochs after the initial rise; ``late_slope`` replaces it from the start
    of annealing on; ``anneal_gain`` adds nnU-Net's end-of-schedule rise, tied to the poly lr.
    """
    rng = np.random.default_rng(seed)
    e = np.arange(n, dtype=float)
    lr = 0.01 * (1 - e / planned) ** 0.9
    trend = 0.8 - 0.3 * np.exp(-e / 20) + slope / 100 * e
    if late_slope is not None:
        start = planned * (1 - 0.2 ** (1 / 0.9))
        trend += (late_slope - slope) / 100 * np.clip(e - start, 0, None)
    trend += anneal_gain * np.clip(1 - lr / 0.003, 0, 1) ** 2
    innov = rng.normal(0, noise * math.sqrt(1 - phi**2), n)
    ar = np.empty(n)
    ar[0] = rng.normal(0, noise)
    for t in range(1, n):
        ar[t] = phi * ar[t - 1] + innov[t]
    dice = np.round(np.clip(trend + ar, 0, 1), 4)
    ema = pd.Series(dice).ewm(alpha=0.1, adjust=False).mean().to_numpy()
    seconds = epoch_seconds * (1 + 0.05 * rng.standard_normal(n))
    return pd.DataFrame({
        "epoch": np.arange(n), "lr": np.round(lr, 5), "train_loss": -dice, "val_loss": -dice * 0.95,
        "mean_fg_dice": dice, "ema_fg_dice": ema, "dice_1": dice, "epoch_time_s": seconds,
        "epoch_end": pd.Timestamp("2025-01-01") + pd.to_timedelta(np.cumsum(seconds), unit="s"),
    })


def finished(frame: pd.DataFrame, **kw: object) -> Analysis:
    return analyze(frame, planned_epochs=kw.pop("planned", 1000), finished=True, **kw)  # type: ignore[arg-type]
