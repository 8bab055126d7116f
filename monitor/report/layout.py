"""The parts every report shares: title block with the verdict badge, footer, and text fitting.

Positions are fixed in logical pixels, not left to constrained layout: no measuring pass over every text,
identical between reports, and tests know where each panel is.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from datetime import datetime, timezone

from monitor.analyze import signed
from monitor.numbers import moment
from monitor.report.style import VERDICT_COLOURS, Canvas

__all__ = ["Frame", "draw_footer", "draw_header", "fit_text", "nnwatch_version", "signed", "text_width", "wrap_lines"]

# Average advance of DejaVu Sans per character, in ems (measured over mixed run ids and sentences).
_EM_REGULAR, _EM_BOLD = 0.58, 0.66
MARGIN = 28.0
HEADER = 84.0  # title line, subtitle line, gap
FOOTER_LINE = 22.0


def text_width(text: str, size_px: float, bold: bool = False) -> float:
    """Estimated width in pixels; measuring with the renderer would cost a draw pass per string."""
    return len(text) * size_px * (_EM_BOLD if bold else _EM_REGULAR)


def fit_text(text: str, width_px: float, size_px: float, bold: bool = False) -> str:
    """``text`` shortened in the middle with "…" so that it fits (run ids differ at both ends)."""
    if text_width(text, size_px, bold) <= width_px:
        return text
    keep = max(int(width_px / (size_px * (_EM_BOLD if bold else _EM_REGULAR))) - 1, 4)
    head = (keep + 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def wrap_lines(canvas: Canvas, lines: Sequence[str], size: float = 15.0, max_lines: int = 3) -> list[str]:
    """Footer sentences wrapped at words to the page width, each to at most ``max_lines`` lines."""
    import textwrap

    width_px = canvas.width - 2 * MARGIN * canvas.unit
    chars = max(int(width_px / (size * canvas.unit * _EM_REGULAR)), 20)
    out: list[str] = []
    for line in lines:
        out.extend(textwrap.wrap(line, chars, max_lines=max_lines, placeholder=" …") or [""])
    return out


def nnwatch_version() -> str:
    try:
        return importlib.metadata.version("nnwatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Frame:
    """The chart area left between header and footer, in logical pixels."""

    def __init__(self, canvas: Canvas, footer_lines: int) -> None:
        u = canvas.unit
        self.left = MARGIN * u
        self.right = canvas.width - MARGIN * u
        self.top = (MARGIN + HEADER) * u
        self.footer_top = canvas.height - (MARGIN * 0.6 + FOOTER_LINE * footer_lines) * u
        self.bottom = self.footer_top - 14 * u

    @property
    def width(self) -> float:
        return self.right - self.left


def draw_header(canvas: Canvas, title: str, subtitle: str, verdict: str | None, label: str | None = None) -> None:
    """Bold title on the left, the verdict as a coloured badge on the right (``label``, the words the dashboard's
    badge uses, else the verdict value), a subtitle of facts below."""
    u = canvas.unit
    left, right, top = MARGIN * u, canvas.width - MARGIN * u, MARGIN * u
    badge_w = 0.0
    if verdict is not None:
        label = (label or verdict.replace("_", " ")).upper()
        size = 19.0
        badge_w = text_width(label, size * u, bold=True) + 30 * u
        canvas.text(right - 8 * u, top + 2 * u, label, size=size, weight="bold", color="#FFFFFF", ha="right",
                    bbox={"boxstyle": f"round,pad={0.45}", "facecolor": VERDICT_COLOURS.get(verdict, "#767676"),
                          "edgecolor": "none"})
    available = right - left - badge_w - 24 * u
    size = 26.0
    while size > 18 and text_width(title, size * u, bold=True) > available:
        size -= 1
    canvas.text(left, top, fit_text(title, available, size * u, bold=True), size=size, weight="bold")
    canvas.text(left, top + 44 * u, fit_text(subtitle, right - left, 17 * u), size=17,
                color=canvas.theme.muted)


def draw_footer(canvas: Canvas, frame: Frame, lines: Sequence[str], source: str, now: datetime | None) -> None:
    """Facts lines, then the source (run id or dataset) on the left and version + time on the right."""
    u = canvas.unit
    made = f"nnwatch {nnwatch_version()} · made {moment((now or datetime.now(timezone.utc)).astimezone(timezone.utc))}"
    y = frame.footer_top
    for line in lines:
        canvas.text(frame.left, y, fit_text(line, frame.width, 15 * u), size=15)
        y += FOOTER_LINE * u
    made_w = text_width(made, 14 * u)
    canvas.text(frame.right, y, made, size=14, color=canvas.theme.muted, ha="right")
    canvas.text(frame.left, y, fit_text(source, frame.width - made_w - 30 * u, 14 * u), size=14,
                color=canvas.theme.muted)
