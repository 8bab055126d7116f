"""Status rules on numbers: each boundary of running / stalled / crashed / finished, the ETA, dead Dice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.runs.status import (
    CRASH_FLOOR_S,
    DEAD_DICE_MIN_EPOCHS,
    STALL_FLOOR_S,
    UNKNOWN_CRASH_S,
    UNKNOWN_STALL_S,
    RunStatus,
    StatusInputs,
    assess,
    dead_dice_problem,
    is_dead_dice,
    typical_epoch_seconds,
)

NOW = 1_700_000_000.0


def inputs(quiet: float = 0.0, typical: float = 100.0, **changes: object) -> StatusInputs:
    base: dict[str, object] = {"now": NOW, "last_update": NOW - quiet, "finished": False, "epochs_completed": 10,
            "planned_epochs": 1000, "typical_epoch_s": typical, "last_epoch": 9, "last_epoch_end": NOW - quiet}
    base.update(changes)
    return StatusInputs(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("typical", "stall", "crash"), [
    (100.0, 300.0, 1800.0),  # both floors win for 100 s epochs (3×100 < 300, 10×100 < 1800)
    (400.0, 1200.0, 4000.0),  # factors win for long epochs
    (math.nan, UNKNOWN_STALL_S, UNKNOWN_CRASH_S),  # before the first epoch
])
def test_running_stalled_crashed_boundaries(typical: float, stall: float, crash: float) -> None:
    assert assess(inputs(stall, typical)).status == RunStatus.RUNNING
    assert assess(inputs(stall + 1, typical)).status == RunStatus.STALLED
    assert assess(inputs(crash, typical)).status == RunStatus.STALLED
    assert assess(inputs(crash + 1, typical)).status == RunStatus.CRASHED
    result = assess(inputs(0, typical))
    assert (result.stall_after_s, result.crash_after_s) == (stall, crash)
    assert result.next_change_at == NOW + stall
    assert assess(inputs(stall + 1, typical)).next_change_at == NOW - stall - 1 + crash


def test_floors_are_the_documented_constants() -> None:
    assert (STALL_FLOOR_S, CRASH_FLOOR_S) == (300.0, 1800.0)


def test_finished_wins_over_silence_and_dead_jobs() -> None:
    assert assess(inputs(10 * 86400, finished=True)).status == RunStatus.FINISHED
    assert assess(inputs(0, finished=True, alive=False)).status == RunStatus.FINISHED
    assert assess(inputs(0, finished=True)).eta_s is None


def test_liveness_overrides_the_clock() -> None:
    # A live job is never called crashed, only stalled (hung) ...
    hung = assess(inputs(10 * 86400, alive=True))
    assert hung.status == RunStatus.STALLED and "alive" in hung.reason and hung.next_change_at is None
    # ... and a job known dead is crashed at once, even with a fresh log.
    dead = assess(inputs(1.0, alive=False))
    assert dead.status == RunStatus.CRASHED and "no longer alive" in dead.reason
    assert assess(inputs(1.0, alive=None)).status == RunStatus.RUNNING


def test_no_log_yet_is_unknown_unless_the_job_is_alive() -> None:
    assert assess(inputs(last_update=None, epochs_completed=0, last_epoch=None)).status == RunStatus.UNKNOWN
    assert assess(inputs(last_update=None, alive=True)).status == RunStatus.RUNNING


def test_crash_reason_says_whether_planned_epochs_ran() -> None:
    early = assess(inputs(10_000))
    assert early.status == RunStatus.CRASHED and "before its planned epochs" in early.reason
    late = assess(inputs(10_000, last_epoch=999, epochs_completed=1000))
    assert late.status == RunStatus.CRASHED and "after all planned epochs" in late.reason


def test_eta_is_remaining_epochs_times_typical_minus_elapsed() -> None:
    # 10 of 1000 epochs done, 100 s each, the current one started 30 s ago.
    result = assess(inputs(30.0))
    assert result.eta_s == pytest.approx(990 * 100 - 30)
    assert result.eta == pytest.approx(NOW + 990 * 100 - 30)
    # A resumed run counts from its last epoch number, not from how many rows survived.
    resumed = assess(inputs(0.0, epochs_completed=300, last_epoch=899))
    assert resumed.eta_s == pytest.approx(100 * 100)
    # Elapsed time is capped at one epoch: a slow epoch never makes the ETA negative or earlier than 1 epoch less.
    assert assess(inputs(250.0)).eta_s == pytest.approx(990 * 100 - 100)
    assert assess(inputs(0.0, last_epoch=999, epochs_completed=1000)).eta_s == 0.0
    # Unknown plan or speed: no ETA; stalled runs have none either.
    assert assess(inputs(0.0, planned_epochs=None)).eta_s is None
    assert assess(inputs(0.0, typical=math.nan)).eta is None
    assert assess(inputs(400.0)).eta_s is None


def test_typical_epoch_prefers_the_cadence_of_consecutive_epochs() -> None:
    epochs = np.arange(30)
    ends = 1000.0 + 116.0 * epochs  # saves between epochs: cadence 116 s
    times = np.full(30, 100.0)  # nnU-Net's "Epoch time" excludes them
    assert typical_epoch_seconds(epochs, times, ends) == pytest.approx(116.0)
    # A resume gap (epochs not consecutive) is downtime, not speed; the median ignores one outlier too.
    epochs2 = np.r_[np.arange(10), np.arange(50, 60)]
    ends2 = np.r_[116.0 * np.arange(10), 1e6 + 116.0 * np.arange(10)]
    assert typical_epoch_seconds(epochs2, times[:20], ends2) == pytest.approx(116.0)
    # No end times (v1 checkpoints): the logged epoch times; nothing at all: NaN.
    assert typical_epoch_seconds(epochs, times, np.full(30, np.nan)) == pytest.approx(100.0)
    assert math.isnan(typical_epoch_seconds([], []))


@pytest.mark.parametrize(("values", "dead"), [
    ([0.0] * DEAD_DICE_MIN_EPOCHS, True),
    ([math.nan] * 5 + [0.0] * 5, True),
    ([0.0] * (DEAD_DICE_MIN_EPOCHS - 1), False),  # too early to judge
    ([0.0] * 19 + [0.02], False),  # it started learning
    ([0.3] * 30 + [0.0] * 20, True),  # collapsed (nnU-Net #2318)
    ([0.0004] * 12, True),  # below 1e-3 is 0 for every practical purpose
])
def test_dead_dice(values: list[float], dead: bool) -> None:
    assert is_dead_dice(values) is dead
    assert assess(inputs(0.0, recent_mean_fg_dice=tuple(values[-20:]))).dead_dice is dead


def test_dead_dice_problem_names_the_issues() -> None:
    text = dead_dice_problem(50)
    assert "last 20 epochs" in text and "#2318" in text and "#2734" in text
