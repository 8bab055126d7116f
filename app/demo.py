"""Bundled demo runs, so ``nnwatch serve`` with no results tree still shows what the product does.

A small results tree written by :mod:`monitor.synth`: runs still improving at the end of their schedule,
plateaued, declining, a crash, five folds of one configuration, a v1 run, an extended pair
``nnUNetTrainer`` → ``nnUNetTrainer_2000epochs`` whose child is *running*, and a finished extension of fold 1 whose
real validation can be compared case by case with its parent's. :class:`DemoTrainer` appends
one epoch to each running log every few seconds, so the live parts of the dashboard have something to
show. The tree is rewritten with fresh timestamps on every start, which keeps "running" plausible; a demo job
(:mod:`app.demo_job`) still running from an earlier start is cancelled first. A marker file beside the tree
(:data:`DEMO_MARKER`) is what :func:`is_demo_root` recognises: the demo job writes nowhere else.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from monitor.synth import CurveSpec, FakeRun, RunSpec, write_run

__all__ = ["DEMO_MARKER", "DEMO_RUNNING", "DemoTrainer", "build_demo_tree", "default_demo_dir", "is_demo_root",
           "write_demo_jobs"]

DEMO_MARKER = "nnwatch-demo.json"  # beside the demo's nnUNet_results folder, naming it


DEMO_RUNNING = ("Dataset101_Prostate/nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres/fold_0",
                "Dataset102_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0")


def _demo_specs() -> Sequence[tuple[RunSpec, Sequence[str]]]:
    prostate = ("peripheral zone", "transition zone")
    liver = ("liver", "tumor")
    hippo = ("anterior", "posterior")
    pro = "Dataset101_Prostate"
    rising = CurveSpec((0.78, 0.88), timescale=0.55, noise=0.010, epoch_time_s=112.0, seed=11)
    specs = [
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 0, 1000, rising), prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 1, 1000, CurveSpec((0.77, 0.87), 0.45, 0.011, 0, 109, 12)),
         prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 2, 1000, CurveSpec((0.80, 0.89), 0.07, 0.010, 0, 111, 13)),
         prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 3, 1000, CurveSpec((0.79, 0.88), 0.06, 0.012, 0, 114, 14)),
         prostate),
        (RunSpec(pro, "nnUNetTrainer", "3d_fullres", 4, 1000, CurveSpec((0.76, 0.86), 0.30, 0.012, 0, 110, 15),
                 epochs_done=612, state="crashed", ended_ago_s=2 * 86400.0), prostate),
        (RunSpec(pro, "nnUNetTrainer_2000epochs", "3d_fullres", 0, 2000,
                 CurveSpec((0.80, 0.895), timescale=0.30, noise=0.010, epoch_time_s=112.0, seed=21),
                 epochs_done=700, state="running"), prostate),
        (RunSpec(pro, "nnUNetTrainer_2000epochs", "3d_fullres", 1, 2000,
                 CurveSpec((0.775, 0.875), timescale=0.40, noise=0.011, epoch_time_s=109.0, seed=22)), prostate),
        (RunSpec(pro, "nnUNetTrainer", "2d", 0, 1000, CurveSpec((0.70, 0.82), 0.05, 0.014, 0, 38, 16)), prostate),
        (RunSpec("Dataset102_Liver", "nnUNetTrainer", "2d", 0, 1000,
                 CurveSpec((0.95, 0.62), 0.06, 0.015, 0.035, 41, 31)), liver),
        (RunSpec("Dataset102_Liver", "nnUNetTrainer", "2d", 1, 1000, CurveSpec((0.95, 0.65), 0.05, 0.015, 0, 40, 32)),
         liver),
        (RunSpec("Dataset102_Liver", "nnUNetTrainer", "3d_fullres", 0, 1000,
                 CurveSpec((0.96, 0.68), 0.15, 0.013, 0, 150, 33), epochs_done=230, state="running"), liver),
        (RunSpec("Task004_Hippocampus", "nnUNetTrainerV2", "3d_fullres", 0, 1000,
                 CurveSpec((0.89, 0.87), 0.05, 0.008, 0, 48, 41), version="v1", plans="nnUNetPlansv2.1",
                 ended_ago_s=200 * 86400.0), hippo),
    ]
    return list(specs)


def default_demo_dir() -> Path:
    """Where the demo tree lives: the user's cache folder (rebuilt on every start, never precious)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("nnwatch")) / "demo"


class DemoTrainer:
    """Appends one epoch to each running demo log every ``interval_s`` seconds, like a fast GPU would.

    A daemon thread: it dies with the server. ``stop()`` ends it (tests, and the CLI on shutdown).
    """

    def __init__(self, runs: list[FakeRun], interval_s: float = 5.0) -> None:
        self.runs = runs
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nnwatch-demo-trainer", daemon=True)

    def start(self) -> DemoTrainer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def step(self) -> None:
        """Append the next epoch of every running demo run (one ``write`` per epoch, as nnU-Net flushes)."""
        for run in self.runs:
            if run.next_epoch >= run.planned_epochs or run.log_path is None or not run.log_path.exists():
                continue
            run.clock = datetime.now() - timedelta(seconds=float(run.curves.epoch_time_s[run.next_epoch]))
            run.history(1)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except OSError:
                return  # the demo folder was removed under us


