"""SLURM's text in and out, as pure functions: the sbatch script, and parsers for squeue/sacct/scontrol.

Nothing here runs a command, so everything is tested on strings (the script against a golden file).
Every value interpolated into the script is validated first: ``#SBATCH`` lines are read by sbatch, not
by a shell, so they only accept values without spaces or quotes; the shell part quotes every word with
:func:`shlex.quote`.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from trainer.states import JobState

__all__ = [
    "SchedulerRecord",
    "SlurmOptions",
    "final_state_text",
    "map_slurm_state",
    "parse_sacct",
    "parse_sbatch_parsable",
    "parse_scontrol_jobs",
    "parse_squeue",
    "render_sbatch_script",
    "suggest_time_limit",
]

_PARTITION_RE = re.compile(r"[A-Za-z0-9_.,-]{1,128}")
_TIME_RE = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE|infinite|unlimited")
_GRES_RE = re.compile(r"[A-Za-z0-9_:.,=-]{1,128}")
_EXTRA_RE = re.compile(r"--[a-z][a-z0-9-]*(=[A-Za-z0-9_:.,/=@%+-]+)?")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIRECTIVE_PATH_RE = re.compile(r"[^\s'\"#\\]+")
# Options nnwatch sets itself; an extra option must not override where the log goes or what runs.
_RESERVED = ("--output", "--error", "--job-name", "--parsable", "--wrap", "--chdir", "--export", "--array")


@dataclass(frozen=True)
class SlurmOptions:
    """What ``sbatch`` is asked for. ``gres`` is omitted when empty (CPU partitions, ``--device cpu``).

    ``extra`` holds further long options (``--qos=high``, ``--mem=32G``), one token each.
    """

    partition: str | None = None
    time: str | None = None
    gres: str = "gpu:1"
    account: str | None = None
    extra: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name, value, pattern in (
            ("partition", self.partition, _PARTITION_RE),
            ("time", self.time, _TIME_RE),
            ("account", self.account, _PARTITION_RE),
        ):
            if value is not None and pattern.fullmatch(value) is None:
                raise ValueError(f"invalid SLURM {name} {value!r}")
        if self.gres and _GRES_RE.fullmatch(self.gres) is None:
            raise ValueError(f"invalid SLURM gres {self.gres!r}")
        for token in self.extra:
            if _EXTRA_RE.fullmatch(token) is None:
                raise ValueError(f"invalid extra sbatch option {token!r}: use the long form --name=value")
            if token.split("=", 1)[0] in _RESERVED:
                raise ValueError(f"extra sbatch option {token!r} is set by nnwatch itself")

    @classmethod
    def from_cli(cls, partition: str | None, time: str | None, gres: str | None, account: str | None,
                 extra: str | None) -> SlurmOptions:
        """Build from CLI strings; ``extra`` is split like a shell would (``"--qos=high --mem=8G"``)."""
        return cls(partition=partition or None, time=time or None, gres="gpu:1" if gres is None else gres,
                   account=account or None, extra=tuple(shlex.split(extra or "")))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, as stored with the job."""
        return {"partition": self.partition, "time": self.time, "gres": self.gres, "account": self.account,
                "extra": list(self.extra)}


def suggest_time_limit(epochs: int, epoch_time_s: float | None, margin: float = 1.25) -> str | None:
    """A ``--time`` for ``epochs`` epochs at ``epoch_time_s`` each, with ``margin`` for start-up and final
    validation, rounded up to whole hours (``D-HH:MM:SS``); None when the epoch time is unknown."""
    if not epoch_time_s or epoch_time_s <= 0 or epochs <= 0:
        return None
    hours = max(1, math.ceil(epochs * epoch_time_s * margin / 3600))
    days, hours = divmod(hours, 24)
    return f"{days}-{hours:02d}:00:00"


def render_sbatch_script(*, job_name: str, output: str, options: SlurmOptions, argv: Sequence[str],
                         env: Mapping[str, str], exit_code_path: str, description: str | None = None) -> str:
    """The batch script: directives, exported environment, the job's argv, and its exit code recorded.

    ``description`` is the comment that says what the job does; without one it describes an extend.

    The exit code goes to ``exit_code_path`` too, so a job's outcome is known even on clusters without
    accounting once the controller has forgotten the job.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", job_name):
        raise ValueError(f"invalid SLURM job name {job_name!r}")
    if _DIRECTIVE_PATH_RE.fullmatch(output) is None:
        raise ValueError(f"the job log path {output!r} contains spaces or quotes, which #SBATCH cannot carry")
    if not argv:
        raise ValueError("empty argv")
    directives = [f"--job-name={job_name}", f"--output={output}"]
    if options.partition:
        directives.append(f"--partition={options.partition}")
    if options.gres:
        directives.append(f"--gres={options.gres}")
    if options.time:
        directives.append(f"--time={options.time}")
    if options.account:
        directives.append(f"--account={options.account}")
    directives.extend(options.extra)
    lines = ["#!/bin/bash", *(f"#SBATCH {directive}" for directive in directives)]
    what = description or "an nnU-Net training with a longer schedule, started from scratch"
    if "\n" in what or "\r" in what:
        raise ValueError("a job description is one line")
    lines += ["", f"# Generated by nnwatch: {what}.", "set -u"]
    for name in sorted(env):
        if _ENV_NAME_RE.fullmatch(name) is None:
            raise ValueError(f"invalid environment variable name {name!r}")
        lines.append(f"export {name}={shlex.quote(env[name])}")
    lines += [
        'echo "[nnwatch] job ${SLURM_JOB_ID:-} on $(hostname) at $(date -Is)"',
        " ".join(shlex.quote(word) for word in argv),
        "code=$?",
        f'echo "$code" > {shlex.quote(exit_code_path)}',
        'exit "$code"',
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class SchedulerRecord:
    """One job as SLURM reports it: its raw state, exit code (when known) and reason text."""

    job_id: str
    raw_state: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    name: str | None = None


def parse_sbatch_parsable(text: str) -> str:
    """The job id from ``sbatch --parsable`` output (``"123"`` or ``"123;cluster"``)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise ValueError(f"unexpected sbatch output: {text!r}")
    return job_id


