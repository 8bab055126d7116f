"""The analyzer's words: one ``reason`` sentence and a 2–4 sentence ``explanation`` for the dashboard.

Kept apart from the statistics so the wording can be reviewed without touching the maths. Every sentence
states the numbers it rests on, so that whoever decides on days of GPU time can check it against the curve.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.analyze.options import AnalyzerOptions
from monitor.analyze.result import Analysis, Trend, VerdictRow
from monitor.analyze.stats import SenFit
from monitor.numbers import signed

__all__ = ["Facts", "explain", "reason_for", "verdict_label", "verdict_row", "verdict_words"]

PSEUDO_DICE_NOTE = (
    "Pseudo Dice is computed each epoch on a random subset of validation patches, so it is noisy and "
    "differs from the final validation Dice that nnU-Net computes on whole cases after training."
)


@dataclass(frozen=True)
class Facts:
    """What the sentences need beyond the :class:`~monitor.analyze.analyzer.Analysis` they describe."""

    options: AnalyzerOptions
    schedule_done: bool
    why: str | None = None  # "few_epochs" | "missing" for insufficient data
    count: int = 0  # epochs of the window with a value
    fit: SenFit | None = None
    anneal_source: str = "none"
    pre_fit: SenFit | None = None
    pre_window: tuple[int, int] | None = None
    pre_verdict: str | None = None
    projection_blocker: str | None = None  # "reach" | "gain": why no longer schedule is worth it


_VERDICT_WORDS = {"improving": "improving", "plateau": "plateau", "declining": "declining",
                  "insufficient_data": "too early to say"}
_TREND_WORDS = {Trend.RISING_SLOWLY: "rising slowly", Trend.FALLING_SLOWLY: "falling slowly"}


def verdict_words(a: Analysis) -> str:
    """The verdict as a badge says it: ``plateau, rising slowly`` where the interval excludes 0 but the slope
    stays under the practical threshold. The JSON keeps the four verdict values; this only adds words."""
    words = _VERDICT_WORDS.get(str(a.verdict), str(a.verdict))
    slow = _TREND_WORDS.get(a.trend)
    return f"{words}, {slow}" if slow else words


def verdict_label(a: Analysis) -> str:
    """:func:`verdict_words` marked provisional: ``improving (so far)`` on a running run, ``… (where it
    stopped)`` on one that stopped before its schedule ended; final verdicts carry no mark."""
    note = a.provisional_note
    words = verdict_words(a)
    return f"{words} ({note})" if note and str(a.verdict) != "insufficient_data" else words


def verdict_row(a: Analysis, status: str) -> VerdictRow:
    """The verdict columns of a run judged at run status ``status``."""
    return VerdictRow(a.verdict.value, a.reason, verdict_label(a), a.final, str(status))


def _threshold(a: Analysis, tau: float) -> str:
    """"0.005 per 10 % of the schedule", with the per-100-epoch figure where the schedule is not 1000."""
    if not a.planned_epochs:
        return f"{tau:g} per 100 epochs (schedule length unknown)"
    text = f"{tau:g} per 10 % of the schedule"
    per_100 = a.min_practical_gain_per_100_epochs
    if per_100 is not None and a.planned_epochs != 1000:
        text += f" = {per_100:.4f} per 100 epochs of {a.planned_epochs}"
    return text


def _stopped_early(a: Analysis, f: Facts) -> bool:
    """Stopped (crashed, killed, out of wall time) before its schedule's last epoch."""
    return a.status == "stopped" and not f.schedule_done


def _of_planned(a: Analysis) -> str:
    """"497 of 1000", or a note that the schedule length is unknown."""
    if a.planned_epochs:
        return f"{a.epochs_completed} of {a.planned_epochs}"
    return f"{a.epochs_completed} (schedule length unknown)"


def _stats(fit: SenFit, window: tuple[int, int]) -> str:
    return (f"{signed(fit.slope * 100, 4)} per 100 epochs over epochs {window[0]}–{window[1]}, "
            f"95% CI {signed(fit.lo * 100, 4)} to {signed(fit.hi * 100, 4)}")


_RESUME = ("resume it with nnU-Net's --c flag (-c in v1), which continues from the last checkpoint, rather "
           "than starting a longer schedule")


