"""The one parent-vs-extension rule on constructed curves: what it compares, what it answers, how sure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from monitor.analyze import Certainty, ComparedRun, Standing, compare_extension


def _run(run_id: str, planned: int, done: int, status: str, ceiling: float, seed: int,
         noise: float = 0.004) -> ComparedRun:
    """A saturating curve that is a function of the fraction of schedule (a stretched copy for a longer one)."""
    rng = np.random.default_rng(seed)
    fraction = (np.arange(done) + 1) / planned
    mean = ceiling - 0.4 * np.exp(-fraction / 0.15) + rng.normal(0, noise, done)
    ema = np.empty(done)
    ema[0] = mean[0]
    for k in range(1, done):
        ema[k] = 0.9 * ema[k - 1] + 0.1 * mean[k]
    return ComparedRun(run_id, np.arange(done, dtype=float), ema, mean, planned, status)


def test_a_finished_extension_is_compared_at_the_end_of_both_schedules() -> None:
    parent = _run("p", 1000, 1000, "finished", 0.80, 1)
    child = _run("c", 2000, 2000, "finished", 0.83, 2)
    result = compare_extension(parent, child)
    assert result.rule == "end of schedule" and "not epoch by epoch" in result.rule_description
    assert not result.projected
    assert result.parent_value == parent.ema[-1] and result.child_value == child.ema[-1]
    assert result.difference is not None and abs(result.difference - (child.ema[-1] - parent.ema[-1])) < 1e-12
    assert result.standing is Standing.AHEAD and result.certainty is Certainty.CLEAR
    assert "ended at" in result.statement and "above its parent's final" in result.statement
    assert not result.fell_behind


def test_a_running_extension_below_the_parent_by_epoch_can_still_be_on_track() -> None:
    parent = _run("p", 1000, 1000, "finished", 0.80, 1)
    child = _run("c", 2000, 700, "running", 0.83, 2)
    # By epoch the extension is below its parent at every epoch it has: a higher learning rate for longer.
    assert np.all(child.ema[100:] < parent.ema[100:700])
    result = compare_extension(parent, child)
    assert result.projected and result.question.startswith("Is the extended run on track to beat")
    assert result.child_fraction == 0.35
    assert result.standing is Standing.AHEAD and result.certainty is not Certainty.CLEAR  # a projection
    assert result.statement.count("Yes") == 1 and "same fraction" in result.statement


def test_an_extension_that_falls_behind_is_flagged_for_notification() -> None:
    parent = _run("p", 1000, 1000, "finished", 0.85, 1)
    child = _run("c", 2000, 900, "running", 0.78, 2)
    result = compare_extension(parent, child)
    assert result.standing is Standing.BEHIND and result.fell_behind
    assert result.to_dict()["fell_behind"] is True and "No, " in result.statement


def test_nothing_is_claimed_too_early_or_without_a_schedule() -> None:
    parent = _run("p", 1000, 1000, "finished", 0.80, 1)
    early = compare_extension(parent, _run("c", 2000, 40, "running", 0.83, 2))
    assert early.standing is Standing.UNKNOWN and "too early" in early.statement
    unknown = compare_extension(parent, replace(_run("c", 2000, 400, "running", 0.83, 2), planned_epochs=None))
    assert unknown.standing is Standing.UNKNOWN and "unknown" in unknown.statement
