"""Relaunch nnU-Net v2 runs with a longer schedule, run nnU-Net's next steps, and keep track of those jobs.

The flow is ``plan_extend`` (decide and check; changes nothing) → ``submit`` (record, then launch) →
``JobRegistry`` (the single source of truth: ``list_jobs``, ``get``, ``refresh`` reconciles with the
backends, ``cancel``). Backends (``local``, ``slurm``) implement one small interface in
:mod:`trainer.backends`; :mod:`trainer.selection` maps a name to one. :mod:`trainer.handoff` lets one
process record local jobs that a worker process (``nnwatch worker``) starts. ``job_evidence`` and
``JobLiveness`` (:mod:`trainer.evidence`) hand how a job ended down to monitor's stop-cause classifier.
Plans find trainer classes in nnU-Net's sources (:mod:`trainer.trainer_scan`); nnU-Net and torch are imported only
when a job is submitted, to confirm that nnU-Net finds the trainer.

The next steps (:mod:`trainer.steps`: ``plan_train_fold``, ``plan_validate``, ``plan_find_best`` →
``submit_step``) are jobs of other kinds (:class:`JobKind`) in the same registry and backends; what
``find_best`` chose is read by :func:`monitor.validation.read_best_configuration`.

Exceptions::

    ValueError ─ InvalidNameError        a name nnU-Net would not create (refused before planning)
    RuntimeError ┬ PreflightError        submit() of a plan whose blocking checks failed
                 ├ VariantError          a trainer that cannot be found or generated
                 └ BackendError          launch/poll/cancel did not work (a failed poll keeps state)
    KeyError ─ JobNotFoundError          no such job id
"""

from trainer.backends import Backend, BackendError
from trainer.checks import NPZ_WHY, Check, FoldFiles, fold_files
from trainer.commands import NnunetCommand, command_text, follow_up_commands, sbatch_preview
from trainer.evidence import JobLiveness, job_evidence
from trainer.jobs import Job, JobKind, validated_with_best
from trainer.names import InvalidNameError
from trainer.plan import ExtendPlan, PreflightError, plan_extend
from trainer.registry import JobNotFoundError, JobRegistry, default_db_path
from trainer.slurm_text import SlurmOptions, suggest_time_limit
from trainer.states import JobState
from trainer.steps import DEFAULT_FOLDS, StepPlan, expected_folds, plan_find_best, plan_train_fold, plan_validate
from trainer.submit import current_user, submit, submit_step
from trainer.variants import VariantError

__all__ = [
    "DEFAULT_FOLDS",
    "NPZ_WHY",
    "Backend",
    "BackendError",
    "Check",
    "ExtendPlan",
    "FoldFiles",
    "InvalidNameError",
    "Job",
    "JobKind",
    "JobLiveness",
    "JobNotFoundError",
    "JobRegistry",
    "JobState",
    "NnunetCommand",
    "PreflightError",
    "SlurmOptions",
    "StepPlan",
    "VariantError",
    "command_text",
    "current_user",
    "default_db_path",
    "expected_folds",
    "fold_files",
    "follow_up_commands",
    "job_evidence",
    "plan_extend",
    "plan_find_best",
    "plan_train_fold",
    "plan_validate",
    "sbatch_preview",
    "submit",
    "submit_step",
    "suggest_time_limit",
    "validated_with_best",
]
