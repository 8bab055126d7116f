"""PNG reports of nnU-Net runs: one run, one dataset's folds, a parent and its extension."""

from monitor.report.data import ReportError
from monitor.report.render import render_compare_report, render_dataset_report, render_run_report, write_all_reports
from monitor.report.style import ReportOptions

__all__ = [
    "ReportError",
    "ReportOptions",
    "render_compare_report",
    "render_dataset_report",
    "render_run_report",
    "write_all_reports",
]
