"""Fixtures for the trainer/ tests (imported by tests/conftest.py).

* ``slurm_cluster`` (session): a real single-node SLURM cluster, skipped when its binaries are absent.
* ``fake_nnunet`` (function): an nnU-Net folder layout with plans, a preprocessed-data folder and one
  parent run, enough for every pre-flight check; nnU-Net env vars, ``NNWATCH_JOBS_DB`` and
  ``NNWATCH_VARIANTS_DIR`` point into ``tmp_path``.
* ``extend_parent`` (function): a copy of the session's real tiny parent run in a private results root,
  with the env vars set, so extends land in a tree no other test scans.
* ``job_registry`` (function): a registry in ``tmp_path``; any job still active at teardown is cancelled,
  so a failing test leaves no training behind.
* ``slurm_time_limit_job`` (session): a SLURM job with the shortest time limit SLURM has (1 minute), submitted
  with the first SLURM test (tests/trainer/test_slurm.py's ``cluster``) so that its minute passes while the
  other SLURM tests run; the stop-evidence test reads how it ended.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.runs import parse_run_path
from trainer import ExtendPlan, Job, JobRegistry, JobState, SlurmOptions, submit

FAKE_DATASET = "Dataset999_NnwatchFake"


@dataclass(frozen=True)
class FakeNnunet:
    """Paths of a file-only nnU-Net tree (nothing in it can actually be trained)."""

    raw: Path
    preprocessed: Path
    results: Path
    run_dir: Path


def make_fake_nnunet(base: Path, trainer: str = "nnUNetTrainer", parent_epochs: int = 1000) -> FakeNnunet:
    """Write plans, a preprocessed folder and a parent fold folder with ``debug.json``."""
    raw, preprocessed, results = base / "raw", base / "preprocessed", base / "results"
    data = preprocessed / FAKE_DATASET / "nnUNetPlans_2d"
    data.mkdir(parents=True)
    (data / "case_000.npz").write_bytes(b"")
    plans = {"dataset_name": FAKE_DATASET, "plans_name": "nnUNetPlans",
             "configurations": {"2d": {"data_identifier": "nnUNetPlans_2d"}}}
    (preprocessed / FAKE_DATASET / "nnUNetPlans.json").write_text(json.dumps(plans))
    (preprocessed / FAKE_DATASET / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))
    (raw / FAKE_DATASET).mkdir(parents=True)
    run_dir = results / FAKE_DATASET / f"{trainer}__nnUNetPlans__2d" / "fold_0"
    run_dir.mkdir(parents=True)
    (run_dir / "debug.json").write_text(json.dumps({"num_epochs": parent_epochs}))
    (run_dir / "training_log_2024_1_1_00_00_00.txt").write_text("Epoch 0\nCurrent learning rate: 0.01\n")
    return FakeNnunet(raw=raw, preprocessed=preprocessed, results=results, run_dir=run_dir)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds (no fixed sleeps); fail naming ``what`` after ``timeout`` s.

    A file the condition reads may not exist yet (slurmd creates a job's output file only once the job
    step starts, a moment after squeue already says RUNNING): that counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def refreshed(registry: JobRegistry, job_id: str) -> Job:
    """The job after one reconciliation pass."""
    registry.refresh()
    return registry.get(job_id)


def wait_for_state(registry: JobRegistry, job_id: str, states: set[JobState], timeout: float = 60.0) -> Job:
    """Reconcile until the job reaches one of ``states``; the job's log tail is in the failure message."""
    try:
        wait_for(lambda: refreshed(registry, job_id).state in states, timeout, f"job {job_id} to reach {states}")
    except AssertionError as exc:
        job = registry.get(job_id)
        tail = Path(job.log_path).read_text()[-3000:] if Path(job.log_path).exists() else "(no log)"
        raise AssertionError(f"{exc}; it is {job.state.value} ({job.reason})\n{tail}") from None
    return registry.get(job_id)


def python_argv(code: str) -> tuple[str, ...]:
    """A short real command for jobs whose content does not matter (sleep, exit with a code)."""
    return (sys.executable, "-c", code)


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path: byte-for-byte comparison of a run."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def with_argv(plan: ExtendPlan, argv: tuple[str, ...]) -> ExtendPlan:
    """The same plan running another (real, short) command: registry and backends are unchanged."""
    return dataclasses.replace(plan, argv=argv)


