"""Every real log in the shared corpus, placed in a realistic tree, read back with known values.

The expected numbers below were read off the log files by hand (line numbers in comments).
"""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest

from monitor import load_run, scan
from monitor.runs.status import RunStatus

V1 = "nnUNetTrainerV2__nnUNetPlansv2.1"
# corpus file prefix → fold folder (relative to the results root) it is placed in.
PLACEMENT = {
    "001": f"nnUNet/2d/Task008_Refuge/{V1}/fold_0",
    "004": f"nnUNet/2d/Task008_Refuge/{V1}/fold_2",
    "005": f"nnUNet/2d/Task008_Refuge/{V1}/fold_2",
    "008": "nnUNet/3d_fullres/Task500_BraTS2021/nnUNetTrainerV2BraTSRegions__nnUNetPlansv2.1/fold_0",
    "009": "nnUNet/3d_fullres/Task500_BraTS2021/nnUNetTrainerV2BraTSRegions__nnUNetPlansv2.1/fold_0",
    "010": "nnUNet/3d_fullres/Task500_BraTS2021/nnUNetTrainerV2BraTSRegions__nnUNetPlansv2.1/fold_0",
    "011": "nnUNet/3d_fullres/Task500_BraTS2021/nnUNetTrainerV2BraTSRegions__nnUNetPlansv2.1/fold_0",
    "014": "nnUNet/3d_fullres/Task600_BraTS/nnUNetTrainerV2BraTSRegions_DA4_BN_BD_UNSM_LUCY__nnUNetPlansv2.1/fold_0",
    "015": "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0",
    "016": "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0",
    "018": "Dataset004_Hippocampus/nnUNetTrainer_50epochs__nnUNetPlans__3d_fullres/fold_0",
    "019": "Dataset004_Hippocampus/nnUNetTrainer_50epochs__nnUNetPlans__3d_fullres/fold_1",
    "024": "nnUNet/3d_fullres/Task001_WMH/nnUNetTrainerV2_150epochs__nnUNetPlansv2.1/fold_0",
    "025": "Dataset082_scrollmask2/nnUNetTrainerWorkshop__nnUNetPlans__2d/fold_0",
}


@pytest.fixture(scope="module")
def corpus_tree(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    with open(corpus_dir / "MANIFEST.tsv", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            folder = root / PLACEMENT[row["file"][:3]]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus_dir / row["file"], folder / Path(row["source_path"]).name)
    return root


def run(root: Path, key: str):
    return load_run(root / PLACEMENT[key], root)


def test_every_placed_run_is_discovered_with_its_layout(corpus_tree: Path) -> None:
    table = scan(corpus_tree).set_index("run_id")
    assert sorted(table.index) == sorted(set(PLACEMENT.values()))
    assert table.loc[PLACEMENT["001"], "nnunet_version"] == "v1"
    assert table.loc[PLACEMENT["001"], "dataset"] == "Task008_Refuge"
    assert table.loc[PLACEMENT["001"], "configuration"] == "2d"
    assert table.loc[PLACEMENT["016"], "nnunet_version"] == "v2"
    assert table.loc[PLACEMENT["016"], "trainer"] == "nnUNetTrainer"
    assert table.loc[PLACEMENT["019"], "fold"] == "1"


def test_v1_full_run_epochs_and_values(corpus_tree: Path) -> None:
    frame = run(corpus_tree, "001").frame()
    assert frame["epoch"].tolist() == list(range(800))
    first = frame.iloc[0]  # log lines 338-341
    assert first["train_loss"] == -0.4667 and first["val_loss"] == -0.6738
    assert first["dice_1"] == 0.6966139601410076 and first["dice_2"] == 0.9856379036431815
    assert first["lr"] == 0.01  # announced at start-up (line 10), before epoch 0
    assert frame.iloc[1]["lr"] == 0.009989  # printed at the end of epoch 0 (line 343)
    last = frame.iloc[-1]  # lines 7873-7876
    assert last["train_loss"] == -0.9483 and last["dice_1"] == 0.9188169443075396
    assert last["mean_fg_dice"] == pytest.approx((0.9188169443075396 + 0.9990324478197092) / 2)


def test_v1_schedule_length_is_recovered_from_the_lr_column(corpus_tree: Path) -> None:
    reader = run(corpus_tree, "001")
    assert reader.planned_epochs() == (800, "lr schedule")  # lr: 0.0 after epoch 799
    assert reader.summary().status == RunStatus.FINISHED  # v1 final validation ran ("finished prediction")


def test_v1_restart_inside_a_file_then_resume_in_a_second_file(corpus_tree: Path) -> None:
    frame = run(corpus_tree, "004").frame()
    assert frame["epoch"].tolist() == list(range(800))
    # Epoch 700 comes from the later file (005 lines 339-342), not from the first attempt.
    row = frame.loc[frame.epoch == 700].iloc[0]
    assert row["source"] == "log:training_log_2021_6_20_11_10_06.txt"
    assert row["train_loss"] == -0.9430 and row["dice_1"] == 0.9241106276904021
    assert row["lr"] == 0.001539  # announced after loading the checkpoint at the resume


def test_v2_run_killed_mid_epoch_counts_only_completed_epochs(corpus_tree: Path) -> None:
    reader = run(corpus_tree, "016")
    frame = reader.frame()
    assert frame["epoch"].tolist() == list(range(497))  # epoch 497 started but never ended
    last = frame.iloc[-1]  # log lines 3567-3571
    assert last["epoch"] == 496 and last["lr"] == 0.0054
    assert last["train_loss"] == -0.9169 and last["dice_1"] == 0.8937 and last["dice_2"] == 0.8799
    assert reader.summary().log_files == 2  # 015 died at epoch 0 and contributes nothing


def test_numpy_reprs_and_extra_lines_inside_an_epoch(corpus_tree: Path) -> None:
    frame = run(corpus_tree, "025").frame()
    assert frame["epoch"].tolist() == list(range(13))
    row = frame.loc[frame.epoch == 12].iloc[0]  # a "Saved GIF" line sits inside this epoch
    assert row["dice_1"] == 0.9951 and row["epoch_time_s"] == 61.16 and row["lr"] == 0.00989


def test_region_based_runs_have_three_values_per_epoch(corpus_tree: Path) -> None:
    frame = run(corpus_tree, "011").frame()
    assert frame["epoch"].tolist() == list(range(42))
    row = frame.loc[frame.epoch == 41].iloc[0]
    assert [row["dice_1"], row["dice_2"], row["dice_3"]] == [0.9523, 0.917, 0.8825]


def test_early_v2_completed_run_and_its_final_validation_dice(corpus_tree: Path) -> None:
    summary = run(corpus_tree, "018").summary()
    assert summary.epochs_completed == 50 and summary.planned_epochs == 50
    assert summary.status == RunStatus.FINISHED  # no "Training done." in early v2, but a final validation ran
    assert summary.final_validation_dice == pytest.approx(0.8920046426174826)


def test_custom_v1_trainer_with_150_epochs(corpus_tree: Path) -> None:
    reader = run(corpus_tree, "024")
    frame = reader.frame()
    assert frame["epoch"].tolist() == list(range(150))
    assert frame["dice_1"].iloc[-1] == 0.9924
    assert reader.planned_epochs()[0] == 150


def test_every_run_summary_is_complete_and_finite(corpus_tree: Path) -> None:
    for row in scan(corpus_tree).to_dict(orient="records"):
        if row["epochs_completed"]:
            assert math.isfinite(row["last_ema_fg_dice"]) and 0 < row["best_ema_fg_dice"] <= 1
        assert isinstance(row["problems"], list)
