"""The analyzer's thresholds, in a module of their own so that building the CLI (which turns every
field into an option) imports neither the analyzer nor pandas."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalyzerOptions"]


@dataclass(frozen=True)
class AnalyzerOptions:
    """Thresholds of the analyzer; ``bench/analyzer_benchmark.py`` is the evidence (docs/analyzer.md).

    * ``window_epochs``: the trend is fitted over the last 300 epochs (half the run if shorter): the
      slope's standard error falls as window^-1.5 while late nnU-Net curves bend little over 300 epochs;
      on the benchmark a shorter window made more false "improving" calls and a longer one blurs the end.
    * ``min_epochs``: below 50 nnU-Net is still in its initial rise and a 25-epoch window is noise.
    * ``min_points``, ``max_missing_fraction``: sparser windows are rarely random gaps (a logging bug, a
      crash), which no interval can account for.
    * ``series``: the raw per-epoch pseudo Dice; the EMA is smoothed and lags.
    * ``min_practical_gain``: Dice per 100 epochs. Half a Dice point per 100 epochs is about the smallest
      difference labs report between nnU-Net variants, and about what the data resolve; a significant but
      smaller slope is a plateau.
    * ``confidence``: two-sided interval of the slope; "improving" needs its lower end above 0.
    * ``anneal_lr_fraction``: annealing is where lr < 20 % of its initial value, where nnU-Net curves
      typically make their final rise.
    * ``poly_exponent``: nnU-Net's poly schedule exponent, used to infer a missing schedule length.
    * ``schedule_options``: from-scratch schedule lengths to cost and project.
    * ``min_rerun_gain``: projected Dice gain (from the pre-annealing trend) that a re-run must promise to
      count as worth it: a full Dice point, since the lower end of every projection is 0.
    * ``max_extrapolation_ratio``: a schedule counts as supported only if its extra pre-annealing epochs
      are at most this multiple of the stretch of this run the trend was measured on; beyond that the
      saturation rate is a guess.
    * ``correct_autocorrelation``: widen the interval for correlated epochs (Hamed–Rao, AR(1)); switching
      it off exists for the benchmark's ablation, not for use.
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
