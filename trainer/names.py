"""Validation of every name that ends up in an argv, a file name, a Python module or an sbatch script.

Names come from folder names in a results tree, i.e. from whoever created those folders. argv lists
already keep them away from a shell, but the same names also become a generated Python class, a module
file and lines of an sbatch script, so each one is checked against what nnU-Net itself can produce.
A dataset folder called ``Dataset001_x; rm -rf ~`` is refused here, before anything is planned.
"""

from __future__ import annotations

import re

__all__ = ["InvalidNameError", "validate_name"]


class InvalidNameError(ValueError):
    """A name that nnU-Net would not create, so nnwatch will not pass it anywhere."""


_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "dataset": (re.compile(r"Dataset\d{3,}_[A-Za-z0-9][A-Za-z0-9_.-]{0,120}"),
                "Dataset<3+ digits>_<letters, digits, '_', '.', '-'>"),
    "trainer": (re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,150}"), "a Python class name"),
    "plans": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,120}"), "letters, digits, '_', '.', '-'"),
    "configuration": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,60}"), "letters, digits, '_', '.', '-'"),
    "fold": (re.compile(r"\d{1,3}|all"), "a number or 'all'"),
    "job_id": (re.compile(r"[a-f0-9]{6,32}"), "lowercase hexadecimal"),
}


def validate_name(kind: str, value: str) -> str:
    """Return ``value`` unchanged when it is a valid ``kind`` name, else raise :class:`InvalidNameError`."""
    pattern, expected = _PATTERNS[kind]
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidNameError(f"refusing {kind} name {value!r}: expected {expected}")
    return value
