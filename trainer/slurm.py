"""The SLURM backend: ``sbatch`` a generated script, read states in batches, ``scancel``.

Polling asks ``squeue`` once for every active job (``--states=all`` also shows jobs that ended within the
controller's MinJobAge); jobs it no longer lists, or lists as finished, are looked up with one ``sacct``
call, or - on clusters without accounting - one ``scontrol show job``. The script also writes the exit
code into the job folder, the last resort once SLURM has forgotten a job. When ``squeue`` itself fails,
the poll raises and the registry keeps the last known states.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.backends import Backend, BackendError, Launched, LaunchRequest, Observation
from trainer.slurm_text import (
    SchedulerRecord,
    final_state_text,
    map_slurm_state,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_jobs,
    parse_squeue,
    render_sbatch_script,
)
from trainer.states import JobState

if TYPE_CHECKING:
    from trainer.jobs import Job

__all__ = ["EXIT_CODE_FILE", "SCRIPT_FILE", "SlurmBackend", "slurm_job_name"]

SCRIPT_FILE = "job.sbatch"
EXIT_CODE_FILE = "exit_code"
_TIMEOUT_S = 60


def slurm_job_name(job_id: str) -> str:
    """The SLURM job name: lets a job whose launcher died before recording its id be found again."""
    return f"nnwatch-{job_id}"


class SlurmBackend(Backend):
    """Submit to SLURM with the client commands on ``PATH`` (``SLURM_CONF`` is honoured as usual)."""

    name = "slurm"
    launch_grace_s = 300.0

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if shutil.which(argv[0]) is None:
            raise BackendError(f"{argv[0]} not found: is this a SLURM login node?")
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendError(f"{argv[0]} failed: {exc}") from exc

    def launch(self, request: LaunchRequest) -> Launched:
        """Write ``job.sbatch`` into the job folder and submit it."""
        request.job_dir.mkdir(parents=True, exist_ok=True)
        script = render_sbatch_script(
            job_name=slurm_job_name(request.job_id), output=str(request.log_path), options=request.slurm,
            argv=request.argv, env=request.env, exit_code_path=str(request.job_dir / EXIT_CODE_FILE),
            description=request.description,
        )
        script_path = request.job_dir / SCRIPT_FILE
        script_path.write_text(script)
        completed = self._run(["sbatch", "--parsable", str(script_path)])
        if completed.returncode != 0:
            raise BackendError(f"sbatch refused the job: {completed.stderr.strip() or completed.stdout.strip()}")
        try:
            job_id = parse_sbatch_parsable(completed.stdout)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        return Launched(backend_job_id=job_id, state=JobState.QUEUED)

    def _squeue(self, ids: list[str]) -> dict[str, SchedulerRecord]:
        argv = ["squeue", "--noheader", "--states=all", "--format=%i|%j|%T|%r"]
        if ids:
            argv.append("--jobs=" + ",".join(ids))
        completed = self._run(argv)
        if completed.returncode != 0:
            if "Invalid job id" in completed.stderr:
                return {}  # a single id that the controller forgot: not an error
            raise BackendError(f"squeue failed: {completed.stderr.strip()}")
        return parse_squeue(completed.stdout)

    def _finished(self, ids: list[str]) -> dict[str, SchedulerRecord]:
        """Final records from accounting, or from the controller's memory without accounting."""
        if not ids:
            return {}
        completed = self._run(["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,JobName,State,ExitCode",
                               "-j", ",".join(ids)])
        if completed.returncode == 0:
            return parse_sacct(completed.stdout)
        completed = self._run(["scontrol", "show", "job", "-o"])
        if completed.returncode != 0:
            return {}
        return parse_scontrol_jobs(completed.stdout)

    def poll(self, jobs: Sequence[Job]) -> dict[str, Observation]:
        """One squeue for all jobs; one sacct (or scontrol) for those that ended or vanished."""
        known = [job for job in jobs if job.backend_job_id]
        # Jobs without an id (launcher died after sbatch) are matched by name in an unfiltered squeue.
        queue = self._squeue([] if len(known) < len(jobs) else [job.backend_job_id or "" for job in known])
        by_name = {record.name: record for record in queue.values() if record.name}
        final_ids = []
        for job in known:
            record = queue.get(job.backend_job_id or "")
            if record is None or not map_slurm_state(record)[0].active:
                final_ids.append(job.backend_job_id or "")
        finished = self._finished(final_ids)
        observations = {}
        for job in jobs:
            launched = None
            job_id = job.backend_job_id
            if job_id is None:
                adopted = by_name.get(slurm_job_name(job.job_id))
                if adopted is None:
                    continue
                job_id = adopted.job_id
                launched = Launched(backend_job_id=job_id, state=JobState.QUEUED)
            record = finished.get(job_id) or queue.get(job_id)
            observations[job.job_id] = self._observe(job, record, launched)
        return observations

    def _observe(self, job: Job, record: SchedulerRecord | None, launched: Launched | None) -> Observation:
        exit_code = _read_exit_code(Path(job.job_dir) / EXIT_CODE_FILE)
        if record is None:
            if exit_code is None:
                return Observation(JobState.FAILED, launched=launched, reason=(
                    f"SLURM no longer knows job {job.backend_job_id} and it left no exit code"))
            state = JobState.SUCCEEDED if exit_code == 0 else JobState.FAILED
            return Observation(state, exit_code=exit_code, launched=launched,
                               reason=None if exit_code == 0 else f"exited with code {exit_code}")
        if record.exit_code is None and exit_code is not None:
            record = SchedulerRecord(record.job_id, record.raw_state, exit_code, record.signal, record.reason,
                                     record.name)
        state, reason = map_slurm_state(record)
        code = record.exit_code if not state.active else None
        return Observation(state, reason=reason, exit_code=code, launched=launched,
                           scheduler_state=None if state.active else final_state_text(record))

    def cancel(self, job: Job, grace_s: float) -> Observation:
        """``scancel`` the job (SLURM itself sends SIGTERM, then SIGKILL after its KillWait)."""
        if not job.backend_job_id:
            return Observation(JobState.CANCELLED)
        completed = self._run(["scancel", job.backend_job_id])
        if completed.returncode != 0 and "Invalid job id" not in completed.stderr:
            raise BackendError(f"scancel failed: {completed.stderr.strip()}")
        return Observation(JobState.CANCELLED)


def _read_exit_code(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None

