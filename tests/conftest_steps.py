"""The real next-step pipeline, once per session (via tests/conftest.py): nnU-Net on the CPU through nnwatch's jobs.

Two trainers, one the extension of the other, two folds each. Fold 0 of the tiny trainer is a copy of the
session's parent run (trained without ``--npz``); fold 0 of the extension comes from an extend job started with
``nnwatch extend --json`` (the extend tests read what it printed and that the parent stayed byte for byte); both
fold-1 runs come from ``train-fold`` jobs (with ``--npz``). ``find-best`` is refused until ``validate`` jobs
have added the ``.npz`` files of both fold-0 runs; then a ``find-best`` job runs. Every job runs on the
local backend; nothing changes this process's environment (the planners get ``environ``, the CLI calls
``env``), so other tests see no trace of it. The trainer and dashboard tests assert on what it left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest_trainer import tree_hashes, wait_for, wait_for_state
from paths import REPO

from trainer import (
    Job,
    JobRegistry,
    JobState,
    PreflightError,
    StepPlan,
    plan_find_best,
    plan_train_fold,
    plan_validate,
    submit_step,
)

TINY = "nnUNetTrainer_nnwatchTiny"
LONGER = "nnUNetTrainer_nnwatchTiny_5epochs"
FOLDS = ("0", "1")
TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


@dataclass(frozen=True)
class NextStepsPipeline:
    """What the pipeline left: folders, the registry, and what nnwatch said on the way."""

    results: Path
    dataset_dir: Path
    registry_path: Path
    env: dict[str, str]
    jobs: dict[str, Job]  # by role: extend, tiny_fold1, longer_fold1, validate_tiny0, validate_longer0, find_best
    repeated_train_fold: Job  # the same train-fold asked again while it ran
    busy_error: str  # validating a fold that is being trained
    refused: StepPlan  # find-best before the fold-0 runs had npz
    refused_cli: subprocess.CompletedProcess[str]
    parent: Path  # fold 0 of the tiny trainer, the extension's parent
    extend_shown: dict[str, object]  # what ``nnwatch extend --json`` printed
    parent_before_extend: dict[str, str]  # sha256 by relative path, before the extension started...
    parent_after_extend: dict[str, str]  # ...and once it had finished (before any validation)

    def nnwatch(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``nnwatch ARGS`` in a subprocess with the pipeline's environment."""
        return nnwatch(self.env, *args)


def nnwatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _succeeded(registry: JobRegistry, job_id: str) -> Job:
    done = wait_for_state(registry, job_id, TERMINAL, timeout=1500)
    assert done.state is JobState.SUCCEEDED, f"{done.kind.value} job: {done.reason}"
    return done


@pytest.fixture(scope="session")
def next_steps_pipeline(tiny_nnunet, tiny_parent_run: Path,  # type: ignore[no-untyped-def]
                        tmp_path_factory: pytest.TempPathFactory) -> NextStepsPipeline:
    base = tmp_path_factory.mktemp("next_steps")
    results = base / "results"
    parent = results / tiny_parent_run.relative_to(tiny_nnunet.results)
    shutil.copytree(tiny_parent_run, parent)
    env = {**tiny_nnunet.env, "nnUNet_results": str(results), "NNWATCH_JOBS_DB": str(base / "jobs.sqlite3")}
    env.pop("NNWATCH_VARIANTS_DIR", None)
    registry = JobRegistry(env["NNWATCH_JOBS_DB"])
    dataset_dir, tiny_dir = parent.parents[1], parent.parent
    longer_dir = dataset_dir / f"{LONGER}__nnUNetPlans__2d"
    jobs: dict[str, Job] = {}

    # The extension (5 epochs from scratch) and the tiny trainer's missing fold 1 train side by side.
    parent_before = tree_hashes(parent)
    extended = nnwatch(env, "extend", str(parent), "--epochs", "5", "--device", "cpu", "--json")
    assert extended.returncode == 0, extended.stderr
    shown = json.loads(extended.stdout)
    jobs["extend"] = registry.get(str(shown["job_id"]))
    train_tiny1 = plan_train_fold(tiny_dir, 1, device="cpu", environ=env)
    jobs["tiny_fold1"] = submit_step(train_tiny1, registry=registry, requested_by="lab")
    wait_for(lambda: (tiny_dir / "fold_1").is_dir(), 600, "fold 1 to be created")
    repeated = submit_step(plan_train_fold(tiny_dir, 1, device="cpu", environ=env), registry=registry,
                           requested_by="bob")
    try:
        submit_step(plan_validate(tiny_dir / "fold_1", device="cpu", environ=env), registry=registry)
        busy = ""
    except PreflightError as exc:
        busy = str(exc)
    wait_for(lambda: longer_dir.is_dir(), 600, "the extension's configuration folder")
    jobs["longer_fold1"] = submit_step(plan_train_fold(longer_dir, 1, device="cpu", environ=env),
                                       registry=registry, requested_by="lab")
    for role in ("extend", "tiny_fold1", "longer_fold1"):
        jobs[role] = _succeeded(registry, jobs[role].job_id)
    parent_after = tree_hashes(parent)

    # Fold 0 of both trainers has no npz yet: find-best is refused.
    refused = plan_find_best(dataset_dir, configurations=["2d"], trainers=[TINY, LONGER], folds=FOLDS, environ=env)
    refused_cli = nnwatch(env, "find-best", str(dataset_dir), "-c", "2d", "-tr", TINY, LONGER, "-f", *FOLDS)
    for role, run_dir in (("validate_tiny0", parent), ("validate_longer0", longer_dir / "fold_0")):
        jobs[role] = submit_step(plan_validate(run_dir, device="cpu", environ=env), registry=registry,
                                 requested_by="lab")
    for role in ("validate_tiny0", "validate_longer0"):
        jobs[role] = _succeeded(registry, jobs[role].job_id)
    found = plan_find_best(dataset_dir, configurations=["2d"], trainers=[TINY, LONGER], folds=FOLDS, environ=env)
    jobs["find_best"] = _succeeded(registry, submit_step(found, registry=registry, requested_by="lab").job_id)
    assert os.environ.get("NNWATCH_JOBS_DB") != env["NNWATCH_JOBS_DB"]
    return NextStepsPipeline(results=results, dataset_dir=dataset_dir, registry_path=registry.path, env=env,
                             jobs=jobs, repeated_train_fold=repeated, busy_error=busy, refused=refused,
                             refused_cli=refused_cli, parent=parent, extend_shown=shown,
                             parent_before_extend=parent_before, parent_after_extend=parent_after)


@pytest.fixture(scope="session")
def tiny_npz_fold(next_steps_pipeline: NextStepsPipeline) -> Path:
    """A finished real 4-epoch training of the tiny trainer with ``--npz``: its fold folder. It is the pipeline's
    fold 1 (trained by a ``train-fold`` job), so the session trains it once; read it, do not change it."""
    return next_steps_pipeline.dataset_dir / f"{TINY}__nnUNetPlans__2d" / "fold_1"
