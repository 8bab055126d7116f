"""`nnwatch scan` and `nnwatch curves` as a user runs them: real subprocesses, real output."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from logwriters import v2_log, v2_run, write
from paths import REPO

NNWATCH = [sys.executable, "-m", "app.cli"]


def nnwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NNWATCH, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for fold in ("0", "1"):
        run = v2_run(root, fold=fold)
        write(run / "training_log_2024_1_1_00_00_00.txt", v2_log(range(30 if fold == "0" else 12), done=fold == "0"))
        (run / "debug.json").write_text(json.dumps({"num_epochs": "1000"}))
    return root


def test_scan_json_lists_every_run_with_the_documented_columns(tree: Path) -> None:
    done = nnwatch("scan", str(tree), "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["fold"] for r in rows] == ["0", "1"]
    first = rows[0]
    for key in ("run_id", "nnunet_version", "dataset", "trainer", "plans", "configuration", "fold",
                "epochs_completed", "last_epoch", "planned_epochs", "status", "last_mean_fg_dice",
                "last_ema_fg_dice", "best_ema_fg_dice", "n_classes", "class_names", "final_validation_dice",
                "problems", "verdict"):
        assert key in first
    assert first["epochs_completed"] == 30 and first["last_epoch"] == 29 and first["planned_epochs"] == 1000
    assert first["class_names"] == ["liver", "tumour"] and first["status"] == "finished"


def test_scan_table_and_csv(tree: Path) -> None:
    table = nnwatch("scan", str(tree))
    assert table.returncode == 0 and "fold_0" in table.stdout and "finished" in table.stdout
    csv = nnwatch("scan", str(tree), "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert frame["epochs_completed"].tolist() == [30, 12]


def test_scan_uses_nnunet_results_by_default(tree: Path) -> None:
    import os

    done = nnwatch("scan", "--format", "json", env={**os.environ, "nnUNet_results": str(tree)})
    assert len(json.loads(done.stdout)) == 2


def test_empty_tree_gives_an_empty_table_and_unknown_root_exit_2(tmp_path: Path) -> None:
    empty = nnwatch("scan", str(tmp_path), "--format", "json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    missing = nnwatch("scan", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not found" in missing.stderr


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_curves_in_every_format(tree: Path, tmp_path: Path, fmt: str) -> None:
    run = tree / "Dataset001_Test/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    out = tmp_path / f"curves.{fmt}"
    done = nnwatch("curves", str(run), "--format", fmt, "-o", str(out))
    assert done.returncode == 0, done.stderr
    frame = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
    assert list(frame.columns) == ["epoch", "lr", "train_loss", "val_loss", "mean_fg_dice", "ema_fg_dice",
                                   "dice_1", "dice_2", "epoch_time_s", "epoch_end", "source"]
    assert frame["epoch"].tolist() == list(range(30))
    assert frame["dice_2"].iloc[3] == pytest.approx(0.5 + 3 / 10000 + 0.01)
    if fmt == "csv":  # what a user opening the file reads: ISO times in UTC, no float noise from the means
        text = out.read_text()
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", t) for t in frame["epoch_end"])
        assert not re.search(r"\d(0{7,}[1-9]|9{7,})", text), text.splitlines()[:3]


def test_the_dashboards_csv_downloads_are_written_as_the_cli_writes_them(tree: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    from app.dashboard.downloads import csv_button
    from monitor import load_run

    run = tree / "Dataset001_Test/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    sent: list[bytes] = []
    monkeypatch.setattr(st, "download_button", lambda *_, data, **__: sent.append(data()))
    csv_button(load_run(run).frame(), "curves", key="csv")
    assert sent == [nnwatch("curves", str(run)).stdout.encode()]


def test_curves_of_a_missing_run_is_a_usage_error(tmp_path: Path) -> None:
    done = nnwatch("curves", str(tmp_path / "fold_0"))
    assert done.returncode == 2 and "not found" in done.stderr
