"""The PNG reports say what the analyzer and the comparison rule say: the same words, the same statement."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from analyzer_curves import finished, make_run
from report_fixtures import model_dir, write_v2_run

from monitor.analyze import compare_runs, verdict_label
from monitor.report.data import RunData, load_run_data
from monitor.report.multi import build_compare_figure
from monitor.report.run import build_run_figure
from monitor.report.style import THEMES, Canvas, new_canvas

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def _texts(canvas: Canvas) -> list[str]:
    """Every text drawn on the figure, and inside its panels."""
    texts = [t.get_text() for t in canvas.figure.texts]
    for ax in canvas.figure.axes:
        texts += [t.get_text() for t in ax.texts]
    return texts


def _run_data(frame: object, status: str = "finished", planned: int = 1000) -> RunData:
    analysis = finished(frame) if status == "finished" else None  # type: ignore[arg-type]
    assert analysis is not None
    summary = {"run_id": "Dataset001_X/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0", "dataset": "Dataset001_X",
               "configuration": "3d_fullres", "trainer": "nnUNetTrainer", "plans": "nnUNetPlans", "fold": "0",
               "nnunet_version": "v2", "status": status, "epochs_completed": len(frame),  # type: ignore[arg-type]
               "planned_epochs": planned, "class_names": ["organ"], "final_validation_dice": None}
    return RunData(frame, summary, analysis)  # type: ignore[arg-type]


def test_a_slow_rise_has_the_same_words_in_the_badge_and_the_footer_of_the_png() -> None:
    data = _run_data(make_run(slope=0.003, noise=0.002, phi=0.0, seed=11))
    canvas = new_canvas(1600, 1000, 1.0, THEMES["light"])
    build_run_figure(canvas, data, smooth=None, now=NOW)
    texts = _texts(canvas)
    assert "PLATEAU, RISING SLOWLY" in texts  # the badge: verdict_label, upper case
    assert verdict_label(data.analysis) == "plateau, rising slowly"
    footer = " ".join(texts)
    assert "still rising slowly, below the practical gain" in footer
    assert not re.search(r"[-+\u2212]0\.0+(?!\d)", footer), "a zero printed with a sign"


def test_a_declining_run_report_has_no_projection_but_the_advice() -> None:
    data = _run_data(make_run(slope=-0.03, noise=0.002, phi=0.0, seed=4))
    canvas = new_canvas(1600, 1000, 1.0, THEMES["light"])
    build_run_figure(canvas, data, smooth=None, now=NOW)
    footer = " ".join(_texts(canvas))
    assert "projected gain" not in footer
    assert "no projection for a declining run: use checkpoint_best, or a shorter schedule" in footer


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished 1000-epoch parent and its 2000-epoch extension at epoch 700, still training."""
    root = tmp_path_factory.mktemp("pair")
    parent = write_v2_run(model_dir(root, "Dataset001_Liver", "3d_fullres") / "fold_0", epochs=1000, seed=3)
    child = write_v2_run(model_dir(root, "Dataset001_Liver", "3d_fullres", "nnUNetTrainer_2000epochs") / "fold_0",
                         epochs=700, planned=2000, running=True, seed=4, plateau=0.86)
    return parent, child


def test_the_compare_png_and_the_json_state_the_one_comparison(pair: tuple[Path, Path]) -> None:
    parent, child = pair
    result = compare_runs(parent, child)
    as_json = result.to_dict()
    assert as_json["rule"] == "end of schedule" and as_json["statement"] == result.statement
    assert as_json["question"].startswith("Is the extended run on track")
    canvas = new_canvas(1600, 1000, 1.0, THEMES["light"])
    build_compare_figure(canvas, (load_run_data(parent), load_run_data(child)), x="both", smooth=None, now=NOW)
    footer = " ".join(_texts(canvas))
    assert f"{result.question} {result.statement}" in footer
    assert not re.search(r"best EMA \d\.\d+ →", footer), "a second answer by another quantity"
    assert "(so far)" in footer  # the running extension's verdict in the table is provisional
