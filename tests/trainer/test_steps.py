"""Next-step jobs without training: fold-file facts, checks, exact argv, idempotency, registry migration, SLURM text."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_trainer import FAKE_DATASET, FakeNnunet, python_argv
from paths import REPO

from monitor.validation import BestConfigurationError, read_best_configuration
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
    submit,
    submit_step,
)
from trainer.registry import SCHEMA_VERSION
from trainer.slurm_text import render_sbatch_script

SLEEP = python_argv("import time; time.sleep(120)")


def finish(run_dir: Path, cases: int = 2, npz: int = 0, best: bool = True) -> Path:
    """Give a fake fold folder the files of a finished, validated run (``npz`` of its cases with softmax)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoint_final.pth").write_bytes(b"")
    if best:
        (run_dir / "checkpoint_best.pth").write_bytes(b"")
    validation = run_dir / "validation"
    validation.mkdir(exist_ok=True)
    (validation / "summary.json").write_text("{}")
    for case in range(cases):
        (validation / f"case_{case:03d}.png").write_bytes(b"")
        if case < npz:
            (validation / f"case_{case:03d}.npz").write_bytes(b"")
            (validation / f"case_{case:03d}.pkl").write_bytes(b"")
    return run_dir


def test_fold_files_says_trained_finished_validated_and_npz(fake_nnunet: FakeNnunet) -> None:
    missing = fold_files(fake_nnunet.run_dir.with_name("fold_3"))
    assert (missing.has_run, missing.checkpoint_final, missing.validation_summary, missing.npz_count) == (
        False, False, False, 0)
    training = fold_files(fake_nnunet.run_dir)
    assert training.has_run and not training.checkpoint_final and not training.validation_summary
    finish(fake_nnunet.run_dir, cases=3, npz=1)
    partial = fold_files(fake_nnunet.run_dir)
    assert (partial.checkpoint_final, partial.validation_summary, partial.validation_cases, partial.npz_count) == (
        True, True, 3, 1)
    assert not partial.npz_complete
    finish(fake_nnunet.run_dir, cases=3, npz=3)
    assert fold_files(fake_nnunet.run_dir).npz_complete


def test_validate_argv_and_why_npz_matters(fake_nnunet: FakeNnunet) -> None:
    finish(fake_nnunet.run_dir)
    plan = plan_validate(fake_nnunet.run_dir, device="cpu")
    assert plan.ok, plan.problems
    assert plan.argv[1:] == (FAKE_DATASET, "2d", "0", "-tr", "nnUNetTrainer", "-p", "nnUNetPlans", "--val", "--npz",
                             "-device", "cpu")
    assert Path(plan.argv[0]).name == "nnUNetv2_train"
    npz = next(check for check in plan.checks if check.name == "npz")
    assert npz.ok and "has no validation .npz files" in npz.message and NPZ_WHY in npz.message
    assert "find_best_configuration" in NPZ_WHY and "ensemble" in NPZ_WHY
    assert plan.env["nnUNet_results"] == str(fake_nnunet.results)

    best = plan_validate(fake_nnunet.run_dir, device="cpu", val_best=True)
    assert best.ok and best.argv[-4:] == ("--npz", "--val_best", "-device", "cpu")
    warning = next(check for check in best.checks if check.name == "val_best")
    assert not warning.blocking and "replaces the validation of the final checkpoint" in warning.message


def test_val_best_is_refused_without_checkpoint_final_and_says_why(fake_nnunet: FakeNnunet) -> None:
    (fake_nnunet.run_dir / "checkpoint_best.pth").write_bytes(b"")
    plan = plan_validate(fake_nnunet.run_dir, device="cpu", val_best=True)
    assert not plan.ok
    val_best = next(problem for problem in plan.problems if problem.startswith("--val_best"))
    assert "checkpoint_final.pth" in val_best and "#3056" in val_best
    assert any("no checkpoint_final.pth" in problem for problem in plan.problems)
    with pytest.raises(PreflightError, match="#3056"):
        plan.raise_for_problems()


