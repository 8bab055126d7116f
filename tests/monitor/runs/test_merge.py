"""The merge rule across log files and checkpoints, on real files in a results tree."""

from __future__ import annotations

import os

import numpy as np
import pytest
from logwriters import v2_log, v2_run, write

from monitor import load_run
from monitor.runs.merge import Curves, overlay_checkpoint


def epochs_and_sources(run_dir):
    frame = load_run(run_dir).frame()
    return frame, frame["epoch"].tolist(), frame["source"].tolist()


def test_resume_in_a_second_file_replaces_from_its_first_epoch(tmp_path) -> None:
    run = v2_run(tmp_path)
    write(run / "training_log_2024_8_31_10_00_00.txt", v2_log(range(0, 480)))  # crashed at 480
    write(run / "training_log_2024_9_1_08_00_00.txt", v2_log(range(450, 500), base=0.6))  # resumed from 450
    frame, epochs, sources = epochs_and_sources(run)
    assert epochs == list(range(500))
    assert set(sources[:450]) == {"log:training_log_2024_8_31_10_00_00.txt"}
    assert set(sources[450:]) == {"log:training_log_2024_9_1_08_00_00.txt"}
    assert frame.loc[frame.epoch == 460, "dice_1"].item() == pytest.approx(0.6 + 0.046)


def test_file_order_follows_the_numbers_in_names_not_their_text(tmp_path) -> None:
    run = v2_run(tmp_path)
    # "2023_9_1" sorts before "2023_8_31" as text but is later in time.
    write(run / "training_log_2023_9_1_02_27_40.txt", v2_log(range(10, 20), base=0.7))
    write(run / "training_log_2023_8_31_09_18_31.txt", v2_log(range(0, 15)))
    _, epochs, sources = epochs_and_sources(run)
    assert epochs == list(range(20))
    assert sources[9].endswith("2023_8_31_09_18_31.txt") and sources[10].endswith("2023_9_1_02_27_40.txt")


def test_restart_inside_one_file_replaces_everything_from_its_start(tmp_path) -> None:
    run = v2_run(tmp_path)
    write(run / "training_log_2024_1_1_00_00_00.txt", v2_log(range(0, 40)) + v2_log(range(0, 10), base=0.8))
    frame, epochs, _ = epochs_and_sources(run)
    assert epochs == list(range(10))
    assert frame["dice_1"].iloc[0] == pytest.approx(0.8)


def test_from_scratch_restart_after_a_longer_failed_attempt(tmp_path) -> None:
    run = v2_run(tmp_path)
    write(run / "training_log_2024_1_1_00_00_00.txt", v2_log(range(0, 300)))
    write(run / "training_log_2024_1_5_00_00_00.txt", v2_log(range(0, 120), base=0.7))
    frame, epochs, _ = epochs_and_sources(run)
    assert epochs == list(range(120))  # nothing of the failed attempt's 120..299 survives
    assert frame["dice_1"].iloc[-1] == pytest.approx(0.7 + 119 / 10000)


def test_ema_is_recomputed_over_the_merged_series(tmp_path) -> None:
    run = v2_run(tmp_path)
    write(run / "training_log_2024_1_1_00_00_00.txt", v2_log(range(0, 30)))
    frame = load_run(run).frame()
    expected = frame["mean_fg_dice"].ewm(alpha=0.1, adjust=False).mean()
    np.testing.assert_allclose(frame["ema_fg_dice"], expected)
    assert frame["mean_fg_dice"].iloc[0] == pytest.approx(np.mean([0.5, 0.51]))


