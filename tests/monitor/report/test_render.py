"""PNG reports: valid images of the asked size, panels that really contain their series, clear errors.

Runs are real log text written by :mod:`monitor.synth` (and a real v1 log from the corpus when it is there),
read through the real parser and analyzer. Pixel checks look inside each panel's data area (boxes from the
figure's own layout) for the colours of the series drawn there. Every image is also written to
``test-artifacts/report/`` at the repository root so a person can look at them.
"""

from __future__ import annotations

import ast
import io
import shutil
import struct
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from paths import REPO
from PIL import Image
from report_fixtures import make_dataset_tree, model_dir, write_v1_run, write_v2_run

from monitor import load_run
from monitor.report.data import RunData, load_run_data
from monitor.report.multi import build_compare_figure, build_dataset_figure, load_group
from monitor.report.render import ReportError, render_compare_report, render_dataset_report, render_run_report
from monitor.report.run import build_run_figure
from monitor.report.style import OKABE_ITO, THEMES, Canvas, figure_to_png, new_canvas, panel_boxes

ARTIFACTS = REPO / "test-artifacts" / "report"
CORPUS_V1 = (REPO.parent / "shared" / "corpus" / "nnunet_logs" /
             "001__lixiang007666__CRF-EfficientUNet-OC-OD-Segmentation__refuge2d_fold_0_2021_5_15_18_55_53.txt")
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
LABELS = ("liver", "tumour", "vessel")
BLUE, VERMILLION, GREEN, PURPLE = OKABE_ITO[:4]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One results root with every kind of run the reports must handle."""
    root = tmp_path_factory.mktemp("results")
    liver = "Dataset001_Liver"
    write_v2_run(model_dir(root, liver, "3d_fullres") / "fold_0", epochs=1000, classes=LABELS)
    write_v2_run(model_dir(root, liver, "3d_fullres", "nnUNetTrainer_2000epochs") / "fold_0", epochs=2000,
                 planned=2000, classes=LABELS, seed=5, plateau=0.86)
    write_v2_run(model_dir(root, liver, "2d") / "fold_1", epochs=412, classes=LABELS, seed=4)  # crashed
    write_v2_run(model_dir(root, "Dataset002_Nan", "2d") / "fold_0", epochs=300, classes=LABELS, nan_classes=(1,),
                 running=True, seed=6)
    write_v2_run(model_dir(root, "Dataset003_Short", "2d") / "fold_0", epochs=3, running=True, seed=7)
    make_dataset_tree(root, epochs=[1000, 1000, 1000, 640, 1000])
    empty = model_dir(root, "Dataset005_Empty", "2d") / "fold_0"
    empty.mkdir(parents=True)
    (empty / "debug.json").write_text('{"num_epochs": "1000"}')
    return root


@pytest.fixture(scope="module")
def v1_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A v1 run: the corpus' real 800-epoch Refuge log when present, else a generated v1-format log."""
    fold = tmp_path_factory.mktemp("v1") / "nnUNet/2d/Task008_Refuge/nnUNetTrainerV2__nnUNetPlansv2.1/fold_0"
    if CORPUS_V1.is_file():
        fold.mkdir(parents=True)
        shutil.copy(CORPUS_V1, fold / "training_log_2021_5_15_18_55_53.txt")
    else:
        write_v1_run(fold, epochs=300, planned=800)
    return fold


def run_dir(root: Path, dataset: str, configuration: str, fold: int = 0, trainer: str = "nnUNetTrainer") -> Path:
    return model_dir(root, dataset, configuration, trainer) / f"fold_{fold}"


def save(name: str, png: bytes) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_bytes(png)


def decode(png: bytes, size: tuple[int, int]) -> np.ndarray:
    """Check the PNG signature and IHDR size, decode it fully, and return RGB pixels."""
    assert png[:8] == PNG_MAGIC
    assert png[12:16] == b"IHDR" and struct.unpack(">II", png[16:24]) == size
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.size == size
    pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10, "image is (nearly) blank"
    packed = pixels[::2, ::2].astype(np.int32) @ np.array([65536, 256, 1], dtype=np.int32)
    assert len(np.unique(packed)) > 50, "image has almost no content"
    return pixels