def parse_squeue(text: str) -> dict[str, SchedulerRecord]:
    """Parse ``squeue --noheader --format=%i|%j|%T|%r`` lines (id, name, state, reason)."""
    records = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[0]:
            continue
        job_id, name, state, reason = parts
        records[job_id] = SchedulerRecord(job_id=job_id, raw_state=state.strip(), name=name,
                                          reason=None if reason in ("None", "") else reason)
    return records


def _split_exit(value: str) -> tuple[int | None, int | None]:
    code, _, sig = value.partition(":")
    return (int(code) if code.isdigit() else None, int(sig) if sig.isdigit() else None)


def parse_sacct(text: str) -> dict[str, SchedulerRecord]:
    """Parse ``sacct -X -n -P -o JobIDRaw,JobName,State,ExitCode`` lines.

    sacct writes ``CANCELLED by 1000`` as the state and ``code:signal`` as the exit code; a job that was
    requeued appears more than once, and the last line wins.
    """
    records = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[0]:
            continue
        job_id, name, state, exit_code = parts
        raw, _, detail = state.partition(" ")
        code, sig = _split_exit(exit_code)
        records[job_id] = SchedulerRecord(job_id=job_id, raw_state=raw, exit_code=code, signal=sig,
                                          reason=detail or None, name=name)
    return records


def parse_scontrol_jobs(text: str) -> dict[str, SchedulerRecord]:
    """Parse ``scontrol show job -o`` (one ``Key=Value ...`` line per job; used without accounting)."""
    records = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=(\S*)", line))
        job_id = fields.get("JobId")
        if not job_id:
            continue
        code, sig = _split_exit(fields.get("ExitCode", ""))
        reason = fields.get("Reason")
        records[job_id] = SchedulerRecord(job_id=job_id, raw_state=fields.get("JobState", "UNKNOWN"),
                                          exit_code=code, signal=sig, name=fields.get("JobName"),
                                          reason=None if reason in (None, "None", "(null)") else reason)
    return records


_QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
           "SPECIAL_EXIT", "RESIZING"}
_RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
_FAILED_REASONS = {
    "FAILED": "the job exited with a non-zero code",
    "TIMEOUT": "the job hit its time limit (--time)",
    "NODE_FAIL": "the node it ran on failed",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "BOOT_FAIL": "the node failed to boot",
    "DEADLINE": "the job missed its deadline",
    "PREEMPTED": "the job was preempted",
    "REVOKED": "the job was revoked",
}


def final_state_text(record: SchedulerRecord) -> str:
    """SLURM's final state as sacct writes it (``TIMEOUT``, ``CANCELLED by 1000``), kept with the job so the
    stop-cause classifier can read it after the scheduler has forgotten the job."""
    raw = record.raw_state.upper().rstrip("+")
    if raw == "CANCELLED" and record.reason and record.reason.startswith("by "):
        return f"{raw} {record.reason}"
    return raw


def map_slurm_state(record: SchedulerRecord) -> tuple[JobState, str | None]:
    """Translate SLURM's state names into :class:`JobState` plus a reason a user can act on."""
    raw = record.raw_state.upper().rstrip("+")
    if raw in _QUEUED:
        return JobState.QUEUED, record.reason
    if raw in _RUNNING:
        return JobState.RUNNING, None
    if raw == "COMPLETED":
        if record.exit_code not in (None, 0):
            return JobState.FAILED, f"exited with code {record.exit_code}"
        return JobState.SUCCEEDED, None
    if raw == "CANCELLED":
        by = f" ({record.reason})" if record.reason else ""
        return JobState.CANCELLED, f"cancelled in SLURM{by}"
    explanation = _FAILED_REASONS.get(raw, "unknown SLURM state")
    code = f", exit code {record.exit_code}" if record.exit_code else ""
    return JobState.FAILED, f"SLURM {raw}: {explanation}{code}"
