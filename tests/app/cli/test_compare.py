"""`nnwatch compare` on two runs and, with --folds, on two configuration folders, as a user calls it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

from monitor.synth import CurveSpec, RunSpec, write_run
from monitor.validation import read_summary

CONTRACT = ["cases", "mean_difference", "ci95", "better", "worse"]
LABELS = ("anterior", "posterior")


def nnwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parent configuration (folds 0–2) and its 2000-epoch extension (folds 0–1 validated, 2 still running)."""
    base = tmp_path_factory.mktemp("results")
    for fold in range(3):
        write_run(base, RunSpec("Dataset004_Hippocampus", "nnUNetTrainer", "3d_fullres", fold, 100,
                                CurveSpec((0.86, 0.8), timescale=0.3, seed=fold)), labels=LABELS)
        write_run(base, RunSpec("Dataset004_Hippocampus", "nnUNetTrainer_2000epochs", "3d_fullres", fold, 200,
                                CurveSpec((0.88, 0.82), timescale=0.3, seed=10 + fold),
                                state="running" if fold == 2 else "finished", epochs_done=120 if fold == 2 else None),
                  labels=LABELS)
    return base / "Dataset004_Hippocampus"


def _pair(root: Path, fold: int = 0) -> tuple[Path, Path]:
    return (root / "nnUNetTrainer__nnUNetPlans__3d_fullres" / f"fold_{fold}",
            root / "nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres" / f"fold_{fold}")


def test_two_runs_as_json(root: Path) -> None:
    parent, child = _pair(root)
    done = nnwatch("compare", str(parent), str(child), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result)[:5] == CONTRACT and {"per_class", "verdict", "reason"} <= set(result)
    a = read_summary(parent / "validation" / "summary.json")
    b = read_summary(child / "validation" / "summary.json")
    expected = sum(y.foreground_dice - x.foreground_dice for x, y in zip(a.cases, b.cases)) / len(a.cases)
    assert result["cases"] == len(a.cases) == 8
    assert result["mean_difference"] == pytest.approx(expected)
    low, high = result["ci95"]
    assert low <= result["mean_difference"] <= high
    assert result["better"] + result["worse"] + result["ties"] == 8
    assert set(result["per_class"]) == set(LABELS)
    assert result["verdict"] in ("better", "worse", "no_difference")
    assert (result["verdict"] == "no_difference") == (low <= 0 <= high or result["cases"] < result["min_cases"])
    assert result["reason"].startswith("2000 epochs: ") and "over 8 cases in 1 fold" in result["reason"]


def test_text_output_names_both_runs_and_the_resamples(root: Path) -> None:
    parent, child = _pair(root)
    done = nnwatch("compare", str(parent), str(child), "--resamples", "500", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "(2000 epochs)" in done.stdout and "posterior" in done.stdout
    assert "500 resamples of the cases, seed 3" in done.stdout


def test_folds_pools_the_shared_validated_folds(root: Path) -> None:
    done = nnwatch("compare", "--folds", str(root / "nnUNetTrainer__nnUNetPlans__3d_fullres"),
                   str(root / "nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["cases"] == 16 and result["folds"] == ["0", "1"]
    assert [f["fold"] for f in result["per_fold"]] == ["0", "1"]
    assert "fold 2: only pseudo Dice for 2000 epochs" in result["reason"]


def test_a_running_extension_has_only_pseudo_dice(root: Path) -> None:
    parent, child = _pair(root, 2)
    result = json.loads(nnwatch("compare", str(parent), str(child), "--json").stdout)
    assert result["verdict"] == "unavailable" and result["pseudo_dice_only"] is True and result["cases"] == 0
    assert result["ci95"] is None and "Only pseudo Dice" in result["reason"]


@pytest.mark.parametrize("args, words", [
    (("compare", "/nonexistent/fold_0", "/nonexistent/fold_1"), "folder not found"),
    (("compare", "--folds", "{parent}", "{child}"), "not fold_N folders"),
    (("compare", "{model}", "{child}"), "with --folds"),
])
def test_usage_errors_exit_2(root: Path, args: tuple[str, ...], words: str) -> None:
    parent, child = _pair(root)
    paths = {"parent": str(parent), "child": str(child), "model": str(parent.parent)}
    done = nnwatch(*(a.format(**paths) for a in args))
    assert done.returncode == 2 and words in done.stderr
