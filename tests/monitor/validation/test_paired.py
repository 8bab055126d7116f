"""The paired bootstrap and the case-by-case comparison on constructed per-case tables with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from validation_summaries import v2_summary, write_summary

from monitor.synth import make_run_dir
from monitor.validation import (
    MIN_CASES,
    PairedVerdict,
    compare_model_folders,
    compare_runs,
    paired_bootstrap,
)


def test_a_constant_gain_is_better_with_a_zero_width_interval() -> None:
    first = np.linspace(0.6, 0.9, 40)
    result = paired_bootstrap(first, first + 0.01, resamples=2000)
    assert result.cases == 40 and result.better == 40 and result.worse == 0
    assert result.mean_difference == pytest.approx(0.01)
    assert result.ci95 == pytest.approx((0.01, 0.01))
    assert result.verdict is PairedVerdict.BETTER


def test_symmetric_differences_are_no_difference() -> None:
    first = np.full(60, 0.8)
    second = first + np.tile([0.02, -0.02], 30)
    result = paired_bootstrap(first, second)
    assert result.mean_difference == pytest.approx(0.0, abs=1e-12)
    low, high = result.ci95  # type: ignore[misc]
    assert low < 0 < high and (result.better, result.worse) == (30, 30)
    assert result.verdict is PairedVerdict.NO_DIFFERENCE


def test_interval_matches_the_normal_theory_width() -> None:
    """For 400 differences the bootstrap's percentile interval is close to mean ± 1.96·sd/√n (known answer)."""
    rng = np.random.default_rng(3)
    diff = rng.normal(0.004, 0.02, 400)
    first = rng.uniform(0.6, 0.9, 400)
    result = paired_bootstrap(first, first + diff, resamples=20_000, seed=1)
    half = 1.96 * diff.std(ddof=0) / math.sqrt(len(diff))
    low, high = result.ci95  # type: ignore[misc]
    assert low == pytest.approx(diff.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(diff.mean() + half, abs=0.1 * half)
    assert result.verdict is (PairedVerdict.BETTER if low > 0 else PairedVerdict.NO_DIFFERENCE)


def test_a_loss_whose_interval_excludes_zero_is_worse() -> None:
    first = np.linspace(0.7, 0.9, 30)
    second = first - np.tile([0.01, 0.012, 0.0], 10)  # a third of the cases unchanged
    result = paired_bootstrap(first, second)
    assert result.ci95 is not None and result.ci95[1] < 0 and result.verdict is PairedVerdict.WORSE
    assert result.ties == 10 and result.worse == 20


def test_seeded_and_nan_pairs_left_out() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 1, 50), rng.uniform(0.5, 1, 50)
    assert paired_bootstrap(a, b, seed=4).ci95 == paired_bootstrap(a, b, seed=4).ci95
    a[:5] = np.nan
    b[45:] = np.nan
    result = paired_bootstrap(a, b)
    assert result.cases == 40 and result.mean_difference == pytest.approx(float(np.mean(b[5:45] - a[5:45])))


def test_too_few_cases_never_give_a_verdict_and_none_is_unavailable() -> None:
    tiny = paired_bootstrap([0.5] * (MIN_CASES - 1), [0.9] * (MIN_CASES - 1))
    assert tiny.verdict is PairedVerdict.NO_DIFFERENCE and tiny.ci95 == pytest.approx((0.4, 0.4))
    empty = paired_bootstrap([math.nan], [0.5])
    assert empty.cases == 0 and empty.ci95 is None and empty.verdict is PairedVerdict.UNAVAILABLE


def test_stratified_resampling_keeps_each_folds_cases() -> None:
    """Fold A gains exactly 0.1 on every case and fold B loses 0.1: resampling within folds keeps the mean at 0."""
    first = np.full(20, 0.7)
    second = first + np.r_[np.full(10, 0.1), np.full(10, -0.1)]
    result = paired_bootstrap(first, second, groups=["A"] * 10 + ["B"] * 10)
    assert result.ci95 == pytest.approx((0.0, 0.0), abs=1e-12)
    pooled = paired_bootstrap(first, second)
    assert pooled.ci95 is not None and pooled.ci95[0] < -0.01


