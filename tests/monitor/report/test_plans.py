"""A dataset report draws one trained model: two plans of one trainer (both with a fold_0) are two reports,
chosen by ``plans`` (or ``Trainer__Plans``), never one report of both."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from monitor.report.data import find_group
from monitor.report.multi import build_dataset_figure, load_group
from monitor.report.render import ReportError, render_dataset_report
from monitor.report.style import THEMES, figure_to_png, new_canvas
from monitor.synth import CurveSpec, RunSpec, write_run

DATASET, TRAINER, RESENC = "Dataset210_Liver", "nnUNetTrainer", "nnUNetResEncUNetMPlans"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plans") / "nnUNet_results"
    for fold in (0, 1):
        write_run(root, RunSpec(DATASET, TRAINER, "3d_fullres", fold, 100, CurveSpec((0.8,), seed=fold)))
    write_run(root, RunSpec(DATASET, TRAINER, "3d_fullres", 0, 100, CurveSpec((0.9,), seed=7), plans=RESENC))
    return root


def _texts(root: Path, **choice: str) -> list[str]:
    canvas = new_canvas(1600, 1000, 1.0, THEMES["light"])
    build_dataset_figure(canvas, load_group(find_group(root, DATASET, "3d_fullres", **choice), root), smooth=None,
                         now=NOW)  # one moment in every footer, so two renders compare equal
    figure_to_png(canvas)
    return [text.get_text() for text in canvas.figure.texts]


def test_each_plans_is_its_own_report(root: Path) -> None:
    resenc = _texts(root, trainer=TRAINER, plans=RESENC)
    assert [t for t in resenc if t.startswith("fold ")] == ["fold 0"]
    assert any(f"plans {RESENC}" in t for t in resenc) and any(t.endswith(f"{TRAINER} · 1 fold") for t in resenc)
    default = _texts(root, trainer=TRAINER, plans="nnUNetPlans")
    assert [t for t in default if t.startswith("fold ")] == ["fold 0", "fold 1"]
    assert any("plans nnUNetPlans " in t for t in default) and any(t.endswith("· 2 folds") for t in default)
    assert _texts(root, trainer=f"{TRAINER}__{RESENC}") == resenc  # the command line's Trainer__Plans form


def test_the_png_of_one_plans_renders(root: Path) -> None:
    png = render_dataset_report(root, DATASET, "3d_fullres", TRAINER, plans=RESENC, width=800, height=500)
    assert Image.open(io.BytesIO(png)).size == (800, 500)


def test_a_trainer_with_two_plans_needs_a_choice(root: Path) -> None:
    with pytest.raises(ReportError, match=f"several trainers/plans.*{TRAINER}__nnUNetPlans, {TRAINER}__{RESENC}"):
        render_dataset_report(root, DATASET, "3d_fullres", TRAINER)
    with pytest.raises(ReportError, match=f"no runs with plans 'nnUNetResEncUNetLPlans' of trainer .*{RESENC}"):
        render_dataset_report(root, DATASET, "3d_fullres", TRAINER, plans="nnUNetResEncUNetLPlans")
