"""The tiny detached wrapper that a local job runs under: it outlives the launcher and records the exit code.

A local training must survive the CLI (or dashboard) that started it, and its exit code must still be known
when nobody is left waiting on it. So the launcher starts ``python -I runner.py --job-dir DIR -- ARGV...``,
which daemonizes (a fork whose parent the launcher reaps, then ``setsid``: its own session and process
group, never a zombie of the launcher), reports the daemon's pid to the launcher, runs ``ARGV`` as a child
in that process group with stdout/stderr appended to the job's log, and writes ``exit.json`` atomically
when the child ends.

Files in the job folder (the contract with :mod:`trainer.local`):

``runner.json``  pid, process start time (clock ticks since boot) and boot id of the daemon, written before
                 the child starts, so a job can be adopted even when the launcher died before it recorded
                 the pid in the registry.
``exit.json``    ``exit_code`` (``128 + signal`` when the child was killed), ``signal`` (name or null),
                 ``finished_at`` and ``error`` (why the child could not start, else null).

This file imports only the standard library and is run by path with ``-I``, so it works from any
working directory and cannot be shadowed by the user's modules; :mod:`trainer.local` imports its helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXIT_FILE",
    "LOG_FILE",
    "RUNNER_FILE",
    "ProcessIdentity",
    "parse_proc_stat",
    "process_identity",
    "read_boot_id",
    "runner_argv",
    "write_json_atomic",
]

RUNNER_FILE = "runner.json"
EXIT_FILE = "exit.json"
LOG_FILE = "job.log"
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid plus what makes it unique over time: its start time since boot and the boot it belongs to.

    A pid alone is not an identity: after the job ends the kernel may hand the same number to an
    unrelated process, and signalling that process group would kill someone else's work.
    """

    pid: int
    start_ticks: int
    boot_id: str
    state: str = "?"  # one-letter /proc state; "Z" (zombie) and "X" (dead) count as gone

    def same_process(self, other: ProcessIdentity | None) -> bool:
        """True when ``other`` is the very process this identity was recorded from, still running."""
        return (
            other is not None
            and other.pid == self.pid
            and other.start_ticks == self.start_ticks
            and other.boot_id == self.boot_id
            and other.state not in ("Z", "X")
        )


def parse_proc_stat(text: str) -> tuple[str, int]:
    """(state letter, start time in clock ticks) from the text of ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may itself contain spaces and ``)``, so the fields
    are counted from the *last* ``)``; the start time is field 22 of proc(5).
    """
    close = text.rindex(")")
    fields = text[close + 2 :].split()
    # fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    return fields[0], int(fields[19])


def read_boot_id() -> str:
    """This boot's random id: start ticks restart at zero after a reboot, so they are compared with it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def process_identity(pid: int) -> ProcessIdentity | None:
    """The identity of the running process ``pid``, or ``None`` when no such process exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ticks = parse_proc_stat(text)
    return ProcessIdentity(pid=pid, start_ticks=ticks, boot_id=read_boot_id(), state=state)


def write_json_atomic(path: Path, data: Mapping[str, object]) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a record."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def runner_argv(python: str, job_dir: Path, argv: list[str]) -> list[str]:
    """The launcher's argv for running ``argv`` under this wrapper (an argv list: never a shell string)."""
    return [python, "-I", str(Path(__file__).resolve()), "--job-dir", str(job_dir), "--", *argv]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _daemonize(log_path: Path) -> int | None:
    """Fork; the parent (the launcher's child) waits for the daemon, prints its pid and exits.

    Returns the write end of a pipe in the daemon; the daemon closes it (after writing its pid) once
    ``runner.json`` exists, so the launcher can read the record as soon as it regains control.
    """
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        with os.fdopen(read_end) as reader:
            reported = reader.read().strip()
        print(json.dumps({"pid": int(reported) if reported else None}), flush=True)
        os._exit(0 if reported else 1)  # skip atexit handlers and buffers that the daemon inherited
    os.close(read_end)
    os.setsid()  # own session and process group: the launcher's Ctrl-C or exit does not reach the job
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null_fd)
    os.close(log_fd)
    return write_end


def _run_child(job_dir: Path, argv: list[str], ready_fd: int | None) -> int:
    """Run the training in this process group; record and return its exit code."""
    terminated: list[str] = []

    def note_signal(signum: int, _frame: object) -> None:
        # The group signal reaches the child by itself; the wrapper stays to record how it ended.
        terminated.append(signal.Signals(signum).name)

    for signum in _FORWARDED_SIGNALS:
        signal.signal(signum, note_signal)
    me = process_identity(os.getpid())
    record: dict[str, object] = {
        "pid": os.getpid(),
        "start_ticks": me.start_ticks if me else None,
        "boot_id": read_boot_id(),
        "host": socket.gethostname(),
        "started_at": _now(),
        "argv": argv,
    }
    write_json_atomic(job_dir / RUNNER_FILE, record)
    if ready_fd is not None:
        os.write(ready_fd, str(os.getpid()).encode())
        os.close(ready_fd)
    print(f"[nnwatch runner] {_now()} starting: {argv}", flush=True)
    error = None
    signal_name = None
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        code = child.wait()
    except OSError as exc:
        error = f"could not start {argv[0]!r}: {exc}"
        code = 127
    if code < 0:
        signal_name = signal.Signals(-code).name
        code = 128 - code
    result = {
        "exit_code": code,
        "signal": signal_name,
        "terminated_by": terminated[0] if terminated else None,
        "finished_at": _now(),
        "error": error,
    }
    write_json_atomic(job_dir / EXIT_FILE, result)
    print(f"[nnwatch runner] {_now()} finished: {json.dumps(result)}", flush=True)
    return code


def main(args: list[str] | None = None) -> int:
    """Entry point: daemonize, then run the command after ``--``."""
    parser = argparse.ArgumentParser(description="Run a command detached and record its exit code.")
    parser.add_argument("--job-dir", required=True, type=Path)
    parser.add_argument("--no-daemon", action="store_true", help="run in the foreground (for debugging)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    ns = parser.parse_args(args)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if not command:
        parser.error("no command given after --")
    job_dir: Path = ns.job_dir
    ready_fd = None if ns.no_daemon else _daemonize(job_dir / LOG_FILE)
    return _run_child(job_dir, command, ready_fd)


if __name__ == "__main__":
    sys.exit(main())
