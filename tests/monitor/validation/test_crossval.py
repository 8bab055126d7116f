"""The cross-validation table of a configuration, and its agreement with nnU-Net's accumulated results."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from validation_summaries import v2_summary, write_summary

from monitor.runs import discover_runs
from monitor.synth import write_folds
from monitor.validation import FoldState, crossval_table, crossval_tables, read_summary


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """Folds 0–2 finished and validated, fold 3 crashed (no validation), fold 4 never started."""
    write_folds(tmp_path, "Dataset004_Hippocampus", "3d_fullres", [60, 60, 60, 30], planned=60)
    return tmp_path / "Dataset004_Hippocampus" / "nnUNetTrainer__nnUNetPlans__3d_fullres"


def test_table_lists_every_fold_with_mean_and_sd(model: Path) -> None:
    table = crossval_table(model)
    assert [(f.fold, f.state) for f in table.folds] == [
        ("0", FoldState.VALIDATED), ("1", FoldState.VALIDATED), ("2", FoldState.VALIDATED),
        ("3", FoldState.UNVALIDATED), ("4", FoldState.MISSING)]
    assert table.validated == ("0", "1", "2") and table.missing == ("4",) and table.unvalidated == ("3",)
    summaries = [read_summary(model / f"fold_{f}" / "validation" / "summary.json") for f in range(3)]
    fg = [s.foreground_dice for s in summaries]
    assert table.foreground.mean == pytest.approx(np.mean(fg))
    assert table.foreground.sd == pytest.approx(np.std(fg, ddof=1))
    assert table.foreground.folds == 3 and table.cases == 24
    assert [c.name for c in table.per_class] == ["anterior", "posterior"]
    assert table.per_class[1].mean == pytest.approx(np.mean([s.class_dice("2") for s in summaries]))
    rows = table.rows()
    assert [r["fold"] for r in rows] == ["0", "1", "2", "3", "4", "mean", "sd", "pooled"]
    assert rows[0]["anterior"] == pytest.approx(summaries[0].class_dice("1"))
    assert json.loads(json.dumps(table.to_dict(), default=str))["missing"] == ["4"]


def test_stale_and_unreadable_folds_stay_out_of_the_mean(model: Path) -> None:
    final = model / "fold_1" / "checkpoint_final.pth"
    final.write_bytes(b"x")
    summary = model / "fold_1" / "validation" / "summary.json"
    os.utime(summary, (final.stat().st_mtime - 60, final.stat().st_mtime - 60))
    write_summary(model / "fold_2", '{"foreground_mean": {"Dice": 0.9')
    table = crossval_table(model)
    assert table.fold("1").state is FoldState.STALE  # type: ignore[union-attr]
    assert table.fold("2").state is FoldState.UNREADABLE  # type: ignore[union-attr]
    assert table.validated == ("0",) and math.isnan(table.foreground.sd)
    assert table.unvalidated == ("1", "2", "3")


def _accumulate_like_nnunet(model: Path, folds: tuple[int, ...]) -> Path:
    """What accumulate_cv_results leaves: every fold's cases evaluated together, nnU-Net's mean rules."""
    cases: dict[str, tuple[float, float]] = {}
    for fold in folds:
        data = json.loads((model / f"fold_{fold}" / "validation" / "summary.json").read_text())
        for entry in data["metric_per_case"]:
            name = Path(entry["reference_file"]).name.removesuffix(".nii.gz")
            cases[name] = (entry["metrics"]["1"]["Dice"], entry["metrics"]["2"]["Dice"])
    folder = model / f"crossval_results_folds_{'_'.join(map(str, folds))}"
    write_summary(folder, v2_summary(cases), folder=".")
    return folder


def test_agrees_with_nnunets_accumulated_crossval(model: Path) -> None:
    _accumulate_like_nnunet(model, (0, 1, 2))
    table = crossval_table(model)
    (theirs,) = table.nnunet
    assert theirs.folds == ("0", "1", "2") and theirs.agrees is True
    assert theirs.ours == pytest.approx(table.foreground.pooled)
    assert table.foreground.pooled == pytest.approx(theirs.summary.foreground_dice)  # type: ignore[union-attr]


def test_disagreement_is_reported_after_a_fold_was_validated_again(model: Path) -> None:
    _accumulate_like_nnunet(model, (0, 1, 2))
    data = v2_summary({f"case_{k:03d}": (0.5, 0.4) for k in range(8, 16)})
    write_summary(model / "fold_1", data)
    (theirs,) = crossval_table(model).nnunet
    assert theirs.agrees is False and "validated again" in theirs.note
    write_summary(model / "fold_1", "{")
    (theirs,) = crossval_table(model).nnunet
    assert theirs.agrees is None and "no longer have a current validation" in theirs.note


def test_one_table_per_model_folder(tmp_path: Path) -> None:
    write_folds(tmp_path, "Dataset004_Hippocampus", "3d_fullres", [40, 40], planned=40)
    write_folds(tmp_path, "Dataset004_Hippocampus", "2d", [40], planned=40)
    tables = crossval_tables(discover_runs(tmp_path))
    assert [(t.configuration, t.validated) for t in tables] == [("2d", ("0",)), ("3d_fullres", ("0", "1"))]