def reason_for(a: Analysis, f: Facts) -> str:
    """One plain sentence: the verdict, the numbers behind it, and what to do."""
    n_done, plural = a.epochs_completed, "" if a.epochs_completed == 1 else "s"
    if f.why is not None:
        if f.why == "few_epochs":
            done = "No epoch has completed" if n_done == 0 else f"Only {n_done} epoch{plural} completed"
            text = f"{done}, fewer than the {f.options.min_epochs} needed to judge the validation pseudo Dice trend"
        else:
            w0, w1 = a.window or (0, 0)
            text = (f"Only {f.count} of the last {w1 - w0 + 1} epochs ({w0}–{w1}) have a validation pseudo "
                    "Dice, too few to fit a trend")
        if a.status == "running" and f.why == "few_epochs":
            text += "; check again later"
        elif _stopped_early(a, f):
            text += f"; the run stopped early, so {_RESUME}"
        return text + "."

    assert f.fit is not None and a.window is not None
    threshold = _threshold(a, f.options.min_practical_gain)
    stats = _stats(f.fit, a.window)
    hidden = f.fit.hi * 100 >= 2 * (a.min_practical_gain_per_100_epochs or f.options.min_practical_gain)
    trend = {
        Trend.RISING: f"still rising ({stats}), more than the practical gain of {threshold}",
        Trend.RISING_SLOWLY: f"still rising slowly, below the practical gain ({stats}; a gain counts from "
                             f"{threshold})",
        Trend.FLAT: f"flat ({stats}): no change of {threshold} or more beyond the noise"
        + (f", though noise this large could hide a rise of up to {signed(f.fit.hi * 100, 4)}" if hidden else ""),
        Trend.FALLING_SLOWLY: f"falling slowly, below the practical threshold ({stats}; a drop counts from "
                              f"{threshold})",
        Trend.FALLING: f"falling ({stats}), a real drop that usually means overfitting",
    }.get(a.trend, f"flat ({stats})")
    if a.status == "running":
        return f"So far (epoch {_of_planned(a)}, still running) the validation pseudo Dice is {trend}."
    if _stopped_early(a, f):
        return (f"Where the run stopped (after epoch {_of_planned(a)}) the validation pseudo Dice is {trend}; "
                f"{_RESUME}.")
    head = f"At the end of the run the validation pseudo Dice is {trend}"
    if a.status == "stopped":
        head = f"All {n_done} planned epochs ran (the run did not end normally); the pseudo Dice is {trend}"
    return f"{head}; {_advice(a, f)}."


def _advice(a: Analysis, f: Facts) -> str:
    """The second half of a finished run's reason: what the schedule implies for a longer run."""
    rec = next((s for s in a.schedules if s.epochs == a.recommended_epochs), None)
    if rec is not None and rec.projected_gain is not None and f.pre_fit is not None:
        lo, hi = rec.projected_gain
        cost = "" if rec.gpu_hours is None else f" for about {rec.gpu_hours:.0f} {a.hours_unit}"
        before = "before the learning rate annealed " if a.anneal_start_epoch is not None else ""
        lead = "" if a.verdict == "improving" else "but "
        return (f"{lead}{before}it was already rising {signed(f.pre_fit.slope * 100, 4)} per 100 epochs, enough "
                f"to try a {rec.epochs}-epoch run from scratch, projected (an extrapolation) to end {signed(lo)} to "
                f"{signed(hi)} Dice from here{cost}")
    annealing_in_window = (a.anneal_start_epoch is not None and a.window is not None
                           and a.anneal_start_epoch <= a.window[1])
    if a.verdict == "improving" and annealing_in_window and f.pre_verdict != "improving":
        return ("the rise comes from the final low-learning-rate phase, which a longer schedule also "
                "ends with, and the curve was flat before it, so more epochs are unlikely to end higher")
    if a.verdict == "declining":
        return ("so a longer schedule would not help and none is projected: use nnU-Net's checkpoint_best "
                "(chosen by EMA pseudo Dice, it "
                "holds the better weights), or train a shorter schedule")
    if not any(s.projected_gain is not None for s in a.schedules):
        return "the schedule was already as long as the options considered, so no longer run is projected"
    if f.pre_verdict == "improving" and f.projection_blocker == "reach":
        return ("the trend before annealing was still rising, but every longer option would extrapolate it "
                "far beyond the part of this run it was measured on, so none is recommended")
    if f.pre_verdict == "improving":
        return (f"the trend before annealing was still rising but its projected gain stays below "
                f"{f.options.min_rerun_gain:g} Dice, and a longer schedule mostly stretches the same curve, so a "
                "re-run is not worth it")
    if a.verdict == "improving":
        return (f"but the trend a longer schedule could extend does not promise {f.options.min_rerun_gain:g} Dice, "
                "so a re-run is not worth it")
    return "a longer schedule is unlikely to end higher"


