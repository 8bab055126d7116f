"""nnU-Net's next steps as real CPU jobs: what nnwatch refused, ran and shows agrees with nnU-Net's own files.

The pipeline itself (train missing folds, validate with --npz, find the best configuration, all through
nnwatch's jobs on the local backend) is the session fixture ``next_steps_pipeline`` (tests/conftest_steps.py).
"""

from __future__ import annotations

import json

import pytest
from conftest_steps import FOLDS, LONGER, TINY, NextStepsPipeline

from monitor.validation import read_best_configuration
from trainer import NPZ_WHY, JobKind, fold_files

pytestmark = pytest.mark.nnunet


def test_jobs_ran_with_the_exact_commands_and_left_npz(next_steps_pipeline: NextStepsPipeline) -> None:
    pipeline = next_steps_pipeline
    jobs = pipeline.jobs
    assert {role: job.kind for role, job in jobs.items()} == {
        "extend": JobKind.EXTEND, "tiny_fold1": JobKind.TRAIN_FOLD, "longer_fold1": JobKind.TRAIN_FOLD,
        "validate_tiny0": JobKind.VALIDATE, "validate_longer0": JobKind.VALIDATE, "find_best": JobKind.FIND_BEST}
    assert jobs["tiny_fold1"].argv[1:] == ("Dataset971_NnwatchTiny", "2d", "1", "-tr", TINY, "-p", "nnUNetPlans",
                                           "--npz", "-device", "cpu")
    assert jobs["validate_longer0"].argv[1:] == ("Dataset971_NnwatchTiny", "2d", "0", "-tr", LONGER, "-p",
                                                 "nnUNetPlans", "--val", "--npz", "-device", "cpu")
    assert jobs["find_best"].argv[1:] == ("Dataset971_NnwatchTiny", "-c", "2d", "-tr", TINY, LONGER, "-p",
                                          "nnUNetPlans", "-f", *FOLDS)
    # Asked twice while it ran: the same job; validating the fold it trains: refused, naming the job.
    assert pipeline.repeated_train_fold.job_id == jobs["tiny_fold1"].job_id
    assert f"job {jobs['tiny_fold1'].job_id} (train_fold" in pipeline.busy_error
    for trainer in (TINY, LONGER):
        for fold in FOLDS:
            files = fold_files(pipeline.dataset_dir / f"{trainer}__nnUNetPlans__2d" / f"fold_{fold}")
            assert files.checkpoint_final and files.validation_summary and files.npz_complete, files


def test_find_best_was_refused_until_every_fold_had_npz(next_steps_pipeline: NextStepsPipeline) -> None:
    refused = next_steps_pipeline.refused
    assert not refused.ok
    assert [p.split(":")[0] for p in refused.problems] == [f"{TINY}__nnUNetPlans__2d", f"{LONGER}__nnUNetPlans__2d"]
    assert all("fold 0: validated without --npz" in p and NPZ_WHY in p for p in refused.problems)
    assert not any("fold 1" in p for p in refused.problems)
    assert next_steps_pipeline.refused_cli.returncode == 1
    assert "validated without --npz" in next_steps_pipeline.refused_cli.stderr


def test_the_shown_result_is_what_nnunet_wrote(next_steps_pipeline: NextStepsPipeline) -> None:
    dataset_dir = next_steps_pipeline.dataset_dir
    completed = next_steps_pipeline.nnwatch("find-best", str(dataset_dir), "--show", "--json")
    assert completed.returncode == 0, completed.stderr
    shown = json.loads(completed.stdout)
    info = json.loads((dataset_dir / "inference_information.json").read_text())
    chosen = info["best_model_or_ensemble"]
    assert shown["selected"] == [{"trainer": m["trainer"], "plans": m["plans_identifier"],
                                  "configuration": m["configuration"]} for m in chosen["selected_model_or_models"]]
    assert shown["all_results"] == info["all_results"]
    assert shown["dice_before_postprocessing"] == chosen["result_on_crossval_pre_pp"]
    assert shown["dice_after_postprocessing"] == chosen["result_on_crossval_post_pp"]
    assert shown["postprocessing_file"] == chosen["postprocessing_file"]
    assert shown["folds"] == list(FOLDS)
    assert shown["dice_before_postprocessing"] == max(info["all_results"].values())
    for trainer in (TINY, LONGER):  # each model's CV Dice is nnU-Net's accumulated cross-validation
        summary = dataset_dir / f"{trainer}__nnUNetPlans__2d" / "crossval_results_folds_0_1" / "summary.json"
        assert shown["all_results"][f"{trainer}__nnUNetPlans__2d"] == json.loads(
            summary.read_text())["foreground_mean"]["Dice"]
    instructions = (dataset_dir / "inference_instructions.txt").read_text()
    assert shown["commands"] == [line.strip() for line in instructions.splitlines() if line.startswith("nnUNetv2_")]
    assert shown["commands"][0].startswith("nnUNetv2_predict -d Dataset971_NnwatchTiny")
    assert shown["commands"][-1].startswith("nnUNetv2_apply_postprocessing")
    best = read_best_configuration(dataset_dir)
    assert best is not None and best.best_identifier == shown["best"] and best.best_identifier in info["all_results"]
    text = next_steps_pipeline.nnwatch("find-best", str(dataset_dir), "--show")
    assert best.best_identifier in text.stdout and shown["commands"][0] in text.stdout
