"""The local backend: a detached process on this machine, under :mod:`trainer.runner`.

The job runs in its own session and process group, so it survives the launcher and can be stopped as a
whole (nnU-Net's data-augmentation workers included). Its state is read from the job folder
(``runner.json``, ``exit.json``) and from ``/proc``, and a pid only counts as "our process" when its
start time and boot id match the ones recorded at launch: a reused pid is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.backends import Backend, BackendError, Launched, LaunchRequest, Observation
from trainer.runner import (
    EXIT_FILE,
    RUNNER_FILE,
    ProcessIdentity,
    parse_proc_stat,
    process_identity,
    runner_argv,
)
from trainer.states import JobState

if TYPE_CHECKING:
    from trainer.jobs import Job

__all__ = ["LocalBackend", "group_members", "last_log_line", "outcome_from_exit_record", "recorded_identity"]

_STOP_SIGNALS = {"SIGTERM", "SIGINT", "SIGHUP"}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def recorded_identity(job: Job) -> ProcessIdentity | None:
    """The runner's identity from the registry, or from ``runner.json`` when the launcher died early."""
    if job.pid is not None and job.pid_start_ticks is not None and job.boot_id is not None:
        return ProcessIdentity(job.pid, job.pid_start_ticks, job.boot_id)
    record = _read_json(Path(job.job_dir) / RUNNER_FILE)
    if record and record.get("start_ticks") is not None and record.get("host") in (None, socket.gethostname()):
        return ProcessIdentity(int(record["pid"]), int(record["start_ticks"]), str(record["boot_id"]))
    return None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``, found by scanning ``/proc``."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        state = parse_proc_stat(text)[0]
        group = int(text[text.rindex(")") + 2 :].split()[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def last_log_line(log_path: Path, skip_prefix: str = "[nnwatch") -> str | None:
    """The last meaningful line of a job log: usually the exception that ended a failed training."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        line = line.strip()
        if line and not line.startswith(skip_prefix):
            return line[:300]
    return None


def outcome_from_exit_record(record: dict[str, Any], job: Job) -> Observation:
    """Turn ``exit.json`` into a final state and a reason a user can act on."""
    code = int(record["exit_code"])
    stopped_by = record.get("signal") or record.get("terminated_by")
    if code == 0 and not record.get("error"):
        return Observation(JobState.SUCCEEDED, exit_code=0)
    if job.cancel_requested_by:
        return Observation(JobState.CANCELLED, reason=f"cancelled by {job.cancel_requested_by}", exit_code=code)
    if stopped_by in _STOP_SIGNALS:
        return Observation(JobState.CANCELLED, reason=f"stopped by {stopped_by} outside nnwatch", exit_code=code)
    if record.get("error"):
        return Observation(JobState.FAILED, reason=str(record["error"]), exit_code=code)
    program = Path(job.argv[0]).name if job.argv else "the job"
    how = f"was killed by {stopped_by}" if stopped_by else f"exited with code {code}"
    last = last_log_line(Path(job.log_path))
    return Observation(JobState.FAILED, reason=f"{program} {how}" + (f": {last}" if last else ""), exit_code=code)


class LocalBackend(Backend):
    """Run jobs as detached process groups on this machine."""

    name = "local"
    launch_grace_s = 60.0

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.host = socket.gethostname()

    def launch(self, request: LaunchRequest) -> Launched:
        """Start the runner daemon and return its identity once ``runner.json`` exists."""
        request.job_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **request.env}
        argv = runner_argv(self.python, request.job_dir, list(request.argv))
        try:
            completed = subprocess.run(argv, env=env, cwd=request.job_dir, stdin=subprocess.DEVNULL,
                                       capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendError(f"could not start the job runner: {exc}") from exc
        record = _read_json(request.job_dir / RUNNER_FILE)
        if completed.returncode != 0 or record is None:
            raise BackendError(f"the job runner did not start: {completed.stderr.strip() or completed.stdout}")
        return Launched(backend_job_id=str(record["pid"]), pid=int(record["pid"]),
                        pid_start_ticks=record.get("start_ticks"), boot_id=record.get("boot_id"),
                        host=record.get("host"))

    def poll(self, jobs: Sequence[Job]) -> dict[str, Observation]:
        """Check each job's process against its recorded identity; read its exit record once it is gone."""
        observations = {}
        for job in jobs:
            if job.host is not None and job.host != self.host:
                continue  # its pid means nothing here: keep the last known state
            observation = self._observe(job)
            if observation is not None:
                observations[job.job_id] = observation
        return observations

    def _observe(self, job: Job) -> Observation | None:
        identity = recorded_identity(job)
        if identity is None:
            return None  # not started yet; the registry decides when that means the launcher died
        adopted = None
        if job.pid is None:
            adopted = Launched(backend_job_id=str(identity.pid), pid=identity.pid,
                               pid_start_ticks=identity.start_ticks, boot_id=identity.boot_id, host=self.host)
        if identity.same_process(process_identity(identity.pid)):
            return Observation(JobState.RUNNING, launched=adopted)
        record = _read_json(Path(job.job_dir) / EXIT_FILE)
        if record is not None:
            outcome = outcome_from_exit_record(record, job)
            return Observation(outcome.state, outcome.reason, outcome.exit_code, launched=adopted)
        if job.cancel_requested_by:
            return Observation(JobState.CANCELLED, reason=f"cancelled by {job.cancel_requested_by}",
                               launched=adopted)
        return Observation(JobState.FAILED, launched=adopted, reason=(
            f"process {identity.pid} ended without recording an exit code "
            "(killed with SIGKILL, out of memory, or the machine restarted)"))

    def cancel(self, job: Job, grace_s: float) -> Observation:
        """SIGTERM the job's process group, SIGKILL whatever is left after ``grace_s``."""
        if job.host is not None and job.host != self.host:
            raise BackendError(f"job {job.job_id} runs on {job.host}: cancel it from there")
        identity = recorded_identity(job)
        if identity is None or not identity.same_process(process_identity(identity.pid)):
            return self._observe(job) or Observation(JobState.CANCELLED)
        pgid = identity.pid  # the runner called setsid(): it leads its own process group
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            except PermissionError as exc:
                raise BackendError(f"not allowed to stop process group {pgid}: {exc}") from exc
            deadline = time.monotonic() + wait_s
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not group_members(pgid):
                break
        record = _read_json(Path(job.job_dir) / EXIT_FILE)
        return Observation(JobState.CANCELLED, exit_code=None if record is None else int(record["exit_code"]))
