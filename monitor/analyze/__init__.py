"""Is validation pseudo Dice still improving at the end of the schedule, flat, or declining? And the one smoothing
that every chart and report draws."""

from monitor.analyze.analyzer import analyze
from monitor.analyze.options import AnalyzerOptions
from monitor.analyze.result import Analysis, FitLine, Verdict
from monitor.analyze.smoothing import smooth
from monitor.analyze.verdict import analyze_curves, analyze_run

__all__ = ["Analysis", "AnalyzerOptions", "FitLine", "Verdict", "analyze", "analyze_curves", "analyze_run", "smooth"]
