"""The analyzer's thresholds, in a module of their own so that building the CLI (which turns every
field into an option) imports neither the analyzer nor pandas."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalyzerOptions"]


@dataclass(frozen=True)
class AnalyzerOptions:
    """Thresholds of the analyzer; defaults chosen with ``bench/analyzer_benchmark.py`` (docs/analyzer.md).

    * ``window_epochs=300``: the trend is fitted over the last 300 epochs (half the run if shorter). On
      the benchmark, whose labels describe the last 200 epochs, 300 was more accurate than 200 (the
      slope's standard error falls as window^-1.5 while nnU-Net curves bend little over 300 late
      epochs) and had fewer false "improving" calls than 250; 400 starts to blur the end.
    * ``min_epochs=50``: below this nnU-Net is still in its initial rise and a 25-epoch window is noise.
    * ``min_points=20`` and ``max_missing_fraction=0.5``: fewer valid epochs than this in the window and
      gaps are rarely random (a logging bug, a crash), which no interval can account for.
    * ``series="mean_fg_dice"``: the raw per-epoch pseudo Dice; the EMA is smoothed and lags (module doc).
    * ``min_practical_gain=0.005``: Dice per 100 epochs. Half a Dice point per 100 epochs (0.015 over the
      window) is about the smallest difference labs report between nnU-Net variants, and about what the
      data resolve (benchmark interval half-width: median 0.0025, 95th percentile 0.009); a significant
      but smaller slope is a plateau.
    * ``confidence=0.95``: two-sided interval of the slope; "improving" needs its lower end above 0.
    * ``anneal_lr_fraction=0.2``: annealing is where lr < 20 % of its initial value (last ~17 % of a
      poly schedule), where nnU-Net curves typically make their final rise.
    * ``poly_exponent=0.9``: nnU-Net's poly schedule exponent, used to infer a missing schedule length.
    * ``schedule_options=(1500, 2000, 3000)``: from-scratch schedule lengths to cost and project.
    * ``min_rerun_gain=0.01``: projected Dice gain (from the pre-annealing trend) that a re-run must
      promise to count as worth it: a full Dice point, since the lower end of every projection is 0.
    * ``max_extrapolation_ratio=1.5``: a schedule counts as supported only if its extra pre-annealing
      epochs are at most 1.5× the stretch of this run the trend was measured on (epochs 15 %…annealing):
      for a 1000-epoch run, 1500 and 2000 can qualify, 3000 cannot.
    * ``correct_autocorrelation=True``: widen the interval for correlated epochs (Hamed–Rao, AR(1));
      switching it off exists for the benchmark's ablation, not for use.
    """

    series: str = "mean_fg_dice"
    window_epochs: int = 300
    min_epochs: int = 50
    min_points: int = 20
    max_missing_fraction: float = 0.5
    min_practical_gain: float = 0.005
    confidence: float = 0.95
    anneal_lr_fraction: float = 0.2
    poly_exponent: float = 0.9
    schedule_options: tuple[int, ...] = (1500, 2000, 3000)
    min_rerun_gain: float = 0.01
    max_extrapolation_ratio: float = 1.5
    correct_autocorrelation: bool = True
