"""What the verdict says in words, and what it may claim: slow rises named as such, a threshold that stretches
with the schedule, projections that stay inside what Dice can be, no "−0", provisional verdicts marked."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from analyzer_curves import finished, make_run

from monitor.analyze import (
    Analysis,
    Trend,
    Verdict,
    analyze,
    mean_sd,
    practical_gain_per_epoch,
    signed,
    verdict_is_final,
    verdict_label,
)


def _slow_rise() -> Analysis:
    """+0.003 Dice per 100 epochs with little noise: certainly rising, below the practical 0.005."""
    return finished(make_run(slope=0.003, noise=0.002, phi=0.0, seed=11))


def test_a_significant_rise_below_the_practical_gain_is_called_a_slow_rise() -> None:
    result = _slow_rise()
    assert result.verdict is Verdict.PLATEAU  # the JSON contract keeps its four values
    assert result.slope_ci95 is not None and result.slope_ci95[0] > 0
    assert result.trend is Trend.RISING_SLOWLY
    assert "still rising slowly, below the practical gain" in result.reason
    assert "flat" not in result.reason
    assert verdict_label(result) == "plateau, rising slowly"
    assert result.to_dict()["trend"] == "rising_slowly"


def test_a_flat_run_keeps_its_plain_words() -> None:
    result = finished(make_run(slope=0.0, seed=2))
    assert result.trend is Trend.FLAT and verdict_label(result) == "plateau" and "flat" in result.reason


def test_the_practical_threshold_is_per_tenth_of_the_schedule() -> None:
    assert practical_gain_per_epoch(0.005, 1000) * 100 == pytest.approx(0.005)
    assert practical_gain_per_epoch(0.005, 2000) * 100 == pytest.approx(0.0025)
    assert practical_gain_per_epoch(0.005, None) * 100 == pytest.approx(0.005)  # unknown: per 100 epochs
    # The same curve stretched over 2000 epochs rises half as fast per epoch and is still "improving".
    short = finished(make_run(n=1000, planned=1000, slope=0.008, noise=0.002, phi=0.0, seed=3))
    stretched = finished(make_run(n=2000, planned=2000, slope=0.004, noise=0.002, phi=0.0, seed=3), planned=2000)
    assert short.verdict is Verdict.IMPROVING and stretched.verdict is Verdict.IMPROVING
    assert stretched.min_practical_gain_per_100_epochs == pytest.approx(0.0025)
    assert "per 10 % of the schedule = 0.0025 per 100 epochs of 2000" in stretched.reason


def test_a_declining_run_gets_no_projection_but_a_sentence() -> None:
    result = finished(make_run(slope=-0.03, noise=0.002, phi=0.0, seed=4))
    assert result.verdict is Verdict.DECLINING
    assert result.projected_gain_2000 is None and result.recommended_epochs is None
    assert all(s.projected_gain is None and not s.worth_it and s.why_not for s in result.schedules)
    assert "checkpoint_best" in result.reason and "shorter schedule" in result.reason
    assert "checkpoint_best" in result.explanation


@pytest.mark.parametrize(("slope", "seed"), [(0.05, 1), (0.02, 2), (0.0, 3), (-0.004, 5), (0.015, 8)])
def test_projections_never_leave_what_dice_can_be(slope: float, seed: int) -> None:
    frame = make_run(slope=slope, noise=0.01, seed=seed)
    frame[["mean_fg_dice", "dice_1"]] = frame[["mean_fg_dice", "dice_1"]].clip(upper=0.995)
    result = finished(frame)
    assert result.fit is not None
    level = result.fit.value_at(result.fit.last_epoch)
    for option in result.schedules:
        if option.projected_gain is not None:
            lo, hi = option.projected_gain
            assert 0.0 <= level + lo <= level + hi <= 1.0 + 1e-9
        if not option.worth_it:
            assert option.why_not, f"{option.epochs} epochs: 'worth it: no' without a reason"


@pytest.mark.parametrize(("value", "text"), [(-0.0, "0"), (-0.0004, "0"), (0.0004, "0"), (0.0, "0"),
                                             (0.012, "+0.012"), (-0.004, "\u22120.004")])
def test_zero_is_printed_as_zero_never_minus_zero(value: float, text: str) -> None:
    assert signed(value) == text


@pytest.mark.parametrize(("values", "text"), [([0.80, 0.84], "0.8200 ± 0.0283"), ([0.80, None, math.nan, 0.84],
                                              "0.8200 ± 0.0283"), ([0.85], "0.8500 (1 fold)"), ([], "–")])
def test_the_spread_of_folds_is_the_mean_and_the_sample_sd(values: list[float | None], text: str) -> None:
    """One rule for every view (overview groups, Compare's fold table, the dataset PNG): sample SD over the folds
    that have the value; 0.0283 is sqrt(((0.80 - 0.82)**2 + (0.84 - 0.82)**2) / (2 - 1))."""
    assert mean_sd(values) == text


def test_no_minus_zero_anywhere_in_the_words() -> None:
    for kw in ({"slope": 0.0, "seed": 3}, {"slope": -0.004, "seed": 5}, {"slope": 0.003, "noise": 0.002, "phi": 0.0}):
        result = finished(make_run(**kw))  # type: ignore[arg-type]
        for text in (result.reason, result.explanation):
            assert not re.search(r"[-+\u2212]0\.0+(?!\d)", text), text


def test_a_running_verdict_is_provisional_so_far_and_has_no_cost_or_recommendation() -> None:
    result = analyze(make_run(n=400, slope=0.03, seed=6), planned_epochs=1000, finished=False, running=True)
    assert not result.final and result.provisional_note == "so far"
    assert verdict_label(result).endswith("(so far)")
    assert result.gpu_hours_2000 is None and result.recommended_epochs is None
    assert all(s.gpu_hours is None for s in result.schedules)
    assert "GPU-hours" not in result.explanation and "so far" in result.reason.lower()


def test_a_crashed_verdict_holds_where_it_stopped() -> None:
    result = analyze(make_run(n=600, slope=0.03, seed=7), planned_epochs=1000, finished=False, running=False)
    assert not result.final and result.provisional_note == "where it stopped"
    assert verdict_label(result).endswith("(where it stopped)")
    assert result.reason.startswith("Where the run stopped")


def test_final_verdicts_carry_no_mark_and_the_rule_is_one_function() -> None:
    result = finished(make_run(slope=0.03, seed=9))
    assert result.final and result.provisional_note is None and "(" not in verdict_label(result)
    assert verdict_is_final("finished", 10, 1000)
    assert verdict_is_final("crashed", 1000, 1000)  # every planned epoch ran
    assert not verdict_is_final("crashed", 999, 1000)
    assert not verdict_is_final("running", 1000, 1000)
    assert not verdict_is_final("unknown", 500, None)


def test_the_cost_unit_follows_the_device() -> None:
    frame = make_run(slope=0.0, seed=10)
    cpu = analyze(frame, planned_epochs=1000, finished=True, device="cpu")
    gpu = analyze(frame, planned_epochs=1000, finished=True, device="cuda:0")
    assert cpu.hours_unit == "CPU-hours" and gpu.hours_unit == "GPU-hours"
    assert "CPU-hours" in cpu.explanation and "GPU-hours" not in cpu.explanation
    assert np.isclose(cpu.gpu_hours_2000 or 0.0, gpu.gpu_hours_2000 or 1.0)
