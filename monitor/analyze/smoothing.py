"""The smoothing of noisy per-epoch curves for display, one rule for the dashboard's charts and the PNG reports.

A centred moving average: each epoch shows the mean of the ``window`` epochs around it, so the smoothed
curve does not lag the raw one (a trailing mean or an exponential average shifts a rising curve to the
right and understates where it ends). At the ends the window shrinks to the epochs that exist. NaN epochs
are skipped inside a window and stay NaN, so a class that was never measured is not invented. The
analyzer itself never smooths: its verdict is fitted to the raw curve.
"""

from __future__ import annotations

import numpy as np

__all__ = ["smooth"]


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """``values`` averaged over a centred window of ``window`` epochs; 0 or 1 returns them unchanged.

    The window of epoch ``i`` is ``i - window // 2`` to ``i + (window - 1) // 2``, cut at the ends; running sums
    of the finite values and of their count make it one pass without pandas (a JSON scan never imports pandas).
    """
    values = np.asarray(values, dtype=float)
    if window <= 1 or not len(values):
        return values
    finite = np.isfinite(values)
    sums = np.concatenate(([0.0], np.cumsum(np.where(finite, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(finite)))
    index = np.arange(len(values))
    start = np.maximum(index - window // 2, 0)
    stop = np.minimum(index + (window - 1) // 2 + 1, len(values))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sums[stop] - sums[start]) / (counts[stop] - counts[start])
    out[~finite] = np.nan
    return out
