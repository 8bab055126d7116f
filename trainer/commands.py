"""Exact shell lines for people to copy: the planned extend, its sbatch script, and nnU-Net's own follow-ups
(resume a stopped run with ``--c``, validate with ``checkpoint_best`` with ``--val --val_best``).

Only for display: nnwatch itself always launches with argv lists. Every word is quoted with ``shlex``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from monitor.runs import RunLocation
from trainer.plan import ExtendPlan, nnunet_train_executable
from trainer.slurm_text import render_sbatch_script

__all__ = ["NnunetCommand", "command_text", "follow_up_commands", "sbatch_preview"]

_FIRST = ("CUDA_VISIBLE_DEVICES",)


def command_text(plan: ExtendPlan) -> str:
    """The environment (GPU selection first) and the ``nnUNetv2_train`` line of a plan, ready to paste."""
    names = sorted(plan.env, key=lambda name: (name not in _FIRST, name))
    env = " ".join(f"{name}={shlex.quote(plan.env[name])}" for name in names)
    return (env + " \\\n  " if env else "") + shlex.join(plan.argv)


def sbatch_preview(plan: ExtendPlan) -> str:
    """The batch script a SLURM extend submits, with placeholders for the job folder it does not have yet."""
    return render_sbatch_script(job_name="nnwatch-JOBID", output="JOB_FOLDER/job.log", options=plan.slurm,
                                argv=plan.argv, env=plan.env, exit_code_path="JOB_FOLDER/exit_code")


@dataclass(frozen=True)
class NnunetCommand:
    """One follow-up command for a run: what it is for, and the line to run."""

    purpose: str
    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


def follow_up_commands(location: RunLocation, *, stopped: bool) -> list[NnunetCommand]:
    """nnU-Net's own commands that fit a v2 run: resume it when it ``stopped`` before its schedule ended
    (``--c`` continues from ``checkpoint_latest.pth``); validate with the best checkpoint when training ended
    (``--val --val_best``, which needs ``checkpoint_final.pth``). Empty for v1 runs."""
    if location.nnunet_version != "v2":
        return []
    executable = Path(nnunet_train_executable() or "nnUNetv2_train").name
    base = (executable, location.dataset, location.configuration, location.fold, "-tr", location.trainer, "-p",
            location.plans)
    commands = []
    folder = location.path
    if stopped and (folder / "checkpoint_latest.pth").exists():
        commands.append(NnunetCommand("Resume the stopped run from its last checkpoint (same schedule)",
                                      (*base, "--c")))
    if (folder / "checkpoint_final.pth").exists() and (folder / "checkpoint_best.pth").exists():
        commands.append(NnunetCommand("Validate with the best checkpoint instead of the final one (overwrites "
                                      "the validation folder)", (*base, "--val", "--val_best")))
    return commands
