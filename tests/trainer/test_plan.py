"""plan_extend and its pre-flight checks on file-only nnU-Net trees; the trainer lookup is nnU-Net's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_trainer import FAKE_DATASET, FakeNnunet, make_fake_nnunet
from paths import REPO

from trainer import InvalidNameError, JobRegistry, PreflightError, plan_extend, submit
from trainer.gpus import GpuInfo
from trainer.variants import VariantError, install_variant, locate_trainer, resolve_variant


def _check(plan, name: str):  # type: ignore[no-untyped-def]
    return next(check for check in plan.checks if check.name == name)


def test_dry_run_plan_for_the_default_trainer_uses_nnunets_2000_epoch_variant(fake_nnunet: FakeNnunet) -> None:
    plan = plan_extend(fake_nnunet.run_dir, device="cpu")
    assert plan.ok, plan.problems
    assert plan.new_trainer == "nnUNetTrainer_2000epochs"
    assert plan.variant is not None and plan.variant.builtin and plan.variant.module_path is None
    expected = fake_nnunet.results / FAKE_DATASET / "nnUNetTrainer_2000epochs__nnUNetPlans__2d" / "fold_0"
    assert plan.new_run_dir == expected
    assert plan.new_run_id == f"{FAKE_DATASET}/nnUNetTrainer_2000epochs__nnUNetPlans__2d/fold_0"
    assert list(plan.argv[1:]) == [FAKE_DATASET, "2d", "0", "-tr", "nnUNetTrainer_2000epochs", "-p",
                                   "nnUNetPlans", "-device", "cpu"]
    assert Path(plan.argv[0]).name == "nnUNetv2_train"
    # Trained from scratch: never continue (--c) nor load the parent's weights.
    assert "--c" not in plan.argv and "-pretrained_weights" not in plan.argv
    assert plan.env["nnUNet_results"] == str(fake_nnunet.results)
    assert plan.parent_epochs == 1000
    assert not expected.exists(), "a plan must not create the new run folder"


def test_extending_an_extended_run_unwraps_the_schedule_variant(fake_nnunet: FakeNnunet, tmp_path: Path) -> None:
    tree = make_fake_nnunet(tmp_path / "other", trainer="nnUNetTrainer_250epochs")
    plan = plan_extend(tree.run_dir, epochs=4000, device="cpu",
                       environ={**os.environ, "nnUNet_preprocessed": str(tree.preprocessed)})
    assert plan.new_trainer == "nnUNetTrainer_4000epochs"


def test_v1_runs_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    run = tmp_path / "nnUNet" / "3d_fullres" / "Task004_Hippocampus" / "nnUNetTrainerV2__nnUNetPlansv2.1" / "fold_0"
    run.mkdir(parents=True)
    plan = plan_extend(run, device="cpu")
    assert not plan.ok
    assert "nnU-Net v1 run: nnunetv2 cannot extend it" in plan.problems[0]
    assert plan.argv == ()
    with pytest.raises(PreflightError, match="v1"):
        submit(plan, registry=JobRegistry(tmp_path / "jobs.sqlite3"), requested_by="alice")


def test_a_dataset_name_with_shell_syntax_never_reaches_an_argv(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "results" / "Dataset001_x; rm -rf ~" / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0"
    run.mkdir(parents=True)
    monkeypatch.setenv("NNWATCH_JOBS_DB", str(tmp_path / "jobs.sqlite3"))
    plan = plan_extend(run, device="cpu")
    assert not plan.ok and plan.argv == ()
    assert any("refusing dataset name 'Dataset001_x; rm -rf ~'" in problem for problem in plan.problems)
    registry = JobRegistry(tmp_path / "jobs.sqlite3")
    with pytest.raises(PreflightError):
        submit(plan, registry=registry, requested_by="mallory")
    assert registry.list_jobs() == []
    with pytest.raises(InvalidNameError):
        registry.job_dir("../../etc")


def test_missing_env_vars_and_preprocessing_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_fake_nnunet(tmp_path)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(name, raising=False)
    plan = plan_extend(tree.run_dir, device="cpu")
    assert "set nnUNet_raw, nnUNet_preprocessed, nnUNet_results" in _check(plan, "nnunet_env").message
    empty = tmp_path / "empty_pre"
    empty.mkdir()
    plan = plan_extend(tree.run_dir, device="cpu", environ={
        "nnUNet_raw": str(tree.raw), "nnUNet_preprocessed": str(empty), "nnUNet_results": str(tree.results)})
    assert not plan.ok
    assert "run nnUNetv2_plan_and_preprocess" in _check(plan, "preprocessed").message


def test_missing_configuration_in_plans_is_reported(fake_nnunet: FakeNnunet) -> None:
    run = fake_nnunet.run_dir.parents[1] / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    run.mkdir(parents=True)
    plan = plan_extend(run, device="cpu")
    assert "has no configuration '3d_fullres' (it has: 2d)" in _check(plan, "preprocessed").message


def test_a_target_folder_holding_a_run_blocks(fake_nnunet: FakeNnunet) -> None:
    target = fake_nnunet.run_dir.parents[1] / "nnUNetTrainer_2000epochs__nnUNetPlans__2d" / "fold_0"
    target.mkdir(parents=True)
    (target / "checkpoint_latest.pth").write_bytes(b"x")
    plan = plan_extend(fake_nnunet.run_dir, device="cpu")
    assert not plan.ok
    message = _check(plan, "target_free").message
    assert f"an earlier attempt stopped in {target}" in message and "start over" in message
    assert plan.can_start_over and "delete or" not in message


def test_gpu_choice_and_missing_gpu(fake_nnunet: FakeNnunet) -> None:
    plan = plan_extend(fake_nnunet.run_dir, gpus=[GpuInfo(0, 500), GpuInfo(1, 30000)])
    assert plan.ok and plan.gpu == 1
    assert plan.env["CUDA_VISIBLE_DEVICES"] == "1" and plan.argv[-1] == "cuda"
    assert plan_extend(fake_nnunet.run_dir, gpu=0, gpus=[GpuInfo(0, 500), GpuInfo(1, 9)]).env[
        "CUDA_VISIBLE_DEVICES"] == "0"
    no_gpu = plan_extend(fake_nnunet.run_dir, gpus=[])
    assert not no_gpu.ok and "train on the CPU instead (device cpu" in _check(no_gpu, "gpu").message
    assert "does not exist" in _check(plan_extend(fake_nnunet.run_dir, gpu=5, gpus=[GpuInfo(0, 1)]), "gpu").message
    cpu = plan_extend(fake_nnunet.run_dir, device="cpu", gpus=[])
    assert cpu.ok and "CUDA_VISIBLE_DEVICES" not in cpu.env


def test_too_little_disk_space_blocks(fake_nnunet: FakeNnunet) -> None:
    plan = plan_extend(fake_nnunet.run_dir, device="cpu", min_free_gb=10**9)
    assert not plan.ok and "GB free" in _check(plan, "disk_space").message


def test_slurm_plan_skips_the_local_gpu_check_and_drops_gres_for_cpu(fake_nnunet: FakeNnunet) -> None:
    plan = plan_extend(fake_nnunet.run_dir, backend="slurm", gpus=[])
    assert plan.ok and plan.slurm.gres == "gpu:1" and "CUDA_VISIBLE_DEVICES" not in plan.env
    assert plan_extend(fake_nnunet.run_dir, backend="slurm", device="cpu").slurm.gres == ""


def test_generated_variant_is_written_once_and_found_by_nnunets_search(tmp_path: Path) -> None:
    folder = tmp_path / "variants"
    environ = {**os.environ, "NNWATCH_VARIANTS_DIR": str(folder), "nnUNet_extTrainer": str(folder)}
    spec = resolve_variant("nnUNetTrainerDA5", 1234, environ)
    assert spec.name == "nnUNetTrainerDA5_1234epochs" and not spec.builtin
    assert spec.ext_trainer_dir == str(folder)
    install_variant(spec, environ)
    written = folder / "nnUNetTrainerDA5_1234epochs.py"
    first_mtime = written.stat().st_mtime_ns
    install_variant(spec, environ)
    assert written.stat().st_mtime_ns == first_mtime, "installing twice must not rewrite the module"
    found = locate_trainer("nnUNetTrainerDA5_1234epochs", environ)
    assert found is not None and found.base_trainer == "nnUNetTrainerDA5" and found.base_epochs == 1234
    # Once it exists, a second extend reuses it instead of generating another.
    assert resolve_variant("nnUNetTrainerDA5", 1234, environ).builtin
    # Extending the extended run lengthens the original trainer, not the variant.
    assert resolve_variant("nnUNetTrainerDA5_1234epochs", 4000, environ).name == "nnUNetTrainerDA5_4000epochs"
    assert resolve_variant("nnUNetTrainer_1epoch", 2000, environ).name == "nnUNetTrainer_2000epochs"


def test_a_stale_variant_does_not_break_nnunets_lookup_of_other_trainers(tmp_path: Path) -> None:
    folder = tmp_path / "variants"
    folder.mkdir()
    environ = {**os.environ, "nnUNet_extTrainer": str(folder)}
    stale = resolve_variant("nnUNetTrainerDA5", 777, {**environ, "NNWATCH_VARIANTS_DIR": str(folder)})
    # Its parent's module is gone; nnU-Net imports this module before reaching zz_other.py.
    (folder / f"{stale.name}.py").write_text(stale.source.replace(stale.parent.module, "gone.module"))
    (folder / "zz_other.py").write_text(
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n"
        "class nnUNetTrainer_nnwatchOther(nnUNetTrainer):\n    pass\n")
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f\n"
            "print('found', f('nnUNetTrainer_nnwatchOther').__name__)\n"
            "try:\n    f('nnUNetTrainerDA5_777epochs')\nexcept RuntimeError:\n    print('not found')\n")
    completed = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True,
                               timeout=120, check=True)
    assert "found nnUNetTrainer_nnwatchOther" in completed.stdout.splitlines()
    assert completed.stdout.splitlines()[-1] == "not found"


def test_a_foreign_class_with_the_variant_name_is_not_reused(tmp_path: Path) -> None:
    folder = tmp_path / "ext"
    folder.mkdir()
    (folder / "impostor.py").write_text(
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n"
        "class nnUNetTrainerDA5_555epochs(nnUNetTrainer):\n    pass\n")
    with pytest.raises(VariantError, match="already exists"):
        resolve_variant("nnUNetTrainerDA5", 555, {**os.environ, "nnUNet_extTrainer": str(folder)})


def test_cli_dry_run_prints_the_plan_and_changes_nothing(fake_nnunet: FakeNnunet, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "extend", str(fake_nnunet.run_dir), "--device", "cpu", "--dry-run",
         "--json"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    shown = json.loads(completed.stdout)
    assert shown["new_trainer"] == "nnUNetTrainer_2000epochs"
    assert shown["argv"][-6:] == ["-tr", "nnUNetTrainer_2000epochs", "-p", "nnUNetPlans", "-device", "cpu"]
    assert shown["env"]["nnUNet_results"] == str(fake_nnunet.results)
    assert shown["new_run_dir"].endswith("nnUNetTrainer_2000epochs__nnUNetPlans__2d/fold_0")
    assert not Path(os.environ["NNWATCH_JOBS_DB"]).exists(), "--dry-run must not create the registry"
    assert not Path(shown["new_run_dir"]).exists()


def test_cli_refuses_to_submit_a_failing_plan(tmp_path: Path) -> None:
    run = tmp_path / "results" / "Dataset001_x; rm -rf ~" / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0"
    run.mkdir(parents=True)
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "extend", str(run), "--device", "cpu",
         "--jobs-db", str(tmp_path / "jobs.sqlite3")], cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert completed.returncode == 1
    assert "refusing dataset name 'Dataset001_x; rm -rf ~'" in completed.stderr
