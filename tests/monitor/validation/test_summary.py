"""summary.json read in full (v2 and v1), and what a broken or NaN-laden one gives."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from validation_summaries import v2_summary, write_summary

from monitor.runs import load_run
from monitor.synth import FakeRun, make_run_dir
from monitor.validation import (
    CheckpointUsed,
    SummaryError,
    ValidationStatus,
    parse_summary,
    read_run_validation,
    read_summary,
)


def test_v2_summary_in_full(tmp_path: Path) -> None:
    content = v2_summary({"case_001": (0.9, 0.7), "case_002": (0.8, 0.5)}, keys=("1", "2"))
    summary = read_summary(write_summary(tmp_path, content))
    assert summary.version == "v2" and summary.keys == ("1", "2")
    assert summary.foreground_dice == pytest.approx((0.85 + 0.6) / 2)
    assert summary.class_dice("2") == pytest.approx(0.6)
    assert summary.classes[0].iou == pytest.approx(content["mean"]["1"]["IoU"])
    assert [c.case for c in summary.cases] == ["case_001.nii.gz", "case_002.nii.gz"]
    assert [c.name for c in summary.cases] == ["case_001", "case_002"]
    assert summary.cases[1].dice("1") == 0.8 and summary.cases[1].foreground_dice == pytest.approx(0.65)
    assert summary.flags == () and summary.usable


def test_labels_keep_nnunet_order_and_regions_are_read(tmp_path: Path) -> None:
    keys = ("(1, 2, 3)", "(2, 3)", "(3,)")
    content = v2_summary({"a": (0.9, 0.8, 0.7)}, keys=keys)
    assert parse_summary(json.loads(json.dumps(content, sort_keys=True))).keys == keys
    many = v2_summary({"a": tuple(0.5 + k / 100 for k in range(11))}, keys=tuple(str(k) for k in range(1, 12)))
    assert parse_summary(json.loads(json.dumps(many, sort_keys=True))).keys[-3:] == ("9", "10", "11")


def test_v1_summary_with_background_and_jaccard() -> None:
    content = {"name": "", "author": "Fabian", "results": {
        "all": [{"0": {"Dice": 0.99, "Jaccard": 0.98}, "1": {"Dice": 0.8, "Jaccard": 0.66}, "2": {"Dice": 0.6},
                 "test": "/x/validation_raw/hippo_001.nii.gz", "reference": "/x/gt/hippo_001.nii.gz"}],
        "mean": {"0": {"Dice": 0.99, "Jaccard": 0.98}, "1": {"Dice": 0.8, "Jaccard": 0.66}, "2": {"Dice": 0.6}}}}
    summary = parse_summary(content)
    assert summary.version == "v1" and summary.keys == ("1", "2")  # background left out
    assert summary.foreground_dice == pytest.approx(0.7)
    assert summary.classes[0].iou == pytest.approx(0.66) and summary.classes[1].iou is None
    assert summary.cases[0].case == "hippo_001.nii.gz"


def test_nan_dice_is_flagged_and_the_rest_is_read(tmp_path: Path) -> None:
    content = v2_summary({"a": (0.9, math.nan), "b": (0.7, 0.5), "c": (0.8, math.nan)})
    summary = read_summary(write_summary(tmp_path, content))  # nnU-Net writes a bare NaN
    assert summary.usable and summary.class_dice("2") == pytest.approx(0.5)
    assert any("class 2: Dice is NaN in 2 of 3 cases" in f for f in summary.flags)
    absent = v2_summary({"a": (0.9, math.nan), "b": (0.7, math.nan)})
    broken = parse_summary(absent)
    assert not broken.usable and math.isnan(broken.foreground_dice)
    assert any("foreground mean Dice is NaN" in f for f in broken.flags)
    assert broken.class_dice("1") == pytest.approx(0.8)


def test_means_that_do_not_match_their_cases_are_flagged() -> None:
    content = v2_summary({"a": (0.9, 0.5), "b": (0.7, 0.5)})
    content["mean"]["1"]["Dice"] = 0.95
    assert any("does not match" in f for f in parse_summary(content).flags)


@pytest.mark.parametrize("text, words", [
    ('{"foreground_mean": {"Dice": 0.8}, "mean": {"1": {"Di', "cut off"),
    ("", "empty"),
    ('{"something": 1}', "neither"),
    ('{"foreground_mean": {"Dice": 0.8}, "mean": {"1": {"Dice": 0.8}}, "metric_per_case": [{"x": 1}]}', "no metrics"),
    ("[1, 2]", "JSON object"),
])
def test_broken_summaries_raise_a_typed_error(tmp_path: Path, text: str, words: str) -> None:
    path = write_summary(tmp_path, text)
    with pytest.raises(SummaryError, match=words) as info:
        read_summary(path)
    assert info.value.path == path


def _finished_run(root: Path, fold: int = 0) -> Path:
    run = FakeRun(make_run_dir(root, fold=fold, labels=("liver", "tumor")), planned_epochs=5)
    run.start_session()
    run.history(5)
    run.finish(final_dice=0.8)
    return run.folder


def test_run_validation_states(tmp_path: Path) -> None:
    folder = _finished_run(tmp_path)
    (folder / "checkpoint_final.pth").write_bytes(b"x")
    (folder / "checkpoint_best.pth").write_bytes(b"x")
    summary_path = folder / "validation" / "summary.json"
    old = os.stat(folder / "checkpoint_final.pth").st_mtime
    os.utime(summary_path, (old + 10, old + 10))
    current = read_run_validation(folder)
    assert current.status is ValidationStatus.CURRENT and current.cases == 8
    assert current.checkpoint is CheckpointUsed.FINAL and "presumed" in current.checkpoint_evidence
    assert current.labels == {"1": "liver", "2": "tumor"} and current.label("2") == "tumor"
    assert current.npz_files == 0 and not current.npz_complete
    os.utime(summary_path, (old - 3600, old - 3600))
    stale = read_run_validation(folder)
    assert stale.status is ValidationStatus.STALE and "older than checkpoint_final" in stale.reason
    (folder / "checkpoint_final.pth").unlink()
    best = read_run_validation(folder)
    assert best.checkpoint is CheckpointUsed.BEST and "scored checkpoint_best" in best.reason
    assert read_run_validation(folder, val_best=True).checkpoint is CheckpointUsed.BEST
    for k in range(8):
        (folder / "validation" / f"case_{k:03d}.npz").write_bytes(b"")
    assert read_run_validation(folder).npz_complete


def test_missing_and_truncated_validation(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path)
    missing = read_run_validation(folder)
    assert missing.status is ValidationStatus.MISSING and missing.summary is None
    assert "No real validation yet" in missing.reason
    write_summary(folder, '{"foreground_mean": {"Dice": 0.8')
    broken = read_run_validation(folder)
    assert broken.status is ValidationStatus.UNREADABLE and "cut off" in (broken.error or "")
    assert broken.to_dict()["status"] == "unreadable"


def test_the_run_reader_takes_its_final_dice_from_the_summary(tmp_path: Path) -> None:
    folder = _finished_run(tmp_path)
    expected = read_summary(folder / "validation" / "summary.json").foreground_dice
    assert load_run(folder).summary().final_validation_dice == pytest.approx(expected)
    write_summary(folder, '{"foreground_mean": ')  # cut off: a problem, and the log's final Dice is used
    summary = load_run(folder).summary()
    assert any("summary.json" in p and "cut off" in p for p in summary.problems)
    assert summary.final_validation_dice == pytest.approx(expected, abs=1e-6)