def _model(root: Path, trainer: str, folds: dict[int, dict[str, tuple[float, float]]]) -> Path:
    for fold, cases in folds.items():
        write_summary(make_run_dir(root, "Dataset004_Hippo", trainer, fold=fold, labels=("anterior", "posterior")),
                      v2_summary(cases))
    return root / "Dataset004_Hippo" / f"{trainer}__nnUNetPlans__3d_fullres"


def _cases(fold: int, n: int, base: float, gain: float = 0.0) -> dict[str, tuple[float, float]]:
    return {f"hippo_{fold}{k:02d}": (base + 0.01 * (k % 7) + gain, base - 0.1 + 0.01 * (k % 5) + gain)
            for k in range(n)}


def test_runs_compared_on_shared_cases_only(tmp_path: Path) -> None:
    first = _model(tmp_path, "nnUNetTrainer", {0: _cases(0, 12, 0.8)})
    second_cases = dict(list(_cases(0, 12, 0.8, gain=0.02).items())[2:])  # two cases missing
    second_cases["hippo_extra"] = (0.1, 0.1)  # and one the parent never scored
    second = _model(tmp_path, "nnUNetTrainer_2000epochs", {0: second_cases})
    result = compare_runs(first / "fold_0", second / "fold_0")
    assert result.result.cases == 10 and (result.first_only, result.second_only) == (2, 1)
    assert result.result.mean_difference == pytest.approx(0.02) and result.verdict is PairedVerdict.BETTER
    assert [c.name for c in result.per_class] == ["anterior", "posterior"]
    assert all(c.result.mean_difference == pytest.approx(0.02) for c in result.per_class)
    assert result.reason.startswith("2000 epochs: +0.020 Dice, 95 % CI +0.020 to +0.020 over 10 cases in 1 fold: "
                                    "better than nnUNetTrainer.")
    assert "3 cases scored by only one run left out" in result.reason
    data = result.to_dict()
    assert list(data)[:8] == ["cases", "mean_difference", "ci95", "better", "worse", "ties", "verdict", "per_class"]
    assert data["reason"] == result.reason and data["per_class"]["posterior"]["cases"] == 10


def test_folds_pooled_and_a_fold_with_only_pseudo_dice(tmp_path: Path) -> None:
    first = _model(tmp_path, "nnUNetTrainer", {f: _cases(f, 8, 0.8) for f in range(3)})
    rng = np.random.default_rng(5)
    noisy = {f: {k: (v[0] + rng.normal(0, 0.01), v[1] + rng.normal(0, 0.01)) for k, v in _cases(f, 8, 0.8).items()}
             for f in range(2)}
    second = _model(tmp_path, "nnUNetTrainer_2000epochs", noisy)
    make_run_dir(tmp_path, "Dataset004_Hippo", "nnUNetTrainer_2000epochs", fold=2)  # trained, never validated
    result = compare_model_folders(first, second)
    assert result.result.cases == 16 and result.folds == ("0", "1")
    assert [f.result.cases for f in result.per_fold] == [8, 8]
    assert result.verdict is PairedVerdict.NO_DIFFERENCE
    assert "in 2 folds: not distinguishable from no change" in result.reason
    assert "fold 2: only pseudo Dice for 2000 epochs" in result.reason


def test_only_pseudo_dice_says_so(tmp_path: Path) -> None:
    first = make_run_dir(tmp_path, "Dataset004_Hippo", "nnUNetTrainer")
    second = make_run_dir(tmp_path, "Dataset004_Hippo", "nnUNetTrainerDA5")
    result = compare_runs(first, second)
    assert result.verdict is PairedVerdict.UNAVAILABLE and result.pseudo_only
    assert result.reason.startswith("Only pseudo Dice to compare") and "progress-normalised" in result.reason


def test_runs_of_different_datasets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="different datasets"):
        compare_runs(make_run_dir(tmp_path, "Dataset001_A"), make_run_dir(tmp_path, "Dataset002_B"))
