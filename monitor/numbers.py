"""How nnwatch prints a signed difference (a gain, a slope, a Dice change), the spread of folds and a moment in every
view, and how it writes a table as CSV."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["csv_text", "mean_sd", "moment", "signed", "spread"]


def moment(value: float | str | datetime | None) -> str:
    """A point in time as every view prints it, ``2026-12-06 00:05:58 UTC``, from seconds since the epoch, an
    ISO 8601 string (``…Z`` or with an offset) or a datetime; ``–`` when unknown or unreadable."""
    if value is None or value == "":
        return "–"
    try:
        if isinstance(value, datetime):
            when = value
        elif isinstance(value, (int, float)):
            when = datetime.fromtimestamp(value, timezone.utc)
        else:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError, OSError):
        return "–"
    if when.tzinfo is None:
        return f"{when:%Y-%m-%d %H:%M:%S}"
    return f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as every CSV nnwatch writes it (``nnwatch curves`` and ``scan``, the dashboard's downloads):
    times in ISO 8601 UTC (``2024-03-09T07:05:01.250000Z``), numbers to 10 significant digits, so a mean of two
    logged 4-decimal values reads ``0.0747``, not ``0.07469999999999999``."""
    return frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ", float_format="%.10g")


def signed(value: float, digits: int = 3) -> str:
    """``+0.012`` / ``−0.004`` (a true minus, as on chart axes), and a plain ``0`` for anything that rounds
    to zero: never ``−0.000``."""
    text = f"{value:+.{digits}f}"
    if float(text) == 0:
        return "0"
    return text.replace("-", "\u2212")


def spread(mean: float, sd: float, folds: int, digits: int = 4) -> str:
    """``0.8123 ± 0.0100``: how every view states a mean over folds with its sample standard deviation;
    ``0.8123 (1 fold)`` for one fold, ``–`` for none."""
    if folds < 1 or not math.isfinite(mean):
        return "–"
    if folds == 1 or not math.isfinite(sd):
        return f"{mean:.{digits}f} (1 fold)" if folds == 1 else f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def mean_sd(values: Iterable[float | None], digits: int = 4) -> str:
    """:func:`spread` of the finite values: their mean and sample standard deviation (n − 1)."""
    known = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not known:
        return "–"
    mean = math.fsum(known) / len(known)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in known) / (len(known) - 1)) if len(known) > 1 else math.nan
    return spread(mean, sd, len(known), digits)
