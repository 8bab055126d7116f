"""Is validation pseudo Dice still improving at the end of the schedule, flat, or declining?"""

from monitor.analyze.analyzer import Analysis, FitLine, Verdict, analyze, analyze_series, mean_dice_series
from monitor.analyze.options import AnalyzerOptions
from monitor.analyze.schedule import ScheduleOption
from monitor.analyze.verdict import analyze_curves, analyze_run

__all__ = [
    "Analysis",
    "AnalyzerOptions",
    "FitLine",
    "ScheduleOption",
    "Verdict",
    "analyze",
    "analyze_curves",
    "analyze_run",
    "analyze_series",
    "mean_dice_series",
]