@pytest.fixture
def fake_nnunet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNnunet:
    tree = make_fake_nnunet(tmp_path / "nnunet")
    monkeypatch.setenv("nnUNet_raw", str(tree.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(tree.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(tree.results))
    monkeypatch.setenv("NNWATCH_JOBS_DB", str(tmp_path / "jobs" / "jobs.sqlite3"))
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    # Variants generated for the fake tree (e.g. 3000 epochs) go here, not into the venv's nnU-Net.
    monkeypatch.setenv("NNWATCH_VARIANTS_DIR", str(tmp_path / "variants"))
    return tree


@pytest.fixture
def job_registry(tmp_path: Path) -> Iterator[JobRegistry]:
    registry = JobRegistry(tmp_path / "jobs" / "jobs.sqlite3")
    yield registry
    for job in registry.list_jobs({JobState.QUEUED, JobState.RUNNING}):
        registry.cancel(job.job_id, "test-teardown", grace_s=2.0)


@pytest.fixture
def extend_parent(tiny_nnunet, tiny_parent_run: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the real tiny parent run under ``tmp_path/results`` (same relative layout)."""
    relative = tiny_parent_run.relative_to(tiny_nnunet.results)
    copy = tmp_path / "results" / relative
    shutil.copytree(tiny_parent_run, copy)
    for name, value in tiny_nnunet.env.items():
        if name.startswith("nnUNet_") or name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("nnUNet_def_n_proc", "1")  # nnU-Net's validation export pool: 8 processes otherwise
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")
    monkeypatch.setenv("NNWATCH_JOBS_DB", str(tmp_path / "jobs" / "jobs.sqlite3"))
    monkeypatch.delenv("NNWATCH_VARIANTS_DIR", raising=False)
    return copy


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real slurmctld + slurmd + munged under a temp folder; stopped by pid at the end."""
    from slurm_cluster import missing_requirements, start_cluster

    missing = missing_requirements()
    if missing:
        pytest.skip(f"SLURM test cluster needs {', '.join(missing)} "
                    "(apt-get install -y slurm-wlm munge)")
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True)
class SlurmTimeLimitJob:
    """A job that runs until SLURM's 1-minute time limit ends it, and where its run would be."""

    tree: FakeNnunet
    registry: JobRegistry
    plan: ExtendPlan
    job: Job


@pytest.fixture(scope="session")
def slurm_time_limit_job(slurm_cluster, tmp_path_factory: pytest.TempPathFactory) -> SlurmTimeLimitJob:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("slurm_time_limit")
    tree = make_fake_nnunet(base / "nnunet")
    registry = JobRegistry(base / "jobs" / "jobs.sqlite3")
    run_dir = tree.run_dir.parent.parent / "nnUNetTrainer_2000epochs__nnUNetPlans__2d" / "fold_0"
    parent = parse_run_path(tree.run_dir, tree.run_dir.relative_to(tree.results).as_posix())
    assert parent is not None
    writes_log = (f"import pathlib, time; d = pathlib.Path({str(run_dir)!r}); d.mkdir(parents=True, exist_ok=True); "
                  "(d / 'training_log_2026_1_1_00_00_00.txt').write_text('2026-01-01 00:00:00.000000: Epoch 0\\n'); "
                  "print('training', flush=True); time.sleep(600)")
    plan = ExtendPlan(parent=parent, parent_epochs=1000, epochs=2000, backend="slurm", device="cpu", gpu=None,
                      new_trainer="nnUNetTrainer_2000epochs", new_run_dir=run_dir,
                      new_run_id=run_dir.relative_to(tree.results).as_posix(), argv=python_argv(writes_log),
                      env={}, checks=(), slurm=SlurmOptions(partition="debug", time="1", gres=""))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in slurm_cluster.env.items():
            patch.setenv(name, value)
        job = submit(plan, registry=registry, requested_by="alice")
    return SlurmTimeLimitJob(tree=tree, registry=registry, plan=plan, job=job)
