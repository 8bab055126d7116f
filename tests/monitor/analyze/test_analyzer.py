"""The analyzer's verdicts on synthetic nnU-Net-like runs, each checking something a user would notice.

Every frame is built from a fixed seed, so the tests are deterministic; each run takes a few ms.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from analyzer_curves import finished, make_run

from monitor.analyze.analyzer import AnalyzerOptions, Verdict, analyze

CONTRACT_KEYS = ["verdict", "slope_per_100_epochs", "slope_ci95", "window", "series", "min_practical_gain",
                 "projected_gain_2000", "gpu_hours_2000", "reason", "epochs_completed"]


def test_a_clearly_rising_run_is_called_improving() -> None:
    result = finished(make_run(slope=0.02))
    assert result.verdict is Verdict.IMPROVING
    assert result.slope_ci95 is not None and result.slope_ci95[0] > 0
    assert "still rising" in result.reason


def test_a_flat_run_is_a_plateau_and_no_longer_schedule_is_recommended() -> None:
    result = finished(make_run(slope=0.0))
    assert result.verdict is Verdict.PLATEAU
    assert result.recommended_epochs is None
    assert not any(s.worth_it for s in result.schedules)
    assert "flat" in result.reason


def test_a_falling_run_is_called_declining() -> None:
    result = finished(make_run(slope=0.0, late_slope=-0.03, seed=2))
    assert result.verdict is Verdict.DECLINING
    assert "falling" in result.reason and "overfitting" in result.reason


def test_a_significant_but_tiny_rise_is_a_plateau() -> None:
    """0.002 Dice per 100 epochs is real (low noise) but below the 0.005 practical threshold."""
    result = finished(make_run(slope=0.002, noise=0.002, phi=0.0))
    assert result.slope_ci95 is not None and result.slope_ci95[0] > 0
    assert result.verdict is Verdict.PLATEAU


def test_a_significant_but_small_decline_is_a_plateau() -> None:
    """-0.002 Dice per 100 epochs is real (low noise) but within the 0.005 practical threshold."""
    result = finished(make_run(slope=-0.002, noise=0.002, phi=0.0))
    assert result.slope_ci95 is not None and result.slope_ci95[1] < 0
    assert result.verdict is Verdict.PLATEAU
    assert "falling slowly" in result.reason


def test_a_decline_clearly_beyond_the_threshold_is_declining() -> None:
    result = finished(make_run(slope=-0.02, noise=0.002, phi=0.0))
    assert result.slope_per_100_epochs is not None and result.slope_per_100_epochs < -0.015
    assert result.verdict is Verdict.DECLINING
    assert result.recommended_epochs is None and "would not help" in result.reason


@pytest.mark.parametrize(("slope", "seed", "uncorrected"), [(0.008, 4, Verdict.IMPROVING),
                                                             (-0.008, 9, Verdict.DECLINING)])
def test_a_large_slope_in_correlated_noise_is_a_plateau_when_its_interval_includes_zero(
        slope: float, seed: int, uncorrected: Verdict) -> None:
    """Consecutive epochs share weights, so their noise is correlated; the interval widens for it and a
    slope beyond the practical threshold still needs the interval to exclude 0. Without the widening
    the same curve would be called a trend."""
    frame = make_run(slope=slope, noise=0.03, phi=0.6, seed=seed)
    result = finished(frame)
    assert result.slope_per_100_epochs is not None and abs(result.slope_per_100_epochs) >= 0.005
    assert result.slope_ci95 is not None and result.slope_ci95[0] < 0 < result.slope_ci95[1]
    assert result.verdict is Verdict.PLATEAU
    assert "correlation between consecutive epochs" in result.explanation
    assert finished(frame, options=AnalyzerOptions(correct_autocorrelation=False)).verdict is uncorrected


def test_a_short_run_is_insufficient_data() -> None:
    result = analyze(make_run(n=30), planned_epochs=1000, finished=False, running=True)
    assert result.verdict is Verdict.INSUFFICIENT_DATA
    assert result.slope_per_100_epochs is None and result.window is None
    assert "Only 30 epochs" in result.reason


def test_mostly_missing_pseudo_dice_is_insufficient_data() -> None:
    frame = make_run()
    gone = np.random.default_rng(1).random(len(frame)) < 0.8
    frame.loc[gone, ["mean_fg_dice", "dice_1"]] = np.nan
    result = finished(frame)
    assert result.verdict is Verdict.INSUFFICIENT_DATA
    assert "too few to fit a trend" in result.reason
    # A run that stopped abnormally after all its planned epochs has nothing left to resume.
    ran_all = analyze(frame, planned_epochs=1000, finished=False, running=False)
    assert ran_all.verdict is Verdict.INSUFFICIENT_DATA and "--c" not in ran_all.reason
    stopped_early = analyze(frame.iloc[:700], planned_epochs=1000, finished=False, running=False)
    assert stopped_early.verdict is Verdict.INSUFFICIENT_DATA and "--c" in stopped_early.reason


def test_the_fewest_epochs_and_points_still_get_a_verdict_one_fewer_does_not() -> None:
    """50 epochs give a 25-epoch window (half the run), all of whose 25 values count; 20 are needed."""
    assert analyze(make_run(n=49), planned_epochs=1000, finished=False).verdict is Verdict.INSUFFICIENT_DATA
    frame = make_run(n=50)
    result = analyze(frame, planned_epochs=1000, finished=False)
    assert result.verdict is not Verdict.INSUFFICIENT_DATA and result.window == (25, 49)
    frame.loc[25:30, "mean_fg_dice"] = np.nan
    result = analyze(frame, planned_epochs=1000, finished=False)
    assert result.verdict is Verdict.INSUFFICIENT_DATA and "Only 19 of the last 25 epochs" in result.reason


def test_a_crashed_run_gets_its_trend_and_is_told_to_resume_with_c() -> None:
    result = analyze(make_run(n=400, slope=0.02), planned_epochs=1000, finished=False, running=False)
    assert result.verdict is Verdict.IMPROVING
    assert result.window == (200, 399)  # the last half of a run shorter than two windows
    assert result.status == "stopped"
    assert "--c" in result.reason and "resume" in result.reason
    assert result.projected_gain_2000 is None and result.recommended_epochs is None


def test_a_running_run_gets_the_trend_so_far_without_a_projection() -> None:
    result = analyze(make_run(n=500, slope=0.0, seed=3), planned_epochs=1000, finished=False, running=True)
    assert result.verdict is Verdict.PLATEAU
    assert result.reason.startswith("So far (epoch 500 of 1000")
    assert result.projected_gain_2000 is None
    # No cost and no recommendation before the schedule has ended: the decision is not due yet.
    assert result.gpu_hours_2000 is None and result.recommended_epochs is None
    assert not result.final and result.provisional_note == "so far"


def test_dips_and_spikes_do_not_flip_a_plateau() -> None:
    frame = make_run(slope=0.0, noise=0.008, seed=4)
    rng = np.random.default_rng(5)
    dips = rng.choice(np.arange(700, 1000), size=20, replace=False)
    dips = np.concatenate([dips, [995, 997, 999]])  # bad epochs right at the end pull OLS down
    frame.loc[dips, "mean_fg_dice"] *= 0.5
    frame.loc[rng.choice(np.arange(700, 1000), size=5, replace=False), "mean_fg_dice"] += 0.15
    result = finished(frame)
    assert result.verdict is Verdict.PLATEAU
    assert abs(result.slope_per_100_epochs or 1.0) < 0.005


def test_an_ema_that_rises_while_the_raw_dice_is_flat_does_not_fool_it() -> None:
    """After a block of bad epochs nnU-Net's EMA climbs back for ~30 epochs while the per-epoch Dice is
    flat; a logged EMA can also drift when a resumed run restarts it. Only the raw curve is evidence."""
    frame = make_run(slope=0.0, noise=0.005, seed=6)
    frame["ema_fg_dice"] = np.linspace(0.70, 0.80, len(frame))
    result = finished(frame)
    assert np.polyfit(frame["epoch"][-300:], frame["ema_fg_dice"][-300:], 1)[0] > 0
    assert result.verdict is Verdict.PLATEAU
    assert result.series == "mean_fg_dice"


def test_a_rise_only_in_the_annealing_phase_is_not_a_reason_to_train_longer() -> None:
    result = finished(make_run(slope=0.0, anneal_gain=0.025, noise=0.004, seed=7))
    assert result.verdict is Verdict.IMPROVING  # the question as asked: it does rise at the end
    assert result.anneal_start_epoch is not None and 800 <= result.anneal_start_epoch <= 850
    assert result.recommended_epochs is None
    assert "low-learning-rate phase" in result.reason


def test_a_rise_before_annealing_supports_a_longer_schedule_labelled_as_extrapolation() -> None:
    frame = make_run(slope=0.015, noise=0.005, seed=8)
    frame[["mean_fg_dice", "dice_1"]] -= 0.2  # room below 1 for the projection
    result = finished(frame)
    assert result.verdict is Verdict.IMPROVING
    by_length = {s.epochs: s for s in result.schedules}
    assert by_length[1500].worth_it and by_length[2000].worth_it
    assert not by_length[3000].worth_it  # 2000 more high-lr epochs reach too far beyond the fitted stretch
    gain_1500, gain_2000 = by_length[1500].projected_gain, by_length[2000].projected_gain
    assert gain_1500 is not None and gain_2000 is not None
    assert gain_1500[0] == gain_2000[0] == 0.0  # a longer schedule may end at the same Dice
    assert result.recommended_epochs == 2000  # the longer option promises clearly more than the cheaper one
    assert "2000-epoch run" in result.reason and "extrapolation" in result.reason
    assert "#2474" in result.explanation and "extrapolation" in result.explanation.lower()


def test_projection_range_is_ordered_and_gpu_hours_follow_the_median_epoch_time() -> None:
    frame = make_run(slope=0.01, seed=9)
    frame.loc[0, "epoch_time_s"] = 5000.0  # a slow first epoch must not inflate the estimate
    result = finished(frame)
    assert result.projected_gain_2000 is not None
    lo, hi = result.projected_gain_2000
    assert lo <= hi
    expected = float(np.median(frame["epoch_time_s"])) * 2000 / 3600
    assert result.gpu_hours_2000 == pytest.approx(expected)
    by_length = {s.epochs: s for s in result.schedules}
    assert set(by_length) == {1500, 2000, 3000}
    assert by_length[3000].gpu_hours == pytest.approx(expected * 1.5)


def test_without_epoch_times_gpu_hours_follow_the_spacing_of_epoch_end_stamps() -> None:
    frame = make_run(slope=0.01, seed=9)
    spacing = np.diff(frame["epoch_end"].to_numpy()).astype("timedelta64[us]").astype(float) / 1e6
    result = finished(frame.drop(columns=["epoch_time_s"]))
    assert result.gpu_hours_2000 == pytest.approx(float(np.median(spacing)) * 2000 / 3600)


def test_a_run_stopped_after_all_planned_epochs_gets_a_projection() -> None:
    result = analyze(make_run(slope=0.0, seed=3), planned_epochs=1000, finished=False, running=False)
    assert result.status == "stopped" and result.projected_gain_2000 is not None
    assert result.reason.startswith("All 1000 planned epochs ran") and "--c" not in result.reason


def test_to_dict_has_the_contract_keys_first_and_is_strict_json() -> None:
    for result in (finished(make_run(slope=0.01)), analyze(make_run(n=10), planned_epochs=None, finished=False)):
        data = result.to_dict()
        assert list(data)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
        text = json.dumps(data, allow_nan=False)
        assert json.loads(text)["verdict"] == result.verdict.value


def test_the_fit_line_matches_the_reported_slope_and_window() -> None:
    result = finished(make_run(slope=0.02))
    assert result.fit is not None and result.window == (700, 999)
    drawn = result.fit.to_dict()
    assert (drawn["first_epoch"], drawn["last_epoch"]) == result.window
    rise = drawn["end_value"] - drawn["start_value"]
    assert rise / (299 / 100) == pytest.approx(result.slope_per_100_epochs)


def test_explanation_is_a_few_sentences_with_the_pseudo_dice_caveat() -> None:
    for result in (finished(make_run(slope=0.01)), analyze(make_run(n=20), planned_epochs=1000, finished=False)):
        sentences = [s for s in result.explanation.split(". ") if s]
        assert 2 <= len(sentences) <= 4
        assert "subset of validation patches" in result.explanation


def test_without_lr_or_planned_epochs_it_still_answers() -> None:
    frame = make_run(slope=0.02).drop(columns=["lr"])
    result = analyze(frame, planned_epochs=None, finished=True)
    assert result.verdict is Verdict.IMPROVING
    assert result.planned_epochs is None and result.anneal_start_epoch is None


def test_mean_dice_is_rebuilt_from_the_classes_when_a_parser_left_it_empty() -> None:
    frame = make_run(slope=0.02)
    frame["dice_2"] = frame["dice_1"] - 0.1
    frame["mean_fg_dice"] = np.nan
    result = finished(frame)
    assert result.verdict is Verdict.IMPROVING
    assert result.fit is not None and result.fit.value_at(999) == pytest.approx(0.8 - 0.05 + 0.2, abs=0.02)


def test_schedule_length_is_read_from_the_logged_lr_when_not_given() -> None:
    result = analyze(make_run(n=400, planned=1000), planned_epochs=None, finished=False)
    assert result.planned_epochs == 1000
    assert "of 1000" in result.reason


def test_a_resumed_log_that_starts_mid_run_is_fitted_on_what_it_has() -> None:
    frame = make_run(n=800, planned=800, slope=0.0, noise=0.004, seed=10).iloc[700:].reset_index(drop=True)
    result = analyze(frame, planned_epochs=800, finished=True)
    assert result.window == (700, 799)
    assert result.verdict is Verdict.PLATEAU and result.epochs_completed == 800
    assert result.anneal_start_epoch == 667  # before the log starts: from the poly schedule


def test_repeated_epochs_from_a_restart_keep_the_later_values() -> None:
    frame = make_run(n=600, planned=1000, slope=0.0, seed=11)
    stale = frame.iloc[500:550].copy()
    stale["mean_fg_dice"] = 0.1  # the crashed session's values, replaced after resuming
    frame = pd.concat([frame.iloc[:550], stale, frame.iloc[550:]], ignore_index=True)
    result = analyze(frame, planned_epochs=1000, finished=False, running=True)
    assert result.verdict is Verdict.PLATEAU and result.epochs_completed == 600


def test_options_change_the_thresholds_a_user_sees() -> None:
    frame = make_run(slope=0.004, noise=0.002, phi=0.0, seed=12)
    assert finished(frame).verdict is Verdict.PLATEAU
    lenient = finished(frame, options=AnalyzerOptions(min_practical_gain=0.002, window_epochs=200))
    assert lenient.verdict is Verdict.IMPROVING
    assert lenient.min_practical_gain == 0.002 and lenient.window == (800, 999)


def test_order_statistics_are_exactly_those_of_a_full_partition() -> None:
    from monitor.analyze.stats import order_statistics

    rng = np.random.default_rng(3)
    for trial in range(300):
        n = int(rng.integers(5, 60000))
        values = rng.normal(size=n).astype(np.float32)
        if trial % 3 == 1:
            values = np.round(values, 1)  # heavy ties, as 4-decimal Dice gives
        elif trial % 3 == 2:
            values = np.sort(values)  # a sample drawn from a sorted array is not random
        ranks = sorted({int(r) for r in rng.integers(0, n, 4)})
        expected = np.partition(values, ranks)
        assert order_statistics(values, ranks) == {r: float(expected[r]) for r in ranks}