def colour_pixels(pixels: np.ndarray, box: tuple[int, int, int, int], colour: str, tolerance: int = 12) -> int:
    """How many pixels inside ``box`` (inset past the spines) have ``colour``."""
    left, top, right, bottom = box
    inner = pixels[top + 3:bottom - 3, left + 3:right - 3].astype(int)
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(inner - rgb).max(axis=2) <= tolerance).sum())


def draw(builder: object, *args: object, width: int = 1600, height: int = 1000, theme: str = "light",
         **kwargs: object) -> tuple[bytes, dict[str, tuple[int, int, int, int]], Canvas]:
    """Render through the same builders the public functions use, keeping the layout for pixel checks."""
    canvas = new_canvas(width, height, 1.0, THEMES[theme])
    builder(canvas, *args, now=NOW, **kwargs)  # type: ignore[operator]
    png = figure_to_png(canvas)
    return png, panel_boxes(canvas), canvas


def legend_texts(canvas: Canvas) -> list[str]:
    return [t.get_text() for legend in canvas.figure.legends for t in legend.get_texts()]


@pytest.fixture(scope="module")
def normal(tree: Path) -> RunData:
    return load_run_data(run_dir(tree, "Dataset001_Liver", "3d_fullres"))


# -- run reports ------------------------------------------------------------------------------------------
def test_normal_run_has_every_panel_with_its_series(normal: RunData) -> None:
    png, boxes, canvas = draw(build_run_figure, normal, smooth=None)
    save("run_normal.png", png)
    pixels = decode(png, (1600, 1000))
    assert set(boxes) == {"dice", "loss", "lr", "epoch_time"}
    for colour in (BLUE, VERMILLION, GREEN, "#000000"):  # liver, tumour, vessel, EMA
        assert colour_pixels(pixels, boxes["dice"], colour) > 300, colour
    assert colour_pixels(pixels, boxes["loss"], BLUE) > 200 and colour_pixels(pixels, boxes["loss"], VERMILLION) > 200
    assert colour_pixels(pixels, boxes["lr"], GREEN) > 200
    assert colour_pixels(pixels, boxes["epoch_time"], PURPLE) > 200
    assert legend_texts(canvas)[:1] and {"liver", "tumour", "vessel", "EMA (nnU-Net)"} <= set(legend_texts(canvas))
    assert any(t.startswith("analysis window") for t in legend_texts(canvas))


def test_panels_do_not_overlap_and_stay_inside(normal: RunData) -> None:
    for width, height in ((1600, 1000), (1920, 1080), (1280, 720), (800, 500)):
        canvas = new_canvas(width, height, 1.0, THEMES["light"])
        build_run_figure(canvas, normal, smooth=None, now=NOW)  # layout only: no need to rasterise
        items = list(panel_boxes(canvas).values())
        for left, top, right, bottom in items:
            assert 0 < left < right < width and 0 < top < bottom < height
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_public_run_report_is_a_png_of_the_asked_size(normal: RunData, tree: Path) -> None:
    path = run_dir(tree, "Dataset001_Liver", "3d_fullres")
    decode(render_run_report(path, width=1366, height=768, now=NOW), (1366, 768))
    decode(render_run_report(path, width=800, height=500, scale=2, now=NOW), (1600, 1000))
    decode(render_run_report(path, width=800, height=500, dpi=150, now=NOW), (1200, 750))


def test_nan_class_is_named_not_drawn(tree: Path) -> None:
    data = load_run_data(run_dir(tree, "Dataset002_Nan", "2d"))
    png, boxes, canvas = draw(build_run_figure, data, smooth=None)
    save("run_nan_class.png", png)
    pixels = decode(png, (1600, 1000))
    assert "tumour (no values)" in legend_texts(canvas)
    assert colour_pixels(pixels, boxes["dice"], BLUE) > 300 and colour_pixels(pixels, boxes["dice"], GREEN) > 300


