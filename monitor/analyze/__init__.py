"""Is validation pseudo Dice still improving at the end of the schedule, flat, or declining?"""

from monitor.analyze.analyzer import Analysis, Verdict, analyze
from monitor.analyze.options import AnalyzerOptions
from monitor.analyze.verdict import analyze_run

__all__ = ["Analysis", "AnalyzerOptions", "Verdict", "analyze", "analyze_run"]
