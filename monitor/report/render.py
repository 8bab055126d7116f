"""PNG reports of nnU-Net runs for slides and papers: one run, one dataset's folds, a parent and its extension.

Behind ``nnwatch report`` and the dashboard's downloads; matplotlib Agg, so no browser is needed
(``docs/reports.md``). Sizes are logical pixels, ``scale`` multiplies the resolution; ``run`` is a fold
folder or a :class:`~monitor.runs.reader.RunReader` (not refreshed). Nothing to draw raises
:class:`ReportError`; an impossible option, ``ValueError``.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.report.data import ReportError, RunData, RunSource, find_group, load_run_data
from monitor.report.style import BASE_DPI, ReportOptions, report_png

if TYPE_CHECKING:
    from monitor.analyze import Analysis
    from monitor.report.batch import BatchResult, Progress

__all__ = [
    "ReportError",
    "ReportOptions",
    "render_compare_report",
    "render_dataset_report",
    "render_run_report",
    "write_all_reports",
]

X_MODES = ("both", "epochs", "fraction")


def _options(width: int, height: int, scale: float | None, dpi: float | None, smooth: int | None, theme: str,
             now: datetime | None) -> ReportOptions:
    if scale is not None and dpi is not None:
        raise ValueError("give scale or dpi, not both")
    return ReportOptions(width=width, height=height, scale=dpi / BASE_DPI if dpi is not None else (scale or 1.0),
                         smooth=smooth, theme=theme, now=now)


def render_run_report(run: RunSource, *, analysis: Analysis | None = None, width: int = 1600, height: int = 1000,
                      scale: float | None = None, dpi: float | None = None, smooth: int | None = None,
                      theme: str = "light", now: datetime | None = None) -> bytes:
    """PNG of one run: title with the verdict, Dice/loss/lr/epoch-time panels, footer with the numbers."""
    opts = _options(width, height, scale, dpi, smooth, theme, now)
    return run_report_png(load_run_data(run, analysis), opts)


def run_report_png(data: RunData, opts: ReportOptions) -> bytes:
    """Render already loaded :class:`~monitor.report.data.RunData`."""
    from monitor.report.run import build_run_figure

    return report_png(opts, build_run_figure, data)


def render_dataset_report(root: str | os.PathLike[str], dataset: str, configuration: str, trainer: str | None = None,
                          *, plans: str | None = None, width: int = 1600, height: int = 1000,
                          scale: float | None = None, dpi: float | None = None, smooth: int | None = None,
                          theme: str = "light", now: datetime | None = None) -> bytes:
    """PNG of all folds of one model, dataset × configuration (× trainer, × plans): overlay, mean ± SD, per-fold
    table. Where several trainers or plans match, :class:`ReportError` names them."""
    from monitor.report.multi import build_dataset_figure, load_group

    opts = _options(width, height, scale, dpi, smooth, theme, now)
    group = find_group(root, dataset, configuration, trainer, plans)
    return report_png(opts, build_dataset_figure, load_group(group, root))


def render_compare_report(run_a: RunSource, run_b: RunSource, *, x: str = "both", width: int = 1600,
                          height: int = 1000, scale: float | None = None, dpi: float | None = None,
                          smooth: int | None = None, theme: str = "light", now: datetime | None = None) -> bytes:
    """PNG of a parent run and its extended run on one chart, by epoch and/or by fraction of each schedule."""
    from monitor.report.cases import case_by_case_lines
    from monitor.report.multi import build_compare_figure

    if x not in X_MODES:
        raise ValueError(f"x must be one of {', '.join(X_MODES)}, got {x!r}")
    opts = _options(width, height, scale, dpi, smooth, theme, now)
    pair = (load_run_data(run_a), load_run_data(run_b))
    return report_png(opts, build_compare_figure, pair, x=x, extra_lines=case_by_case_lines(run_a, run_b))


def write_all_reports(root: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                      progress: Progress | None = None, workers: int | None = None, width: int = 1600,
                      height: int = 1000, scale: float | None = None, dpi: float | None = None,
                      smooth: int | None = None, theme: str = "light", now: datetime | None = None) -> BatchResult:
    """One PNG per run and per dataset/configuration/trainer under ``root``, written into ``out_dir``; runs
    without a completed epoch are skipped and listed in the result."""
    from monitor.report.batch import write_all

    opts = _options(width, height, scale, dpi, smooth, theme, now)
    return write_all(root, out_dir, opts, progress=progress, workers=workers)
