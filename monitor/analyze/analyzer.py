"""Is a run's validation pseudo Dice still improving at the end, and would a longer schedule be worth it?

A wrong "improving" wastes days of GPU time, a wrong "plateau" leaves Dice on the table, so a trend
counts only if its interval excludes 0 *and* it is at least ``min_practical_gain`` Dice per 10 % of the
planned schedule (a 2000-epoch curve is a stretched 1000-epoch one; per 100 epochs when the length is unknown).
The fitted series is the raw per-epoch ``mean_fg_dice``, not nnU-Net's EMA, which lags and whose
residuals are autocorrelated by construction. The statistics are in :mod:`monitor.analyze.stats`, the
learning-rate schedule and projection in :mod:`monitor.analyze.schedule`; the method and the evidence
for it in ``docs/analyzer.md``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.analyze.options import AnalyzerOptions
from monitor.analyze.result import Analysis, FitLine, Trend, Verdict, verdict_is_final
from monitor.analyze.schedule import (
    ScheduleOption,
    anneal_start_epoch,
    extra_gain_epochs,
    median_epoch_seconds,
    poly_anneal_fraction,
    poly_schedule,
)
from monitor.analyze.stats import SenFit, saturation_timescale, theil_sen
from monitor.analyze.text import Facts, explain, reason_for

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Analysis", "AnalyzerOptions", "FitLine", "ScheduleOption", "Verdict", "analyze", "analyze_series",
           "frame_column", "mean_dice_series"]


def frame_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A float column as numpy, all-NaN when the frame lacks it (older logs lack lr or epoch times, v1 logs
    an EMA line)."""
    if name in frame.columns:
        values: np.ndarray = frame[name].to_numpy(dtype=float, na_value=np.nan)
        return values
    return np.full(len(frame), np.nan)


def _series(frame: pd.DataFrame, name: str) -> np.ndarray:
    """The fitted series; ``mean_fg_dice`` is rebuilt from ``dice_k`` columns if a parser omitted it."""
    values = frame_column(frame, name)
    if name != "mean_fg_dice":
        return values
    dice_cols = [c for c in frame.columns if str(c).startswith("dice_")]
    per_class = frame[dice_cols].to_numpy(dtype=float, na_value=np.nan) if dice_cols else None
    return mean_dice_series(values, per_class)


def mean_dice_series(mean: np.ndarray, per_class: np.ndarray | None) -> np.ndarray:
    """The mean pseudo Dice, or, where no row has one, the nanmean of the per-class values."""
    if np.isfinite(mean).any() or per_class is None or not per_class.shape[1]:
        return mean
    out = np.full(len(mean), np.nan)
    has = np.isfinite(per_class).any(axis=1)
    out[has] = np.nanmean(per_class[has], axis=1)
    return out


def _classify(fit: SenFit, threshold_per_epoch: float) -> Verdict:
    """Significant (interval excludes 0) *and* practically large (point estimate beyond the threshold)."""
    if fit.lo > 0 and fit.slope >= threshold_per_epoch:
        return Verdict.IMPROVING
    if fit.hi < 0 and fit.slope <= -threshold_per_epoch:
        return Verdict.DECLINING
    return Verdict.PLATEAU


def _trend(fit: SenFit, verdict: Verdict) -> Trend:
    """The verdict in finer words: a plateau whose interval excludes 0 still rises (or falls), slowly."""
    if verdict is Verdict.IMPROVING:
        return Trend.RISING
    if verdict is Verdict.DECLINING:
        return Trend.FALLING
    if fit.lo > 0:
        return Trend.RISING_SLOWLY
    if fit.hi < 0:
        return Trend.FALLING_SLOWLY
    return Trend.FLAT


def practical_gain_per_epoch(min_practical_gain: float, planned_epochs: int | None) -> float:
    """The practical threshold in Dice per epoch: ``min_practical_gain`` per 10 % of the planned schedule,
    or per 100 epochs (10 % of nnU-Net's default 1000) when the schedule length is unknown."""
    span = 0.1 * planned_epochs if planned_epochs and planned_epochs > 0 else 100.0
    return min_practical_gain / span


