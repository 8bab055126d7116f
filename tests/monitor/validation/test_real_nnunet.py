"""Real nnU-Net runs on the CPU: the cross-validation table agrees with the summary.json files nnU-Net wrote,
fold by fold, and with nnU-Net's own accumulated cross-validation (``accumulate_cv_results``, what
``nnUNetv2_find_best_configuration`` runs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.validation import CheckpointUsed, FoldState, compare_runs, crossval_table

_ACCUMULATE = ("import sys; from nnunetv2.evaluation.accumulate_cv_results import accumulate_cv_results; "
               "accumulate_cv_results(sys.argv[1], sys.argv[2], (0, int(sys.argv[3])), num_processes=1)")


@pytest.mark.nnunet
def test_table_agrees_with_nnunets_own_files(tiny_nnunet, tiny_parent_run: Path, tiny_npz_fold: Path,  # type: ignore[no-untyped-def]
                                             tmp_path: Path) -> None:
    source = tiny_parent_run.parent
    model = tmp_path / "results" / source.parent.name / source.name
    model.mkdir(parents=True)
    for name in ("dataset.json", "plans.json"):
        shutil.copy(source / name, model / name)
    for run in (tiny_parent_run, tiny_npz_fold):
        shutil.copytree(run, model / run.name)
    npz = tiny_npz_fold.name.removeprefix("fold_")  # fold 0 was validated without --npz, this one with
    assert npz != "0"
    merged = model / f"crossval_results_folds_0_{npz}"
    subprocess.run([sys.executable, "-c", _ACCUMULATE, str(model), str(merged), npz], env=tiny_nnunet.env,
                   check=True, capture_output=True, text=True, timeout=600)

    table = crossval_table(model)
    assert [(f.fold, f.state) for f in table.folds] == [
        (fold, FoldState.VALIDATED if fold in ("0", npz) else FoldState.MISSING) for fold in "01234"]
    assert [table.label(k) for k in table.keys] == ["disc", "ring"]
    for fold in ("0", npz):
        written = json.loads((model / f"fold_{fold}" / "validation" / "summary.json").read_text())
        row = table.fold(fold)
        assert row is not None and row.summary is not None and row.validation is not None
        assert row.summary.foreground_dice == written["foreground_mean"]["Dice"]
        assert [row.summary.class_dice(k) for k in ("1", "2")] == [written["mean"][k]["Dice"] for k in ("1", "2")]
        assert [c.classes[0].iou for c in row.summary.cases] == [
            c["metrics"]["1"]["IoU"] for c in written["metric_per_case"]]
        assert row.validation.checkpoint is CheckpointUsed.FINAL
    assert table.fold(npz).validation.npz_complete  # type: ignore[union-attr]
    assert table.fold("0").validation.npz_files == 0  # type: ignore[union-attr]

    theirs = json.loads((merged / "summary.json").read_text())
    (accumulated,) = table.nnunet
    assert accumulated.agrees is True, accumulated.note
    assert table.foreground.pooled == pytest.approx(theirs["foreground_mean"]["Dice"], abs=1e-9)
    assert [s.pooled for s in table.per_class] == pytest.approx([theirs["mean"][k]["Dice"] for k in ("1", "2")],
                                                                abs=1e-9)
    assert table.cases == len(theirs["metric_per_case"])

    itself = compare_runs(model / "fold_0", tiny_parent_run)
    assert itself.result.cases == table.fold("0").summary.cases.__len__()  # type: ignore[union-attr]
    assert itself.result.mean_difference == 0 and itself.result.ties == itself.result.cases