def explain(a: Analysis, f: Facts) -> str:
    """Two to four sentences for the dashboard: method, pseudo-Dice caveat, schedule, projection/cost."""
    cost = ""
    if a.gpu_hours_2000 is not None:
        cost = f" about {a.gpu_hours_2000:.0f} {a.hours_unit} at this run's median epoch time"
    if f.why is not None:
        first = ("The trend is judged from a robust line through the per-epoch validation pseudo Dice over "
                 f"the last {f.options.window_epochs} epochs (or the last half of a shorter run), which needs at "
                 f"least {f.options.min_epochs} epochs and at most half of the window missing.")
        last = f" A 2000-epoch run from scratch would cost{cost}." if cost and f.schedule_done else ""
        return f"{first} {PSEUDO_DICE_NOTE}{last}"

    assert f.fit is not None and a.window is not None
    if f.fit.variance_inflation > 1.05:
        widened = (f"widens its 95% interval for the correlation between consecutive epochs (lag-1 "
                   f"{f.fit.lag1_autocorrelation:.2f}, {f.fit.variance_inflation:.1f}x the variance)")
    else:
        widened = "found no correlation between consecutive epochs that would widen its 95% interval"
    sentences = [
        f"The verdict fits a robust Theil–Sen line to the per-epoch validation pseudo Dice ({f.options.series}, mean "
        f"over foreground classes) over epochs {a.window[0]}–{a.window[1]}, {widened}, and counts slopes "
        f"under {_threshold(a, f.options.min_practical_gain)} as a plateau (still rising or falling slowly where "
        "the interval excludes 0).",
        PSEUDO_DICE_NOTE,
    ]
    frac = f"{f.options.anneal_lr_fraction:.0%}"
    if a.anneal_start_epoch is not None and a.anneal_start_epoch <= a.window[1]:
        source = "per the logged lr" if f.anneal_source == "lr" else "per nnU-Net's poly schedule"
        fell = f"The learning rate fell below {frac} of its start at epoch {a.anneal_start_epoch} ({source})"
        if f.pre_fit is not None and f.pre_window is not None:
            sentences.append(f"{fell}; before that the curve moved {_stats(f.pre_fit, f.pre_window)}, and only that "
                             "trend, not the late annealing rise that every schedule ends with, could be extended "
                             "by more epochs.")
        else:
            sentences.append(f"{fell}, but too few epochs before it have a value to judge the trend there.")
    elif f.anneal_source != "none" and not f.schedule_done:
        sentences.append(f"The run has not reached the low-learning-rate phase (lr below {frac} of its "
                         "start) where nnU-Net curves usually rise once more.")
    if f.schedule_done and a.verdict == "declining":
        sentences.append("No longer schedule is projected for a declining run: its best weights are behind it "
                         "(checkpoint_best), and a shorter schedule would end nearer them.")
    elif f.schedule_done and a.projected_gain_2000 is not None:
        lo, hi = a.projected_gain_2000
        sentences.append(
            f"As an extrapolation, a from-scratch 2000-epoch run might end {signed(lo)} to {signed(hi)} Dice "
            f"relative to this one, for{cost or ' an unknown number of ' + a.hours_unit}: a longer schedule "
            "stretches the whole curve, and nnU-Net issue #2474 reports that it often reaches the same "
            "Dice, later.")
    elif not f.schedule_done:
        sentences.append("Whether a longer schedule pays off, and what it would cost, is worked out once the run "
                         "completes its schedule.")
    else:
        sentences.append("No 2000-epoch projection: this run's schedule was already that long or longer"
                         f"{'; 2000 epochs cost' + cost if cost else ''}.")
    return " ".join(sentences[:4])
