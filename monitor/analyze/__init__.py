"""Is validation pseudo Dice still improving at the end of the schedule, flat, or declining? In which words,
is the verdict final, how does an extended run stand against its parent? And the one smoothing that every chart
and report draws."""

from monitor.analyze.analyzer import analyze, frame_column, hours_unit, practical_gain_per_epoch
from monitor.analyze.compare import (
    COMPARISON_RULE,
    Certainty,
    ComparedRun,
    ExtensionComparison,
    Standing,
    compare_extension,
    compare_runs,
)
from monitor.analyze.options import AnalyzerOptions
from monitor.analyze.result import Analysis, FitLine, Trend, Verdict, VerdictRow, verdict_is_final
from monitor.analyze.smoothing import smooth
from monitor.analyze.text import verdict_label, verdict_row, verdict_words
from monitor.analyze.verdict import analyze_curves, analyze_run
from monitor.numbers import mean_sd, signed, spread

__all__ = [
    "COMPARISON_RULE", "Analysis", "AnalyzerOptions", "Certainty", "ComparedRun", "ExtensionComparison", "FitLine",
    "Standing", "Trend", "Verdict", "VerdictRow", "analyze", "analyze_curves", "analyze_run", "compare_extension",
    "compare_runs", "frame_column", "hours_unit", "mean_sd", "practical_gain_per_epoch", "signed", "smooth",
    "spread", "verdict_is_final", "verdict_label", "verdict_row", "verdict_words",
]
