"""Extend real nnU-Net runs on the CPU: fresh training, untouched parent, cancel, custom trainers, prediction."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_steps import LONGER, NextStepsPipeline
from conftest_trainer import tree_hashes, wait_for, wait_for_state

from trainer import JobRegistry, JobState, plan_extend, submit
from trainer.local import group_members

pytestmark = pytest.mark.nnunet

TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}

PREDICT = """
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
predictor = nnUNetPredictor(device=torch.device("cpu"), perform_everything_on_device=False, use_mirroring=False,
                            allow_tqdm=False, verbose=False, verbose_preprocessing=False)
predictor.initialize_from_trained_model_folder(sys.argv[1], use_folds=(0,), checkpoint_name="checkpoint_final.pth")
image = np.random.default_rng(0).normal(100, 20, (1, 1, 32, 32)).astype(np.float32)
seg = predictor.predict_single_npy_array(image, {"spacing": [999, 1, 1]})
print(json.dumps({"trainer": predictor.trainer_name, "shape": list(seg.shape)}))
"""


def training_log(run_dir: Path) -> str:
    logs = sorted(run_dir.glob("training_log_*.txt"))
    return logs[-1].read_text() if logs else ""


def predict_with(model_dir: Path, env: dict[str, str]) -> dict[str, object]:
    """Load the run with nnU-Net's predictor in a fresh process (trainer looked up by name) and predict."""
    completed = subprocess.run([sys.executable, "-c", PREDICT, str(model_dir)], env={**os.environ, **env},
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_extend_trains_from_scratch_in_a_new_run_and_leaves_the_parent_untouched(
        next_steps_pipeline: NextStepsPipeline) -> None:
    # The shared pipeline's extension: ``nnwatch extend PARENT --epochs 5 --device cpu --json`` on a copy of the
    # session's parent run (tests/conftest_steps.py).
    pipeline = next_steps_pipeline
    shown = pipeline.extend_shown
    assert shown["backend"] == "local" and shown["state"] == "running"
    new_model_dir = pipeline.dataset_dir / f"{LONGER}__nnUNetPlans__2d"
    assert str(shown["new_run_id"]).endswith(f"{LONGER}__nnUNetPlans__2d/fold_0")
    assert "--c" not in shown["argv"]  # type: ignore[operator]

    done = pipeline.jobs["extend"]
    assert done.job_id == shown["job_id"] and done.state is JobState.SUCCEEDED, done.reason
    run_dir = new_model_dir / "fold_0"
    # Its training's log, and the log of the pipeline's later ``--val`` of the same fold (no epochs in it).
    log = "".join(path.read_text() for path in sorted(run_dir.glob("training_log_*.txt")))
    # A fresh schedule: epoch 0 starts at nnU-Net's initial learning rate, and there are exactly N epochs.
    assert re.search(r"Epoch 0 *\n.*Current learning rate: 0\.01 *\n", log), log[-2000:]
    assert "Epoch 4" in log and "Epoch 5 " not in log
    assert json.loads((run_dir / "debug.json").read_text())["num_epochs"] == "5"
    assert (run_dir / "checkpoint_final.pth").is_file()
    assert pipeline.parent_after_extend == pipeline.parent_before_extend, "the parent run was modified"
    prediction = predict_with(new_model_dir, pipeline.env)
    assert prediction == {"trainer": LONGER, "shape": [1, 32, 32]}


def test_cancel_mid_run_stops_every_process_of_the_training(extend_parent: Path) -> None:
    before = tree_hashes(extend_parent)
    registry = JobRegistry(os.environ["NNWATCH_JOBS_DB"])
    plan = plan_extend(extend_parent, epochs=500, device="cpu")
    job = submit(plan, registry=registry, requested_by="alice")
    assert job.pid is not None
    wait_for(lambda: "Epoch 1" in training_log(plan.new_run_dir), 300, "training to be under way")
    cancelled = registry.cancel(job.job_id, "alice", grace_s=10)
    assert cancelled.state is JobState.CANCELLED and cancelled.reason == "cancelled by alice"
    assert group_members(job.pid) == [], "processes of the training survived the cancel"
    assert not (plan.new_run_dir / "checkpoint_final.pth").exists()
    assert registry.refresh()[0].state is JobState.CANCELLED
    assert tree_hashes(extend_parent) == before


CUSTOM_TRAINER = '''
import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_nnwatchCustomIters(nnUNetTrainer):
    """A lab's own trainer, outside nnU-Net's package: fewer iterations and its own marker."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_iterations_per_epoch = 4
        self.num_val_iterations_per_epoch = 2
        self.lab_marker = "custom-iters"
'''


def test_a_custom_trainer_gets_a_generated_variant_that_nnunet_finds_by_name(
        extend_parent: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = tmp_path / "lab_trainers"
    ext.mkdir()
    (ext / "lab_trainers_module.py").write_text(CUSTOM_TRAINER)
    variants = tmp_path / "nnwatch_variants"
    monkeypatch.setenv("nnUNet_extTrainer", str(ext))
    monkeypatch.setenv("NNWATCH_VARIANTS_DIR", str(variants))
    parent = extend_parent.parent.with_name("nnUNetTrainer_nnwatchCustomIters__nnUNetPlans__2d") / "fold_0"
    shutil.copytree(extend_parent, parent)

    plan = plan_extend(parent, epochs=1, device="cpu")
    assert plan.ok, plan.problems
    assert plan.new_trainer == "nnUNetTrainer_nnwatchCustomIters_1epochs"
    assert plan.env["nnUNet_extTrainer"].split(os.pathsep) == [str(ext), str(variants)]
    registry = JobRegistry(os.environ["NNWATCH_JOBS_DB"])
    job = submit(plan, registry=registry, requested_by="lab")
    assert (variants / "nnUNetTrainer_nnwatchCustomIters_1epochs.py").is_file()
    done = wait_for_state(registry, job.job_id, TERMINAL, timeout=600)
    assert done.state is JobState.SUCCEEDED, done.reason
    debug = json.loads((plan.new_run_dir / "debug.json").read_text())
    # The parent's customisation is inherited; only the schedule differs.
    assert (debug["num_epochs"], debug["num_iterations_per_epoch"], debug["lab_marker"]) == ("1", "4",
                                                                                             "custom-iters")
    prediction = predict_with(plan.new_run_dir.parent, {"nnUNet_extTrainer": plan.env["nnUNet_extTrainer"]})
    assert prediction["trainer"] == "nnUNetTrainer_nnwatchCustomIters_1epochs"
