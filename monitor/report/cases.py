"""The compare report's case-by-case lines: the real validation of the two runs compared on their shared cases
(:mod:`monitor.validation`), one sentence for the foreground mean and one for the classes."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.numbers import signed
from monitor.runs import RunReader
from monitor.validation import PairedVerdict, compare_runs

__all__ = ["case_by_case_lines"]


def _path(run: RunReader | str | os.PathLike[str]) -> Path:
    return run.location.path if isinstance(run, RunReader) else Path(run)


def case_by_case_lines(first: RunReader | str | os.PathLike[str],
                       second: RunReader | str | os.PathLike[str]) -> list[str]:
    """Footer lines for a compare report; one line saying why there is no comparison when there is none."""
    try:
        result = compare_runs(_path(first), _path(second))
    except (ValueError, OSError) as exc:
        return [f"Case by case: not compared ({exc})"]
    if result.verdict is PairedVerdict.UNAVAILABLE:
        return [f"Case by case: {result.reason}"]
    lines = [f"Case by case (real validation, paired bootstrap): {result.reason}"]
    classes = [f"{c.name} {signed(c.result.mean_difference)} ({c.result.better} better, {c.result.worse} worse)"
               for c in result.per_class]
    if classes:
        lines.append("Per class: " + " · ".join(classes))
    return lines
