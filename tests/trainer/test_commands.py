"""The lines people copy: the planned command with its GPU selection, the sbatch preview, a suggested SLURM time
limit, and nnU-Net's follow-ups (``--c`` to resume, ``--val --val_best`` only with a final checkpoint)."""

from __future__ import annotations

import shlex

from conftest_trainer import FakeNnunet

from monitor.runs import locate_run
from trainer import SlurmOptions, command_text, follow_up_commands, plan_extend, sbatch_preview, suggest_time_limit
from trainer.gpus import GpuInfo


def test_the_command_shows_the_gpu_selection_first(fake_nnunet: FakeNnunet) -> None:
    plan = plan_extend(fake_nnunet.run_dir, gpus=[GpuInfo(0, 500), GpuInfo(1, 30000)])
    text = command_text(plan)
    assert text.startswith("CUDA_VISIBLE_DEVICES=1 ")
    assert shlex.split(text.split("\\\n")[-1]) == list(plan.argv)


def test_slurm_preview_and_suggested_time_limit(fake_nnunet: FakeNnunet) -> None:
    assert suggest_time_limit(2000, 112.0) == "3-06:00:00"  # 2000 × 112 s × 1.25 = 77.8 h, rounded up
    assert suggest_time_limit(10, 5.0) == "0-01:00:00"
    assert suggest_time_limit(2000, None) is None
    plan = plan_extend(fake_nnunet.run_dir, backend="slurm", slurm=SlurmOptions(time="3-06:00:00"))
    script = sbatch_preview(plan)
    assert "#SBATCH --time=3-06:00:00" in script and "#SBATCH --gres=gpu:1" in script
    assert shlex.join(plan.argv) in script


def test_follow_ups_fit_the_files_of_the_run(fake_nnunet: FakeNnunet) -> None:
    location = locate_run(fake_nnunet.run_dir)
    assert follow_up_commands(location, stopped=True) == []
    (fake_nnunet.run_dir / "checkpoint_latest.pth").write_bytes(b"")
    (fake_nnunet.run_dir / "checkpoint_best.pth").write_bytes(b"")
    resume = follow_up_commands(location, stopped=True)
    assert [c.argv[-1] for c in resume] == ["--c"], "no --val_best without checkpoint_final.pth"
    assert resume[0].argv[1:4] == (location.dataset, "2d", "0")
    (fake_nnunet.run_dir / "checkpoint_final.pth").write_bytes(b"")
    finished = follow_up_commands(location, stopped=False)
    assert [c.argv[-2:] for c in finished] == [("--val", "--val_best")]