def test_three_epoch_run_is_visible(tree: Path) -> None:
    data = load_run_data(run_dir(tree, "Dataset003_Short", "2d"))
    png, boxes, canvas = draw(build_run_figure, data, smooth=None)
    save("run_3_epochs.png", png)
    pixels = decode(png, (1600, 1000))
    assert data.analysis.verdict.value == "insufficient_data"
    # Three points get markers, so each panel still shows its series.
    assert colour_pixels(pixels, boxes["loss"], BLUE) > 50 and colour_pixels(pixels, boxes["lr"], GREEN) > 50
    assert colour_pixels(pixels, boxes["epoch_time"], PURPLE) > 50
    assert canvas.figure.axes[0].get_xlim()[1] == 10  # 3 of 1000 epochs: zoomed to the data, not the schedule


def test_crashed_run_marks_where_it_stopped(tree: Path) -> None:
    data = load_run_data(run_dir(tree, "Dataset001_Liver", "2d", fold=1))
    assert data.summary["status"] == "crashed"
    png, boxes, canvas = draw(build_run_figure, data, smooth=None)
    save("run_crashed.png", png)
    pixels = decode(png, (1600, 1000))
    dice = next(ax for ax in canvas.figure.axes if ax.get_label() == "dice")
    assert any(t.get_text() == "crashed" for t in dice.texts)
    assert dice.get_xlim()[1] == 1000  # 412 of 1000: the whole schedule is shown
    left, _, right, _ = boxes["dice"]
    stop = left + (right - left) * 412 / 1000
    assert colour_pixels(pixels, (int(stop) + 20, boxes["dice"][1], right, boxes["dice"][3]), BLUE) == 0


def test_v1_run(v1_run: Path) -> None:
    png = render_run_report(v1_run, now=NOW)
    save("run_v1.png", png)
    pixels = decode(png, (1600, 1000))
    data = load_run_data(v1_run)
    assert data.summary["nnunet_version"] == "v1" and len(data.frame) >= 300
    _, boxes, _ = draw(build_run_figure, data, smooth=None)
    assert colour_pixels(pixels, boxes["dice"], BLUE) > 300 and colour_pixels(pixels, boxes["lr"], GREEN) > 100


def test_legend_of_many_classes_stays_beside_the_dice_panel(tmp_path: Path) -> None:
    names = tuple(f"organ {k}" for k in range(1, 26))
    fold = write_v2_run(tmp_path / "Dataset218_AMOS/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0", epochs=200,
                        classes=names, running=True)
    png, boxes, canvas = draw(build_run_figure, load_run_data(fold), smooth=None)
    save("run_25_classes.png", png)
    decode(png, (1600, 1000))
    (legend,) = canvas.figure.legends
    extent = legend.get_window_extent()  # display pixels, origin bottom-left
    top_of_row = min(boxes[name][1] for name in ("loss", "lr", "epoch_time"))
    assert len({round(t.get_window_extent().x0) for t in legend.get_texts()}) == 2  # two columns
    assert 1000 - extent.y0 < top_of_row - 30, "legend runs into the bottom row's titles"
    assert extent.x0 > boxes["dice"][2] and extent.x1 <= 1600


def test_smoothing_keeps_raw_faint(normal: RunData) -> None:
    dice_lines = {}
    for smooth in (0, 25):
        _, _, canvas = draw(build_run_figure, normal, smooth=smooth)
        dice = next(ax for ax in canvas.figure.axes if ax.get_label() == "dice")
        dice_lines[smooth] = [line for line in dice.get_lines() if line.get_color() == BLUE]
    assert len(dice_lines[0]) == 1 and len(dice_lines[25]) == 2
    faint, smooth_line = dice_lines[25]
    assert (faint.get_alpha() or 1) < 0.5 and smooth_line.get_alpha() in (None, 1)
    assert np.nanstd(np.diff(smooth_line.get_ydata())) < np.nanstd(np.diff(faint.get_ydata())) / 2


def test_dark_theme_background(normal: RunData) -> None:
    png, _, _ = draw(build_run_figure, normal, smooth=None, theme="dark")
    pixels = decode(png, (1600, 1000))
    assert tuple(pixels[5, 5]) == (0x0E, 0x11, 0x17)


def test_reader_and_analysis_from_the_dashboard_are_used_as_given(tree: Path) -> None:
    from monitor.analyze import analyze

    reader = load_run(run_dir(tree, "Dataset001_Liver", "3d_fullres"))
    analysis = analyze(reader.frame(), planned_epochs=1000, finished=True)
    assert load_run_data(reader, analysis).analysis is analysis
    decode(render_run_report(reader, analysis=analysis, width=1200, height=800), (1200, 800))


