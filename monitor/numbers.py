"""How nnwatch prints a signed difference (a gain, a slope, a Dice change) in every view."""

from __future__ import annotations

__all__ = ["signed"]


def signed(value: float, digits: int = 3) -> str:
    """``+0.012`` / ``−0.004`` (a true minus, as on chart axes), and a plain ``0`` for anything that rounds
    to zero: never ``−0.000``."""
    text = f"{value:+.{digits}f}"
    if float(text) == 0:
        return "0"
    return text.replace("-", "\u2212")