def test_validate_of_a_fold_that_already_has_npz_only_warns(fake_nnunet: FakeNnunet) -> None:
    finish(fake_nnunet.run_dir, cases=2, npz=2)
    plan = plan_validate(fake_nnunet.run_dir, device="cpu")
    npz = next(check for check in plan.checks if check.name == "npz")
    assert plan.ok and not npz.ok and not npz.blocking and "already has 2 validation .npz" in npz.message


def test_train_fold_argv_and_refusals(fake_nnunet: FakeNnunet) -> None:
    model_dir = fake_nnunet.run_dir.parent
    plan = plan_train_fold(model_dir, 2, device="cpu")
    assert plan.ok, plan.problems
    assert plan.argv[1:] == (FAKE_DATASET, "2d", "2", "-tr", "nnUNetTrainer", "-p", "nnUNetPlans", "--npz",
                             "-device", "cpu")
    assert plan.target == model_dir / "fold_2" and plan.epochs == 1000  # from fold 0's debug.json
    taken = plan_train_fold(model_dir, 0, device="cpu")
    assert not taken.ok and "already holds a run" in taken.problems[0]
    beyond = plan_train_fold(model_dir, 5, device="cpu")
    assert any("fold 5 does not exist" in problem for problem in beyond.problems)
    splits = [{"train": [], "val": []}] * 7
    (fake_nnunet.preprocessed / FAKE_DATASET / "splits_final.json").write_text(json.dumps(splits))
    assert plan_train_fold(model_dir, 5, device="cpu").ok
    with pytest.raises(ValueError, match="refusing fold"):
        plan_train_fold(model_dir, "1; rm -rf ~", device="cpu")


def test_find_best_is_disabled_until_every_fold_is_finished_and_validated_with_npz(fake_nnunet: FakeNnunet) -> None:
    dataset_dir = fake_nnunet.results / FAKE_DATASET
    (fake_nnunet.preprocessed / FAKE_DATASET / "gt_segmentations").mkdir()
    plan = plan_find_best(dataset_dir, configurations=["2d"], trainers=["nnUNetTrainer", "nnUNetTrainer_500epochs"],
                          folds=[0, 1])
    assert not plan.ok
    assert plan.problems[0] == ("nnUNetTrainer__nnUNetPlans__2d: fold 0: training not finished (no "
                                "checkpoint_final.pth); fold 1: not trained (nnwatch train-fold)")
    assert plan.problems[1].startswith("nnUNetTrainer_500epochs__nnUNetPlans__2d: not trained at all")
    model_dir = fake_nnunet.run_dir.parent
    finish(fake_nnunet.run_dir, npz=0)
    finish(model_dir / "fold_1", npz=2)
    plan = plan_find_best(dataset_dir, configurations=["2d"], trainers=["nnUNetTrainer"], folds=["1", "0"])
    assert plan.problems == [f"nnUNetTrainer__nnUNetPlans__2d: fold 0: validated without --npz (nnwatch validate): "
                             f"{NPZ_WHY}"]
    finish(fake_nnunet.run_dir, npz=2)
    plan = plan_find_best(dataset_dir, configurations=["2d"], trainers=["nnUNetTrainer"], folds=["1", "0"])
    assert plan.ok, plan.problems
    assert plan.argv[1:] == (FAKE_DATASET, "-c", "2d", "-tr", "nnUNetTrainer", "-p", "nnUNetPlans", "-f", "0", "1")
    assert Path(plan.argv[0]).name == "nnUNetv2_find_best_configuration"
    assert plan.target == dataset_dir and plan.device == "cpu"
    with pytest.raises(ValueError, match="fold 'all'"):
        plan_find_best(dataset_dir, configurations=["2d"], trainers=["nnUNetTrainer"], folds=["all"])


