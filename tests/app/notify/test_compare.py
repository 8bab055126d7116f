"""An extension against its parent at the same fraction of schedule: clearly behind, ahead, or too early to say."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.notify.compare import check_extension
from monitor.synth import CurveSpec, synth_curves


def _frame(ceilings: tuple[float, float], planned: int, epochs: int, seed: int) -> pd.DataFrame:
    curves = synth_curves(CurveSpec(ceilings, timescale=0.1, noise=0.01, seed=seed), planned)
    return pd.DataFrame({"epoch": np.arange(epochs), "ema_fg_dice": curves.ema[:epochs]})


PARENT = _frame((0.9, 0.8), 1000, 1000, seed=1)


def test_an_extension_clearly_behind_is_flagged_with_high_confidence() -> None:
    check = check_extension(PARENT, 1000, _frame((0.8, 0.7), 2000, 900, seed=2), 2000)
    assert check is not None and check.behind and check.sure == "high"
    assert check.fraction == 0.45 and check.delta < -0.05 and check.checked >= 3
    assert "behind its parent" in check.sentence() and "Confidence: high" in check.sentence()


def test_an_extension_ahead_or_level_is_not_flagged() -> None:
    ahead = check_extension(PARENT, 1000, _frame((0.92, 0.82), 2000, 900, seed=2), 2000)
    level = check_extension(PARENT, 1000, _frame((0.9, 0.8), 2000, 900, seed=3), 2000)
    assert ahead is not None and not ahead.behind and "ahead of" in ahead.sentence()
    assert level is not None and not level.behind


def test_too_early_or_without_a_schedule_nothing_is_claimed() -> None:
    early = check_extension(PARENT, 1000, _frame((0.8, 0.7), 2000, 200, seed=2), 2000)
    assert early is not None and not early.behind and early.fraction == 0.1
    assert check_extension(PARENT, None, _frame((0.8, 0.7), 2000, 900, seed=2), 2000) is None