def test_checkpoint_values_win_unless_a_later_session_replaced_them(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    run = v2_run(tmp_path)
    write(run / "training_log_2024_1_1_00_00_00.txt", v2_log(range(0, 20)))
    write(run / "training_log_2024_1_2_00_00_00.txt", v2_log(range(10, 20), base=0.7))
    # A checkpoint written by the first session (epochs 0..19, full precision) before the resume.
    n = 20
    logging = {
        "mean_fg_dice": [0.505 + e / 10000 + 1e-7 for e in range(n)],
        "ema_fg_dice": [0.5] * n,
        "dice_per_class_or_region": [[0.5 + e / 10000 + 1e-7, 0.51 + e / 10000 + 1e-7] for e in range(n)],
        "train_losses": [-0.5 - e / 10000 - 1e-7 for e in range(n)],
        "val_losses": [-0.5 + e / 10000 + 1e-7 for e in range(n)],
        "lrs": [0.01 * (1 - e / 1000) ** 0.9 for e in range(n)],
        "epoch_start_timestamps": [1.7e9 + 102 * e for e in range(n)],
        "epoch_end_timestamps": [1.7e9 + 102 * e + 100 for e in range(n)],
    }
    torch.save({"logging": logging, "current_epoch": n, "network_weights": {}, "init_args": {},
                "trainer_name": "nnUNetTrainer"}, run / "checkpoint_latest.pth")
    reader = load_run(run)
    frame = reader.frame()
    assert frame["epoch"].tolist() == list(range(20))
    assert frame["source"].iloc[5] == "checkpoint_latest.pth"  # full precision won for the first session
    assert frame["train_loss"].iloc[5] == pytest.approx(-0.5005 - 1e-7, abs=1e-12)
    assert frame["source"].iloc[15].startswith("log:training_log_2024_1_2")  # the resume replaced 10..19
    assert any("replaced by a later session" in p for p in reader.problems())


def test_deleted_folder_raises_so_a_watcher_can_drop_the_run(tmp_path) -> None:
    run = v2_run(tmp_path)
    write(run / "training_log_2024_1_1_00_00_00.txt", v2_log(range(3)))
    reader = load_run(run)
    for name in os.listdir(run):
        (run / name).unlink()
    run.rmdir()
    with pytest.raises(FileNotFoundError):
        reader.refresh()


def _losses(epochs, train, val):
    n = len(epochs)
    return Curves(np.asarray(epochs, dtype=np.int64), np.zeros(n), np.asarray(train, float), np.asarray(val, float),
                  np.zeros((n, 1)), np.zeros(n), np.zeros(n), np.full(n, np.datetime64("NaT"), "datetime64[us]"),
                  np.full(n, "x", dtype=object))


@pytest.mark.parametrize("seed", range(40))
def test_a_checkpoint_is_stale_from_its_first_epoch_whose_losses_differ_from_the_log(seed: int) -> None:
    """Against the rule spelled out epoch by epoch: in the checkpoint's order, the first epoch the log also has
    whose train or val loss differs by more than the log's rounding (NaN never differs)."""
    rng = np.random.default_rng(seed)
    logged = np.sort(rng.choice(80, int(rng.integers(0, 60)), replace=False))
    saved = rng.choice(80, int(rng.integers(1, 60)), replace=False)
    train, val = np.round(rng.random((2, len(logged))), 4)
    saved_losses = rng.random((2, len(saved)))
    for j, epoch in enumerate(saved):
        if epoch in logged and rng.random() < 0.95:  # mostly the same values, at full precision
            i = int(np.flatnonzero(logged == epoch)[0])
            saved_losses[:, j] = (train[i] + rng.normal(0, 4e-5), val[i] + rng.normal(0, 4e-5))
    for values in (train, val, *saved_losses):
        if len(values) and rng.random() < 0.3:
            values[rng.integers(len(values))] = np.nan
    expected = None
    for j, epoch in enumerate(saved):
        if epoch in logged:
            i = int(np.flatnonzero(logged == epoch)[0])
            pairs = ((train[i], saved_losses[0, j]), (val[i], saved_losses[1, j]))
            if any(np.isfinite(a) and np.isfinite(b) and abs(a - b) > 2e-4 for a, b in pairs):
                expected = int(epoch)
                break
    _, problem = overlay_checkpoint(_losses(logged, train, val), _losses(saved, *saved_losses), "checkpoint_best.pth")
    stale = None if expected is None else f"epochs from {expected} on were replaced by a later session; ignored there"
    assert problem == (None if stale is None else f"checkpoint_best.pth: {stale}")