def test_step_jobs_are_idempotent_and_one_job_writes_into_a_folder(fake_nnunet: FakeNnunet,
                                                                    job_registry: JobRegistry) -> None:
    finish(fake_nnunet.run_dir)
    validate = dataclasses.replace(plan_validate(fake_nnunet.run_dir, device="cpu"), argv=SLEEP)
    first = submit_step(validate, registry=job_registry, requested_by="alice")
    assert first.kind is JobKind.VALIDATE and first.state is JobState.RUNNING and first.requested_by == "alice"
    assert submit_step(validate, registry=job_registry, requested_by="bob").job_id == first.job_id
    extend = dataclasses.replace(plan_extend(fake_nnunet.run_dir, device="cpu"), argv=SLEEP)
    assert submit(extend, registry=job_registry, requested_by="carol").kind is JobKind.EXTEND
    assert len(job_registry.list_jobs({JobState.RUNNING})) == 2  # an extend writes elsewhere
    fold1 = dataclasses.replace(plan_train_fold(fake_nnunet.run_dir.parent, 1, device="cpu"), argv=SLEEP)
    training = submit_step(fold1, registry=job_registry, requested_by="alice")
    on_fold1 = dataclasses.replace(validate, target=fold1.target, target_id=fold1.target_id)
    with pytest.raises(PreflightError, match=f"job {training.job_id} \\(train_fold, running\\)"):
        submit_step(on_fold1, registry=job_registry)
    job_registry.cancel(first.job_id, "alice", grace_s=2)
    assert submit_step(validate, registry=job_registry, requested_by="bob").job_id != first.job_id


