"""`nnwatch analyze` on a run folder and on a results root, as a user calls it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.synthetic_tree import write_v2_log

REPO = Path(__file__).resolve().parents[1]
CONTRACT = ["verdict", "slope_per_100_epochs", "slope_ci95", "window", "series", "min_practical_gain",
            "projected_gain_2000", "gpu_hours_2000", "reason", "epochs_completed"]


def nnwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("results")
    model = base / "Dataset004_Hippocampus" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    for fold, epochs in ((0, 1000), (1, 640)):
        log = model / f"fold_{fold}" / "training_log_2025_3_1_09_00_00.txt"
        write_v2_log(log, epochs=epochs, seed=fold, done=fold == 0)
        (log.parent / "debug.json").write_text(json.dumps({"num_epochs": "1000"}))
        old = time.time() - 3 * 86400  # the crashed fold stopped days ago
        os.utime(log, (old, old))
    return base


def test_run_dir_json_has_the_contract_keys_in_order(root: Path) -> None:
    run = root / "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    done = nnwatch("analyze", str(run), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result)[: len(CONTRACT)] == CONTRACT
    assert result["verdict"] == "plateau" and result["epochs_completed"] == 1000
    lo, hi = result["slope_ci95"]
    assert lo <= result["slope_per_100_epochs"] <= hi
    assert result["window"][1] == 999 and result["gpu_hours_2000"] > 0


def test_root_json_is_a_list_with_run_ids_and_a_resume_hint_for_the_crashed_fold(root: Path) -> None:
    done = nnwatch("analyze", str(root), "--json")
    results = {r["run_id"].rsplit("/", 1)[1]: r for r in json.loads(done.stdout)}
    assert set(results) == {"fold_0", "fold_1"}
    assert "--c" in results["fold_1"]["reason"]  # stopped at 640 of 1000: resume, don't extend


def test_thresholds_are_options(root: Path) -> None:
    run = root / "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    default = json.loads(nnwatch("analyze", str(run), "--json").stdout)
    strict = json.loads(nnwatch("analyze", str(run), "--json", "--min-practical-gain", "0.0001").stdout)
    assert strict["min_practical_gain"] == 0.0001
    assert default["verdict"] == "plateau"
    # The slope's interval lies above zero; with a tiny practical threshold it counts as improving.
    assert strict["verdict"] == ("improving" if default["slope_ci95"][0] > 0 else "plateau")


def test_scan_table_gains_the_verdict_column(root: Path) -> None:
    rows = json.loads(nnwatch("scan", str(root), "--format", "json").stdout)
    assert {r["verdict"] for r in rows} <= {"improving", "plateau", "declining", "insufficient_data"}
    assert all(r["verdict_reason"] for r in rows)