_DEMO_JOBS = (  # (parent run, epochs, final state, reason, days ago, hours it ran)
    ("Dataset102_Liver/nnUNetTrainer__nnUNetPlans__2d/fold_1", 1500, "cancelled", "cancelled by demo", 6, 26.0),
    ("Dataset101_Prostate/nnUNetTrainer__nnUNetPlans__2d/fold_0", 2000, "failed",
     "exited with code 1: torch.OutOfMemoryError: CUDA out of memory (demo)", 3, 0.4),
    ("Dataset101_Prostate/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_1", 1500, "succeeded", None, 12, 46.0),
)


def write_demo_jobs(db_path: Path, root: Path) -> None:
    """A short job history for the demo's Jobs page: ended extend jobs (nothing runs), rewritten each start."""
    from trainer import Job, JobRegistry, JobState

    for leftover in db_path.parent.glob(db_path.name + "*"):
        leftover.unlink()
    registry = JobRegistry(db_path)
    codes = {"succeeded": 0, "failed": 1, "cancelled": -15}
    for index, (parent, epochs, state, reason, days, hours) in enumerate(_DEMO_JOBS):
        dataset, model, fold = parent.split("/")
        trainer, plans, configuration = model.split("__")
        new_trainer = f"{trainer}_{epochs}epochs"
        new_run_id = f"{dataset}/{new_trainer}__{plans}__{configuration}/{fold}"
        created = datetime.now(timezone.utc) - timedelta(days=days)
        started, finished = created + timedelta(seconds=20), created + timedelta(seconds=20, hours=hours)
        job_id = f"de7a0{index:07x}"
        job = Job(job_id=job_id, state=JobState(state), parent_run_id=parent, parent_path=str(root / parent),
                  new_run_id=new_run_id, new_run_path=str(root / new_run_id), new_trainer=new_trainer, epochs=epochs,
                  backend="local", device="cuda", requested_by="demo",
                  created_at=created.isoformat(timespec="seconds"), started_at=started.isoformat(timespec="seconds"),
                  finished_at=finished.isoformat(timespec="seconds"), exit_code=codes[state], reason=reason,
                  argv=("nnUNetv2_train", dataset, configuration, fold.removeprefix("fold_"), "-tr", new_trainer,
                        "-p", plans, "-device", "cuda"), env={"CUDA_VISIBLE_DEVICES": "0"},
                  job_dir=str(registry.job_dir(job_id)), log_path=str(registry.job_dir(job_id) / "job.log"))
        registry.create(job)  # an ended job, recorded as it ended
        registry.job_dir(job_id).mkdir(parents=True, exist_ok=True)
        Path(job.log_path).write_text(f"[demo] {' '.join(job.argv)}\n" + (f"{reason}\n" if reason else
                                                                          "Training done.\n"))


def is_demo_root(root: str | Path) -> bool:
    """True only for a results tree that :func:`build_demo_tree` wrote: its marker beside it names it."""
    root = Path(root).absolute()
    try:
        named = json.loads((root.parent / DEMO_MARKER).read_text()).get("results_root")
        return isinstance(named, str) and Path(named).resolve() == root.resolve()
    except (OSError, ValueError, AttributeError):
        return False


def _stop_demo_jobs(db_path: Path) -> None:
    """Cancel demo jobs still running from an earlier start, before their folder is rewritten under them."""
    if not db_path.exists():
        return
    from trainer import BackendError, JobKind, JobRegistry, JobState

    try:
        registry = JobRegistry(db_path)
        for job in registry.list_jobs({JobState.QUEUED, JobState.RUNNING}):
            if job.kind is JobKind.DEMO:
                registry.cancel(job.job_id, "the demo restarting", grace_s=2.0)
    except (BackendError, sqlite3.Error, OSError):
        pass  # a damaged demo registry is rewritten below; a job that could not be stopped dies on its next write


def build_demo_tree(target: Path | None = None, *, now: float | None = None, live: bool = True,
                    interval_s: float = 5.0) -> tuple[Path, DemoTrainer | None]:
    """(Re)write the demo results tree and, with ``live``, start appending epochs to its running runs."""
    target = default_demo_dir() if target is None else Path(target)
    root = target / "nnUNet_results"
    _stop_demo_jobs(target / "jobs.sqlite3")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (target / DEMO_MARKER).write_text(json.dumps({"results_root": str(root.absolute()),
                                                  "written_by": "nnwatch demo"}, indent=2) + "\n")
    now = time.time() if now is None else now
    live_runs = []
    for spec, labels in _demo_specs():
        run = write_run(root, replace(spec, checkpoints=True), now=now, labels=labels)
        if spec.state == "running":
            live_runs.append(run)
    write_demo_jobs(target / "jobs.sqlite3", root)
    trainer = DemoTrainer(live_runs, interval_s).start() if live and live_runs else None
    return root, trainer
