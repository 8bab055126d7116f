"""nnU-Net's next steps as real jobs on the CPU: train missing folds, validate with --npz, find the best configuration.

Two trainers, one the extension of the other, two folds each: fold 0 of the tiny trainer is the session's
parent run (trained without ``--npz``), fold 0 of the extension comes from ``nnwatch extend``; the two
fold-1 runs come from ``train-fold`` jobs. ``find-best`` stays refused until ``validate`` jobs have added
the ``.npz`` files, and what nnwatch shows afterwards is compared with the files nnU-Net wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_trainer import wait_for, wait_for_state
from paths import REPO

from trainer import (
    NPZ_WHY,
    JobKind,
    JobRegistry,
    JobState,
    PreflightError,
    fold_files,
    plan_extend,
    plan_find_best,
    plan_train_fold,
    plan_validate,
    read_best_configuration,
    submit,
    submit_step,
)

pytestmark = pytest.mark.nnunet

TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
TINY = "nnUNetTrainer_nnwatchTiny"
LONGER = "nnUNetTrainer_nnwatchTiny_5epochs"


def nnwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)


def succeeded(registry: JobRegistry, job_id: str) -> None:
    done = wait_for_state(registry, job_id, TERMINAL, timeout=1500)
    assert done.state is JobState.SUCCEEDED, f"{done.kind.value} job: {done.reason}"


def test_train_validate_and_find_best_through_nnwatch_jobs(extend_parent: Path) -> None:
    registry = JobRegistry(os.environ["NNWATCH_JOBS_DB"])
    dataset_dir, tiny_dir = extend_parent.parents[1], extend_parent.parent
    longer_dir = dataset_dir / f"{LONGER}__nnUNetPlans__2d"
    folds = ("0", "1")

    # The extension (5 epochs from scratch) and the tiny trainer's missing fold 1 train side by side.
    extension = plan_extend(extend_parent, epochs=5, device="cpu")
    extend_job = submit(extension, registry=registry, requested_by="lab")
    tiny_fold1 = submit_step(plan_train_fold(tiny_dir, 1, device="cpu"), registry=registry, requested_by="lab")
    assert tiny_fold1.kind is JobKind.TRAIN_FOLD and "--npz" in tiny_fold1.argv
    # Idempotent: asking again returns the running job; validating a fold that is training is refused.
    again = submit_step(plan_train_fold(tiny_dir, 1, device="cpu"), registry=registry, requested_by="bob")
    assert again.job_id == tiny_fold1.job_id
    wait_for(lambda: (tiny_dir / "fold_1").is_dir(), 600, "fold 1 to be created")
    with pytest.raises(PreflightError, match=f"{tiny_fold1.job_id} \\(train_fold"):
        submit_step(plan_validate(tiny_dir / "fold_1", device="cpu"), registry=registry)
    wait_for(lambda: longer_dir.is_dir(), 600, "the extension's configuration folder")
    longer_fold1 = submit_step(plan_train_fold(longer_dir, 1, device="cpu"), registry=registry, requested_by="lab")
    for job in (extend_job, tiny_fold1, longer_fold1):
        succeeded(registry, job.job_id)

    # Fold 0 of both trainers was validated without --npz: find-best is refused, and says why npz matters.
    assert fold_files(tiny_dir / "fold_1").npz_complete and fold_files(longer_dir / "fold_1").npz_complete
    assert not fold_files(extend_parent).npz_complete
    refused = plan_find_best(dataset_dir, configurations=["2d"], trainers=[TINY, LONGER], folds=folds)
    assert not refused.ok
    assert [p.split(":")[0] for p in refused.problems] == [f"{TINY}__nnUNetPlans__2d", f"{LONGER}__nnUNetPlans__2d"]
    assert all("fold 0: validated without --npz" in p and NPZ_WHY in p for p in refused.problems)
    shown = nnwatch("find-best", str(dataset_dir), "-c", "2d", "-tr", TINY, LONGER, "-f", *folds, "--json")
    assert shown.returncode == 1 and "validated without --npz" in shown.stderr

    validations = []
    for run_dir in (extend_parent, longer_dir / "fold_0"):
        completed = nnwatch("validate", str(run_dir), "--device", "cpu", "--json")
        assert completed.returncode == 0, completed.stderr
        validations.append(json.loads(completed.stdout))
    assert all(v["kind"] == "validate" and v["argv"][-4:] == ["--val", "--npz", "-device", "cpu"]
               for v in validations)
    for shown_job in validations:
        succeeded(registry, shown_job["job_id"])
    assert fold_files(extend_parent).npz_complete and fold_files(longer_dir / "fold_0").npz_complete

    completed = nnwatch("find-best", str(dataset_dir), "-c", "2d", "-tr", TINY, LONGER, "-f", *folds, "--json")
    assert completed.returncode == 0, completed.stderr
    succeeded(registry, json.loads(completed.stdout)["job_id"])

    # What nnwatch shows is what nnU-Net wrote.
    completed = nnwatch("find-best", str(dataset_dir), "--show", "--json")
    assert completed.returncode == 0, completed.stderr
    shown_best = json.loads(completed.stdout)
    info = json.loads((dataset_dir / "inference_information.json").read_text())
    chosen = info["best_model_or_ensemble"]
    assert shown_best["selected"] == [{"trainer": m["trainer"], "plans": m["plans_identifier"],
                                       "configuration": m["configuration"]}
                                      for m in chosen["selected_model_or_models"]]
    assert shown_best["all_results"] == info["all_results"]
    assert shown_best["dice_before_postprocessing"] == chosen["result_on_crossval_pre_pp"]
    assert shown_best["dice_after_postprocessing"] == chosen["result_on_crossval_post_pp"]
    assert shown_best["postprocessing_file"] == chosen["postprocessing_file"]
    assert shown_best["folds"] == ["0", "1"]
    assert shown_best["dice_before_postprocessing"] == max(info["all_results"].values())
    for trainer in (TINY, LONGER):
        summary = dataset_dir / f"{trainer}__nnUNetPlans__2d" / "crossval_results_folds_0_1" / "summary.json"
        cv_dice = json.loads(summary.read_text())["foreground_mean"]["Dice"]
        assert shown_best["all_results"][f"{trainer}__nnUNetPlans__2d"] == cv_dice
    instructions = (dataset_dir / "inference_instructions.txt").read_text()
    assert shown_best["commands"] == [line.strip() for line in instructions.splitlines()
                                      if line.startswith("nnUNetv2_")]
    assert shown_best["commands"][0].startswith("nnUNetv2_predict -d Dataset971_NnwatchTiny")
    assert shown_best["commands"][-1].startswith("nnUNetv2_apply_postprocessing")
    best = read_best_configuration(dataset_dir)
    assert best is not None and best.best_identifier in info["all_results"]
    text = nnwatch("find-best", str(dataset_dir), "--show")
    assert best.best_identifier in text.stdout and shown_best["commands"][0] in text.stdout
    assert [job.kind for job in registry.list_jobs()].count(JobKind.VALIDATE) == 2