def hours_unit(device: str | None) -> str:
    """"CPU-hours" for a run trained on the CPU, else "GPU-hours" (nnU-Net's default device is CUDA)."""
    return "CPU-hours" if device is not None and device.strip().lower().startswith("cpu") else "GPU-hours"


def _fit_range(ep: np.ndarray, y: np.ndarray, first: int, last: int, opts: AnalyzerOptions,
               z: float) -> tuple[SenFit | None, int]:
    """Theil–Sen over epochs ``first..last`` if enough of them have a value; also the valid count."""
    sel = (ep >= first) & (ep <= last) & np.isfinite(y)
    count = int(sel.sum())
    span = last - first + 1
    if count < max(opts.min_points, math.ceil((1.0 - opts.max_missing_fraction) * span)):
        return None, count
    x = (ep[sel] - first).astype(float)
    return theil_sen(x, y[sel], z, opts.correct_autocorrelation), count


def analyze(
    frame: pd.DataFrame,
    *,
    planned_epochs: int | None,
    finished: bool,
    running: bool = False,
    options: AnalyzerOptions | None = None,
    device: str | None = None,
) -> Analysis:
    """Verdict, interval, lr-aware projection and cost for one run's per-epoch frame (see module doc)."""
    opts = options or AnalyzerOptions()
    if "epoch" not in frame.columns:  # nothing to place in time: no epochs at all
        frame = frame.iloc[:0].assign(epoch=np.zeros(0, np.int64))
    times = frame_column(frame, "epoch_time_s")
    ends = None
    if "epoch_end" in frame.columns and not (np.isfinite(times) & (times > 0)).any():
        # Only runs without logged epoch times need the stamps (the cost of an epoch), and converting
        # them costs more than the whole fit.
        import pandas as pd

        stamps = pd.to_datetime(frame["epoch_end"], errors="coerce", utc=True)
        ends = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    return analyze_series(frame["epoch"].to_numpy(dtype=np.int64), _series(frame, opts.series),
                          frame_column(frame, "lr"), times, ends,
                          planned_epochs=planned_epochs, finished=finished, running=running, options=opts,
                          device=device)