def test_a_trainer_found_in_the_sources_that_nnunet_cannot_import_starts_no_job(
        fake_nnunet: FakeNnunet, job_registry: JobRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "ext_trainers"
    extra.mkdir()
    (extra / "broken_trainer.py").write_text(
        "import a_module_that_is_not_installed\n"
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n"
        "class BrokenTrainer(nnUNetTrainer):\n    pass\n")
    monkeypatch.setenv("nnUNet_extTrainer", str(extra))
    run_dir = fake_nnunet.results / FAKE_DATASET / "BrokenTrainer__nnUNetPlans__2d" / "fold_0"
    shutil.copytree(fake_nnunet.run_dir, run_dir)
    finish(run_dir)
    plan = dataclasses.replace(plan_validate(run_dir, device="cpu"), argv=SLEEP)
    assert next(c for c in plan.checks if c.name == "trainer").ok  # the sources define it
    with pytest.raises(PreflightError, match="nnU-Net cannot import trainer\\(s\\) BrokenTrainer"):
        submit_step(plan, registry=job_registry)
    assert job_registry.list_jobs() == []


V1_SCHEMA = """
CREATE TABLE jobs (job_id TEXT PRIMARY KEY, state TEXT NOT NULL, parent_run_id TEXT NOT NULL,
    parent_path TEXT NOT NULL, new_run_id TEXT NOT NULL, new_run_path TEXT NOT NULL, new_trainer TEXT NOT NULL,
    epochs INTEGER NOT NULL, backend TEXT NOT NULL, device TEXT NOT NULL, requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL, argv TEXT NOT NULL, env TEXT NOT NULL, job_dir TEXT NOT NULL, log_path TEXT NOT NULL,
    options TEXT NOT NULL, backend_job_id TEXT, pid INTEGER, pid_start_ticks INTEGER, boot_id TEXT, host TEXT,
    exit_code INTEGER, reason TEXT, started_at TEXT, finished_at TEXT, updated_at TEXT, cancel_requested_by TEXT,
    cancel_requested_at TEXT);
CREATE UNIQUE INDEX one_active_extend_per_parent ON jobs (parent_path, epochs) WHERE state IN ('queued', 'running');
CREATE UNIQUE INDEX one_active_job_per_new_run ON jobs (new_run_path) WHERE state IN ('queued', 'running');
INSERT INTO jobs VALUES ('0123456789ab', 'running', 'D/T__P__2d/fold_0', '/r/D/T__P__2d/fold_0',
    'D/T_2000epochs__P__2d/fold_0', '/r/D/T_2000epochs__P__2d/fold_0', 'T_2000epochs', 2000, 'slurm', 'cuda',
    'alice', '2026-01-01T00:00:00+00:00', '["nnUNetv2_train"]', '{}', '/j', '/j/job.log', '{}', '17', NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""


def test_a_registry_file_without_job_kinds_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    registry = JobRegistry(path)
    old = registry.get("0123456789ab")
    assert old.kind is JobKind.EXTEND and old.epochs == 2000 and old.state is JobState.RUNNING
    assert registry.active_job_for("/r/D/T__P__2d/fold_0", 2000) == old
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[0]: row[1] for row in db.execute("SELECT name, sql FROM sqlite_master WHERE type='index'")}
    assert "one_active_extend_per_parent" not in indexes
    assert "kind = 'extend'" in indexes["one_active_extend_per_parent_run"]
    JobRegistry(path)  # opening again changes nothing
    assert registry.get("0123456789ab") == old


def test_sbatch_script_of_a_step_says_what_it_does_and_runs_the_exact_argv(fake_nnunet: FakeNnunet) -> None:
    finish(fake_nnunet.run_dir)
    plan = plan_validate(fake_nnunet.run_dir, backend="slurm", device="cuda")
    assert plan.ok, plan.problems
    script = render_sbatch_script(job_name="nnwatch-0123456789ab", output="/jobs/x/job.log", options=plan.slurm,
                                  argv=plan.argv, env=plan.env, exit_code_path="/jobs/x/exit_code",
                                  description=plan.description)
    assert "#SBATCH --gres=gpu:1" in script.splitlines()
    assert f"# Generated by nnwatch: {plan.description}." in script.splitlines()
    assert shlex.join(plan.argv) in script.splitlines()
    assert f"export nnUNet_results={fake_nnunet.results}" in script.splitlines()
    with pytest.raises(ValueError, match="one line"):
        render_sbatch_script(job_name="x", output="/o", options=plan.slurm, argv=plan.argv, env={},
                             exit_code_path="/e", description="two\nlines")


def test_cli_dry_runs_print_the_exact_command(fake_nnunet: FakeNnunet) -> None:
    (fake_nnunet.preprocessed / FAKE_DATASET / "gt_segmentations").mkdir()
    finish(fake_nnunet.run_dir, npz=2)
    dataset_dir = fake_nnunet.results / FAKE_DATASET
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "find-best", str(dataset_dir), "-c", "2d", "-tr", "nnUNetTrainer",
         "-f", "0", "--backend", "slurm", "--slurm-partition", "cpu", "--dry-run", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    shown = json.loads(completed.stdout)
    assert shown["kind"] == "find_best" and shown["argv"][1:] == [FAKE_DATASET, "-c", "2d", "-tr", "nnUNetTrainer",
                                                                   "-p", "nnUNetPlans", "-f", "0"]
    assert shown["slurm"]["gres"] == "" and shown["slurm"]["partition"] == "cpu"
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(fake_nnunet.run_dir.with_name("fold_1")), "--val-best",
         "--device", "cpu", "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 2 and "run folder not found" in completed.stderr


def test_best_configuration_result_bad_input(tmp_path: Path) -> None:
    assert read_best_configuration(tmp_path) is None
    (tmp_path / "inference_information.json").write_text('{"folds": [0, 1], "best_model_or_ens')
    with pytest.raises(BestConfigurationError, match="not a complete find_best_configuration result"):
        read_best_configuration(tmp_path)
    info = {"folds": [0], "dataset_name_or_id": "Dataset001_X", "all_results": {"A__P__2d": float("nan")},
            "best_model_or_ensemble": {"result_on_crossval_pre_pp": 0.5, "result_on_crossval_post_pp": 0.5,
                                       "postprocessing_file": "/pp.pkl", "some_plans_file": "/plans.json",
                                       "selected_model_or_models": [{"configuration": "2d", "trainer": "A",
                                                                     "plans_identifier": "P"}]}}
    (tmp_path / "inference_information.json").write_text(json.dumps(info))
    with pytest.raises(BestConfigurationError, match="the Dice of A__P__2d is nan"):
        read_best_configuration(tmp_path)
