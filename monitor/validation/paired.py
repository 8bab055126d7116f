"""Paired comparison of two runs scored on the same cases: the mean difference with a paired bootstrap interval.

Each case contributes one difference (second minus first). The interval is the percentile interval of the mean
difference over resamples of the cases with replacement (numpy's seeded generator, so a result is reproducible).
Over several folds the cases of all folds are pooled (cross-validation folds hold disjoint cases) and resampled
within their fold, so every resample keeps each fold's number of cases. A verdict is ``better`` or ``worse`` only
when the interval excludes 0 and rests on at least :data:`MIN_CASES` cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

__all__ = ["DEFAULT_RESAMPLES", "DEFAULT_SEED", "MIN_CASES", "PairedDifference", "PairedVerdict", "paired_bootstrap"]

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
MIN_CASES = 5
_CHUNK_VALUES = 2_000_000  # resampled indices drawn at once: bounds memory for large validation sets


class PairedVerdict(str, Enum):
    """Whether the second run scores higher than the first on the shared cases."""

    BETTER = "better"
    WORSE = "worse"
    NO_DIFFERENCE = "no_difference"
    UNAVAILABLE = "unavailable"  # no shared case with a real validation score

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PairedDifference:
    """The paired result on ``cases`` shared cases; ``ci95`` is None when there is no case."""

    cases: int
    mean_first: float
    mean_second: float
    mean_difference: float  # second minus first
    ci95: tuple[float, float] | None
    better: int  # cases where the second run scores higher
    worse: int
    ties: int
    verdict: PairedVerdict
    resamples: int
    seed: int
    confidence: float = 0.95


def _verdict(cases: int, ci: tuple[float, float] | None) -> PairedVerdict:
    if cases == 0 or ci is None:
        return PairedVerdict.UNAVAILABLE
    if cases < MIN_CASES:
        return PairedVerdict.NO_DIFFERENCE
    if ci[0] > 0:
        return PairedVerdict.BETTER
    if ci[1] < 0:
        return PairedVerdict.WORSE
    return PairedVerdict.NO_DIFFERENCE


def _bootstrap_means(diff: np.ndarray, groups: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of ``resamples`` resamples of ``diff``, each drawn with replacement within its group."""
    rng = np.random.default_rng(seed)
    n = len(diff)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    means = np.empty(resamples)
    step = max(1, _CHUNK_VALUES // max(n, 1))
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        total = np.zeros(count)
        for index in members:
            picks = rng.integers(0, len(index), size=(count, len(index)))
            total += diff[index][picks].sum(axis=1)
        means[start:start + count] = total / n
    return means


def paired_bootstrap(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray, *,
                     groups: Sequence[object] | np.ndarray | None = None, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED, confidence: float = 0.95) -> PairedDifference:
    """Compare two aligned arrays of per-case scores; pairs where either value is NaN are left out.

    ``groups`` (one label per case, e.g. the fold) makes the resampling stratified: each resample draws each
    group's cases from that group only.
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    a = np.asarray(first, dtype=float)
    b = np.asarray(second, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two 1-D arrays of equal length expected, got {a.shape} and {b.shape}")
    labels = np.zeros(len(a), dtype=int) if groups is None else np.unique(np.asarray(groups, dtype=object).astype(str),
                                                                           return_inverse=True)[1]
    if len(labels) != len(a):
        raise ValueError("one group label per case expected")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b, labels = a[keep], b[keep], labels[keep]
    n = len(a)
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, None, 0, 0, 0, PairedVerdict.UNAVAILABLE,
                                resamples, seed, confidence)
    diff = b - a
    means = _bootstrap_means(diff, labels, resamples, seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    ci = (float(low), float(high))
    return PairedDifference(
        cases=n, mean_first=float(a.mean()), mean_second=float(b.mean()), mean_difference=float(diff.mean()),
        ci95=ci, better=int((diff > 0).sum()), worse=int((diff < 0).sum()), ties=int((diff == 0).sum()),
        verdict=_verdict(n, ci), resamples=resamples, seed=seed, confidence=confidence)
