"""The smoothing of noisy per-epoch curves for display, one rule for the dashboard's charts and the PNG reports.

A centred moving average: each epoch shows the mean of the ``window`` epochs around it, so the smoothed
curve does not lag the raw one (a trailing mean or an exponential average shifts a rising curve to the
right and understates where it ends). At the ends the window shrinks to the epochs that exist. NaN epochs
are skipped inside a window and stay NaN, so a class that was never measured is not invented. The
analyzer itself never smooths: its verdict is fitted to the raw curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["smooth"]


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """``values`` averaged over a centred window of ``window`` epochs; 0 or 1 returns them unchanged."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or not len(values):
        return values
    out = pd.Series(values).rolling(window, center=True, min_periods=1).mean().to_numpy(copy=True)
    out[~np.isfinite(values)] = np.nan
    return out
