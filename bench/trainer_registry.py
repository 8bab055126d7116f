"""How long the dashboard waits for the job table: ``list_jobs`` and ``refresh`` on a registry with history.

Builds a registry with ``--finished`` ended jobs and ``--active`` running local jobs (all pointing at this
process, which is alive, so every refresh does the full /proc check and changes nothing), then times each
call. Usage: ``python bench/trainer_registry.py [--finished 2000] [--active 50] [--repeat 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from trainer import Job, JobRegistry, JobState
from trainer.jobs import new_job_id, utc_now
from trainer.runner import process_identity


def _job(registry: JobRegistry, index: int, state: JobState) -> Job:
    job_id = new_job_id()
    me = process_identity(os.getpid())
    assert me is not None
    return Job(job_id=job_id, state=state, parent_run_id=f"Dataset{index:03d}_B/T__P__2d/fold_0",
               parent_path=f"/results/Dataset{index:03d}_B/T__P__2d/fold_0",
               new_run_id=f"Dataset{index:03d}_B/T_2000epochs__P__2d/fold_0",
               new_run_path=f"/results/Dataset{index:03d}_B/T_2000epochs__P__2d/fold_0", new_trainer="T_2000epochs",
               epochs=2000, backend="local", device="cuda", requested_by="bench", created_at=utc_now(),
               argv=("nnUNetv2_train",), env={}, job_dir=str(registry.job_dir(job_id)),
               log_path=str(registry.job_dir(job_id) / "job.log"), backend_job_id=str(me.pid), pid=me.pid,
               pid_start_ticks=me.start_ticks, boot_id=me.boot_id, host=os.uname().nodename)


def _time(call: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=2000)
    parser.add_argument("--active", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        registry = JobRegistry(Path(folder) / "jobs.sqlite3")
        for index in range(args.finished):
            registry.create(_job(registry, index, JobState.SUCCEEDED))
        for index in range(args.active):
            registry.create(_job(registry, 1000 + index, JobState.RUNNING))
        result = {
            "finished": args.finished,
            "active": args.active,
            "list_jobs_ms": round(_time(registry.list_jobs, args.repeat), 2),
            "refresh_ms": round(_time(registry.refresh, args.repeat), 2),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