# -- dataset and compare ------------------------------------------------------------------------------------
def test_five_fold_dataset_report(tree: Path) -> None:
    from monitor.report.data import find_group

    folds = load_group(find_group(tree, "Dataset004_Hippocampus", "3d_fullres"), tree)
    png, boxes, canvas = draw(build_dataset_figure, folds, smooth=None)
    save("dataset_5_folds.png", png)
    pixels = decode(png, (1600, 1000))
    assert set(boxes) == {"dice", "val_loss"}
    for colour in (*OKABE_ITO[:5], "#000000"):  # five folds and the mean
        assert colour_pixels(pixels, boxes["dice"], colour) > 100, colour
    texts = [t.get_text() for t in canvas.figure.texts]
    assert [f"fold {k}" for k in range(5)] == [t for t in texts if t.startswith("fold ")]
    assert "crashed" in texts and any(t.startswith("best EMA pseudo Dice:") for t in texts)
    decode(render_dataset_report(tree, "Dataset004_Hippocampus", "3d_fullres", trainer="nnUNetTrainer", now=NOW),
           (1600, 1000))


def test_parent_and_extended_run(tree: Path) -> None:
    pair = (load_run_data(run_dir(tree, "Dataset001_Liver", "3d_fullres")),
            load_run_data(run_dir(tree, "Dataset001_Liver", "3d_fullres", trainer="nnUNetTrainer_2000epochs")))
    png, boxes, canvas = draw(build_compare_figure, pair, x="both", smooth=None)
    save("compare_both.png", png)
    pixels = decode(png, (1600, 1000))
    assert set(boxes) == {"epochs", "fraction"}
    for name in boxes:
        assert colour_pixels(pixels, boxes[name], BLUE) > 300 and colour_pixels(pixels, boxes[name], VERMILLION) > 300
    axes = {ax.get_label(): ax for ax in canvas.figure.axes}
    assert axes["epochs"].get_xlim()[1] == 2000 and axes["fraction"].get_xlim() == (0.0, 1.0)
    png = render_compare_report(run_dir(tree, "Dataset001_Liver", "3d_fullres"),
                                run_dir(tree, "Dataset001_Liver", "3d_fullres", trainer="nnUNetTrainer_2000epochs"),
                                x="fraction", now=NOW)
    save("compare_fraction.png", png)
    decode(png, (1600, 1000))


# -- errors ---------------------------------------------------------------------------------------------------
def test_clear_errors(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no completed epoch"):
        render_run_report(run_dir(tree, "Dataset005_Empty", "2d"))
    with pytest.raises(ReportError, match="run folder not found"):
        render_run_report(tmp_path / "nowhere")
    with pytest.raises(ReportError, match=r"no runs of dataset 'Dataset999_X'.*Dataset004_Hippocampus"):
        render_dataset_report(tree, "Dataset999_X", "3d_fullres")
    with pytest.raises(ReportError, match="no '2d' runs; configurations there: 3d_fullres"):
        render_dataset_report(tree, "Dataset004_Hippocampus", "2d")
    with pytest.raises(ReportError, match=r"several trainers.*--trainer"):
        render_dataset_report(tree, "Dataset001_Liver", "3d_fullres")
    with pytest.raises(ReportError, match="results root not found"):
        render_dataset_report(tmp_path / "nowhere", "Dataset004_Hippocampus", "3d_fullres")
    with pytest.raises(ReportError, match="none of its 1 fold"):
        render_dataset_report(tree, "Dataset005_Empty", "2d")


@pytest.mark.parametrize("kwargs", [{"width": 10}, {"theme": "neon"}, {"scale": 2, "dpi": 200}, {"smooth": -1}])
def test_impossible_options_fail_before_reading(kwargs: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        render_run_report(tmp_path / "not-even-read", **kwargs)  # type: ignore[arg-type]


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_renderer_never_imports_streamlit_or_a_browser() -> None:
    files = sorted((REPO / "monitor" / "report").glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for module in _imported_modules(path):
            assert module.split(".")[0] not in {"streamlit", "plotly", "kaleido", "app"}, (path.name, module)
