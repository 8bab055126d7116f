"""The analyzer's thresholds, in a module of their own so that building the CLI (which turns every
field into an option) imports neither the analyzer nor pandas."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalyzerOptions"]


@dataclass(frozen=True)
class AnalyzerOptions:
    """Thresholds of the analyzer, each with the reason for its default; ``bench/analyzer_benchmark.py``
    is the evidence (docs/analyzer.md)."""

    # The raw per-epoch pseudo Dice: nnU-Net's EMA is smoothed and lags.
    series: str = "mean_fg_dice"
    # The trend window (half the run if shorter): the slope's standard error falls as window^-1.5 while
    # late nnU-Net curves bend little over 300 epochs; on the benchmark a shorter window made more false
    # "improving" calls and a longer one blurs the end.
    window_epochs: int = 300
    # Below this nnU-Net is still in its initial rise and a 25-epoch window is noise.
    min_epochs: int = 50
    # Sparser windows are rarely random gaps (a logging bug, a crash), which no interval can account for.
    min_points: int = 20
    max_missing_fraction: float = 0.5
    # Dice per 10 % of the planned schedule (per 100 epochs of nnU-Net's default 1000; per 100 epochs when the
    # length is unknown): a 2000-epoch curve is a stretched 1000-epoch one, so the threshold stretches with it.
    # Half a Dice point is about the smallest difference labs report between nnU-Net variants, and about what
    # the data resolve; a significant but smaller slope is a plateau that still rises (or falls) slowly.
    min_practical_gain: float = 0.005
    # Two-sided interval of the slope; "improving" needs its lower end above 0.
    confidence: float = 0.95
    # Annealing is where lr < 20 % of its initial value, where nnU-Net curves typically make a final rise.
    anneal_lr_fraction: float = 0.2
    # nnU-Net's poly schedule exponent, used to infer a missing schedule length.
    poly_exponent: float = 0.9
    # From-scratch schedule lengths to cost and project.
    schedule_options: tuple[int, ...] = (1500, 2000, 3000)
    # Projected gain (from the pre-annealing trend) a re-run must promise to be worth it: a full Dice
    # point, since the lower end of every projection is 0.
    min_rerun_gain: float = 0.01
    # A longer schedule counts as supported only if its extra pre-annealing epochs are at most this
    # multiple of the stretch of this run the trend was measured on; beyond it the saturation rate is a guess.
    max_extrapolation_ratio: float = 1.5
    # Widen the interval for correlated epochs (Hamed–Rao, AR(1)); off only for the benchmark's ablation.
    correct_autocorrelation: bool = True
