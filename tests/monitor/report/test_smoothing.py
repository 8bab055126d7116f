"""One smoothing for the dashboard's charts and the PNG reports: the downloaded report shows the curve on screen."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import model_dir, write_v2_run

from app.dashboard.charts import dice_figure, panels_figure
from monitor import load_run
from monitor.analyze import smooth
from monitor.report.data import load_run_data
from monitor.report.run import build_run_figure
from monitor.report.style import OKABE_ITO, THEMES, new_canvas

LABELS = ("liver", "tumour")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    return write_v2_run(model_dir(root, "Dataset001_Liver", "3d_fullres") / "fold_0", epochs=400, classes=LABELS,
                        nan_classes=(1,), running=True, seed=3)


def report_lines(run_dir: Path, window: int, panel: str, colour: str) -> list[np.ndarray]:
    canvas = new_canvas(1600, 1000, 1.0, THEMES["light"])
    build_run_figure(canvas, load_run_data(run_dir), smooth=window, now=datetime(2025, 1, 1, tzinfo=timezone.utc))
    ax = next(ax for ax in canvas.figure.axes if ax.get_label() == panel)
    return [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines() if line.get_color() == colour]


@pytest.mark.parametrize("window", [2, 7, 25])
def test_chart_and_report_draw_the_same_smoothed_curves(run_dir: Path, window: int) -> None:
    frame = load_run(run_dir).frame()
    chart = {trace.name: np.asarray(trace.y, dtype=float)
             for trace in (*dice_figure(frame, LABELS, None, window=window).data,
                           *panels_figure(frame, window=window).data)}
    raw, smoothed = report_lines(run_dir, window, "dice", OKABE_ITO[0])
    np.testing.assert_array_equal(chart["liver"], smoothed)
    np.testing.assert_array_equal(chart["liver (raw)"], raw)
    assert np.nanstd(np.diff(smoothed)) < np.nanstd(np.diff(raw))
    _, train = report_lines(run_dir, window, "loss", OKABE_ITO[0])
    np.testing.assert_array_equal(chart["train loss"], train)


def test_the_page_slider_is_the_report_smooth_option(run_dir: Path) -> None:
    frame = load_run(run_dir).frame()
    chart = next(t for t in dice_figure(frame, LABELS, None, window=10).data if t.name == "liver")
    _, report = report_lines(run_dir, 10, "dice", OKABE_ITO[0])
    np.testing.assert_array_equal(np.asarray(chart.y, dtype=float), report)
    np.testing.assert_array_equal(report, smooth(frame["dice_1"].to_numpy(dtype=float), 10))


def test_smoothing_does_not_lag_and_invents_nothing() -> None:
    ramp = np.arange(100, dtype=float)
    np.testing.assert_allclose(smooth(ramp, 9)[4:-4], ramp[4:-4])  # a trailing mean would trail by 4 epochs
    assert smooth(ramp, 9)[-1] == pytest.approx(97.0)  # the end: the window shrinks to epochs 95–99
    gappy = ramp.copy()
    gappy[[10, 50]] = np.nan
    out = smooth(gappy, 5)
    assert np.isnan(out[[10, 50]]).all() and np.isfinite(np.delete(out, [10, 50])).all()
    assert out[11] == pytest.approx(np.mean([9, 11, 12, 13]))
    np.testing.assert_array_equal(smooth(ramp, 1), ramp)


@pytest.mark.parametrize("seed", range(5))
def test_smoothing_is_the_centred_rolling_mean_of_pandas(seed: int) -> None:
    """An independent oracle: pandas' centred rolling mean over the finite values, NaN kept where it was."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    for _ in range(200):
        values = rng.normal(size=int(rng.integers(1, 80)))
        values[rng.random(values.size) < 0.25] = np.nan
        window = int(rng.integers(0, 40))
        expected = values if window <= 1 else pd.Series(values).rolling(window, center=True, min_periods=1).mean()
        expected = np.where(np.isnan(values), np.nan, expected)
        np.testing.assert_allclose(smooth(values, window), expected, rtol=1e-12, atol=1e-12)
