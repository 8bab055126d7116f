"""What every ``nnwatch`` command shares: exit codes, the usage error, root and run arguments, JSON output."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "clean_for_json",
    "json_default",
    "print_json",
    "records",
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
