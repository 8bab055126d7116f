"""What every ``nnwatch`` command shares: exit codes, the usage error, root and run arguments, JSON output, and
how the commands that start jobs print their checks and the job they started."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer import Check, Job

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "add_job_options",
    "clean_for_json",
    "json_default",
    "positive_int",
    "print_checks",
    "print_json",
    "records",
    "report_job",
    "require_root",
    "require_run_dir",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with what the user asked for (missing root, unknown run): exit code 2."""


def _default_root() -> str | None:
    return os.environ.get("nnUNet_results") or None


def require_root(root: str | None) -> Path:
    chosen = root or _default_root()
    if not chosen:
        raise UsageError("no results root given and $nnUNet_results is not set")
    path = Path(chosen)
    if not path.is_dir():
        raise UsageError(f"results root not found or not a folder: {chosen}")
    return path


def require_run_dir(run_dir: str) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    return path


def json_default(value: Any) -> Any:
    """JSON for numpy/pandas scalars and timestamps; NaN becomes null (JSON has no NaN)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def clean_for_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_for_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_for_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return clean_for_json(value.item())
        except (ValueError, AttributeError):
            return value
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(clean_for_json(value), default=json_default, indent=2))
    sys.stdout.write("\n")


def records(frame: Any) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts with None for missing values."""
    import pandas as pd

    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if (isinstance(value, float) and not math.isfinite(value)) or value is pd.NaT:
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.isoformat()
            clean[key] = value
        out.append(clean)
    return out


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_job_options(parser: argparse.ArgumentParser, *, device: bool = True) -> None:
    """The options of every command that starts a job: where it runs, on what, and which registry records it
    (``device=False``: a job that needs no GPU, such as find-best)."""
    parser.add_argument("--backend", choices=("local", "slurm"), default="local",
                        help="where to run: this machine (local, default) or a SLURM cluster (slurm)")
    if device:
        parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                            help="train on a GPU (cuda, default) or on the CPU (cpu, very slow)")
        parser.add_argument("--gpu", type=int, default=None,
                            help="GPU index (default: the one with most free memory)")
    parser.add_argument("--slurm-partition", help="SLURM partition (default: the cluster's default partition)")
    parser.add_argument("--slurm-time", help="time limit, e.g. 2-00:00:00")
    parser.add_argument("--slurm-gres", default=None if device else "",
                        help="generic resources (default gpu:1; '' for none)" if device
                        else "generic resources (default: none)")
    parser.add_argument("--slurm-account", help="SLURM account to charge (default: your default account)")
    parser.add_argument("--slurm-extra", help="further sbatch options, e.g. '--qos=high --mem=32G'")
    parser.add_argument("--jobs-db", default=None,
                        help="job registry file (default: $NNWATCH_JOBS_DB or the user data folder)")



def print_checks(checks: Iterable[Check]) -> None:
    """Every pre-flight check of a plan, one line each, by its human name: ``[FAIL] Folder for the new run: …``."""
    for check in checks:
        mark = "ok  " if check.ok else ("FAIL" if check.blocking else "warn")
        print(f"  [{mark}] {check.title}: {check.message}")


def report_job(job: Job, *, as_json: bool, notes: Iterable[str] = ()) -> int:
    """Print a job a command just submitted (as JSON with ``as_json``), with ``notes`` after its log path, and
    return the command's exit code: :data:`EXIT_FAILED` when the job failed at once (its launch), else 0."""
    if as_json:
        print_json(job.to_dict())
    else:
        kind = "" if job.kind.value == "extend" else f"{job.kind.value} "
        print(f"job {job.job_id}: {kind}{job.state.value} ({job.backend}) → {job.new_run_id}")
        print(f"log: {job.log_path}")
        for note in notes:
            print(note)
        if job.reason:
            print(f"reason: {job.reason}")
    return EXIT_FAILED if job.state.value == "failed" else EXIT_OK