def analyze_series(
    epochs: np.ndarray,
    values: np.ndarray,
    lr: np.ndarray,
    epoch_time_s: np.ndarray,
    epoch_end: np.ndarray | None,
    *,
    planned_epochs: int | None,
    finished: bool,
    running: bool = False,
    options: AnalyzerOptions | None = None,
    device: str | None = None,
) -> Analysis:
    """:func:`analyze` on bare columns, one entry per epoch: the fitted series (``options.series``),
    learning rate, epoch times and epoch end stamps (``datetime64``, or None). What a scan calls for every
    run: it has the merged curves as arrays and builds no DataFrame."""
    opts = options or AnalyzerOptions()
    z = NormalDist().inv_cdf(0.5 + opts.confidence / 2.0)

    ep, y, times = np.asarray(epochs, dtype=np.int64), np.asarray(values, dtype=float), np.asarray(epoch_time_s, float)
    lr = np.asarray(lr, dtype=float)
    ends = None if epoch_end is None or len(epoch_end) != ep.size else np.asarray(epoch_end)
    if ep.size and np.any(np.diff(ep) <= 0):  # restarts inside a log: keep the last value per epoch
        order = np.argsort(ep, kind="stable")
        last_of_each = np.r_[ep[order][1:] != ep[order][:-1], True]
        keep = order[last_of_each]
        ep, y, lr, times = ep[keep], y[keep], lr[keep], times[keep]
        ends = None if ends is None else ends[keep]
    n_done = int(ep[-1]) + 1 if ep.size else 0

    lr0, lr_planned = poly_schedule(ep, lr, opts.poly_exponent) if ep.size else (None, None)
    planned = planned_epochs if planned_epochs is not None else lr_planned
    status = "finished" if finished else ("running" if running else "stopped")
    schedule_done = verdict_is_final(status, n_done, planned)
    tau = practical_gain_per_epoch(opts.min_practical_gain, planned)

    # No cost before the schedule has ended: what a longer run costs is part of a decision not yet due.
    sec = median_epoch_seconds(times, ends) if schedule_done else None
    hours = {m: (None if sec is None else sec * m / 3600.0) for m in {*opts.schedule_options, 2000}}

    base: dict[str, Any] = {
        "series": opts.series, "min_practical_gain": opts.min_practical_gain, "epochs_completed": n_done,
        "gpu_hours_2000": hours[2000], "planned_epochs": planned, "status": status,
        "min_practical_gain_per_100_epochs": tau * 100.0, "final": schedule_done, "device": device,
        "hours_unit": hours_unit(device),
    }
    no_schedules = tuple(ScheduleOption(m, None, hours[m], False) for m in opts.schedule_options)


    def insufficient(why: str, window: tuple[int, int] | None, count: int) -> Analysis:
        result = Analysis(verdict=Verdict.INSUFFICIENT_DATA, slope_per_100_epochs=None, slope_ci95=None,
                          window=window, projected_gain_2000=None, reason="", schedules=no_schedules, **base)
        return _worded(result, Facts(opts, schedule_done, why=why, count=count))

    if n_done < opts.min_epochs:
        return insufficient("few_epochs", None, int(np.isfinite(y).sum()))
    length = min(opts.window_epochs, n_done // 2)
    # A log resumed mid-run (``--c``) read on its own starts late: fit what it has rather than count the
    # epochs it never contained as missing.
    w0, w1 = max(n_done - length, int(ep[0])), n_done - 1
    fit, count = _fit_range(ep, y, w0, w1, opts, z)
    if fit is None:
        return insufficient("missing", (w0, w1), count)
    verdict = _classify(fit, tau)
    level = float(np.clip(fit.intercept + fit.slope * (w1 - w0), 0.0, 1.0))  # the fitted Dice at the end

    # Annealing phase from the run's own lr; the trend before it is what a longer schedule could extend.
    a_start, a_source = anneal_start_epoch(ep, lr, lr0, planned, opts.anneal_lr_fraction, opts.poly_exponent)
    pre_fit: SenFit | None = fit
    pre_window = (w0, w1)
    if a_start is not None and a_start <= w1:
        p1 = a_start - 1
        p0 = max(int(ep[0]), p1 - length + 1)
        candidate, _ = _fit_range(ep, y, p0, p1, opts, z) if p1 - p0 >= 2 else (None, 0)
        pre_fit, pre_window = candidate, (p0, p1)
    pre_verdict = None if pre_fit is None else _classify(pre_fit, tau)

    schedules, recommended, blocker, gain_2000 = no_schedules, None, None, None
    if schedule_done and verdict is Verdict.DECLINING:  # no projection, a sentence instead (see text.py)
        schedules = tuple(ScheduleOption(m, None, hours[m], False, "the run is declining")
                          for m in opts.schedule_options)
    elif schedule_done and pre_fit is not None:
        schedules, recommended, blocker, gain_2000 = _project(ep, y, n_done, a_start, pre_fit, pre_window,
                                                             pre_verdict, hours, opts, level)

    result = Analysis(
        verdict=verdict,
        slope_per_100_epochs=fit.slope * 100.0,
        slope_ci95=(fit.lo * 100.0, fit.hi * 100.0),
        window=(w0, w1),
        projected_gain_2000=gain_2000,
        reason="",
        schedules=schedules,
        recommended_epochs=recommended,
        fit=FitLine(w0, w1, fit.intercept, fit.slope),
        anneal_start_epoch=a_start,
        pre_anneal_slope_per_100_epochs=None if pre_fit is None else pre_fit.slope * 100.0,
        pre_anneal_ci95=None if pre_fit is None else (pre_fit.lo * 100.0, pre_fit.hi * 100.0),
        trend=_trend(fit, verdict),
        **base,
    )
    return _worded(result, Facts(opts, schedule_done, count=count, fit=fit, anneal_source=a_source, pre_fit=pre_fit,
                                 pre_window=pre_window, pre_verdict=pre_verdict, projection_blocker=blocker))


def _worded(result: Analysis, facts: Facts) -> Analysis:
    """``result`` with its reason and explanation, which read it and the facts behind it."""
    return replace(result, reason=reason_for(result, facts), explanation=explain(result, facts))


def _project(
    ep: np.ndarray,
    y: np.ndarray,
    n_done: int,
    a_start: int | None,
    pre_fit: SenFit,
    pre_window: tuple[int, int],
    pre_verdict: Verdict | None,
    hours: dict[int, float | None],
    opts: AnalyzerOptions,
    level: float,
) -> tuple[tuple[ScheduleOption, ...], int | None, str | None, tuple[float, float] | None]:
    """Projected gain range of each longer from-scratch schedule, the one the evidence supports, why none
    is (``"reach"`` or ``"gain"``), and the 2000-epoch range that :class:`Analysis` always reports.

    The range is ``[min(0, slope_lo·k), max(0, slope_hi·k)]``, ``k`` being what the extra high-lr epochs
    are worth in pre-annealing-slope epochs: 0 is the "stretched curve" outcome of nnU-Net issue #2474.
    It is cut to what Dice can be: from the run's fitted Dice at the end (``level``), no lower than 0 and
    no higher than 1.
    Worth it: the pre-annealing trend is itself "improving", its point projection reaches
    ``min_rerun_gain`` and the extra epochs stay within ``max_extrapolation_ratio``.
    """
    anneal_frac = (a_start / n_done) if a_start is not None and a_start < n_done else (
        poly_anneal_fraction(opts.anneal_lr_fraction, opts.poly_exponent))
    fit_first = max(int(ep[0]), round(0.15 * n_done))
    sel = (ep >= fit_first) & (ep <= pre_window[1]) & np.isfinite(y)
    observed = float(pre_window[1] - fit_first + 1)
    timescale = saturation_timescale(ep[sel].astype(float), y[sel], observed)
    span = pre_window[1] - pre_window[0] + 1
    by_length: dict[int, ScheduleOption] = {}
    central: dict[int, float] = {}
    for m in sorted({*opts.schedule_options, 2000}):
        if m <= n_done:
            by_length[m] = ScheduleOption(m, None, hours[m], False, f"not longer than this run's {n_done} epochs")
            continue
        extra = anneal_frac * (m - n_done)
        k = extra_gain_epochs(timescale, extra, span)
        gain = (max(-level, min(0.0, pre_fit.lo * k)), min(1.0 - level, max(0.0, pre_fit.hi * k)))
        point = min(pre_fit.slope * k, 1.0 - level)
        why_not = None
        if pre_verdict is not Verdict.IMPROVING:
            why_not = ("the trend a longer schedule could extend does not rise by the practical gain "
                       f"({opts.min_practical_gain:g} per 10 % of the schedule)")
        elif point < opts.min_rerun_gain:
            why_not = f"projected gain {point:.3f} is under {opts.min_rerun_gain:g} Dice"
        elif extra > opts.max_extrapolation_ratio * observed:
            why_not = (f"its {extra:.0f} extra pre-annealing epochs extrapolate beyond "
                       f"{opts.max_extrapolation_ratio:g}× the {observed:.0f} epochs the trend was measured on")
        by_length[m] = ScheduleOption(m, gain, hours[m], why_not is None, why_not)
        if m in opts.schedule_options:
            central[m] = point
    options = [by_length[m] for m in sorted(opts.schedule_options)]
    recommended = None
    for option in options:  # cheapest worth-it option; a longer one must add another min_rerun_gain
        if not option.worth_it:
            continue
        if recommended is None or central[option.epochs] - central[recommended] >= opts.min_rerun_gain:
            recommended = option.epochs
    big_enough = any(v >= opts.min_rerun_gain for v in central.values())
    blocker = None if recommended is not None else ("reach" if big_enough else "gain")
    return tuple(options), recommended, blocker, by_length[2000].projected_gain
