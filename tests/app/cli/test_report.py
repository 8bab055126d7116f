"""``nnwatch report`` and ``write_all_reports``: the four forms, exit codes, file names, progress output."""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from paths import REPO
from PIL import Image
from report_fixtures import make_dataset_tree, model_dir, write_v2_run

from app.cli import main
from monitor.report.batch import plan_jobs, safe_name
from monitor.report.render import write_all_reports

ARTIFACTS = REPO / "test-artifacts" / "report"
SAFE = re.compile(r"^[A-Za-z0-9._~-]+\.png$")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three folds of one dataset, a parent and its extension, an empty run, an odd folder name."""
    root = tmp_path_factory.mktemp("cli-results")
    make_dataset_tree(root, dataset="Dataset004_Hippocampus", epochs=[300, 300, 120], planned=300)
    write_v2_run(model_dir(root, "Dataset007 Lung (v2)", "2d") / "fold_0", epochs=150, planned=300)
    write_v2_run(model_dir(root, "Dataset004_Hippocampus", "3d_fullres", "nnUNetTrainer_600epochs") / "fold_0",
                 epochs=600, planned=600, seed=3)
    empty = model_dir(root, "Dataset005_Empty", "2d") / "fold_0"
    empty.mkdir(parents=True)
    (empty / "debug.json").write_text('{"num_epochs": "1000"}')
    return root


def fold(root: Path, trainer: str = "nnUNetTrainer", n: int = 0) -> Path:
    return model_dir(root, "Dataset004_Hippocampus", "3d_fullres", trainer) / f"fold_{n}"


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


def test_run_report_command(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.png"
    assert main(["report", str(fold(root)), "-o", str(out), "--width", "1200", "--height", "800",
                 "--smooth", "10"]) == 0
    assert size_of(out) == (1200, 800)
    assert capsys.readouterr().out.strip() == str(out)


def test_dataset_and_compare_commands(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset.png"
    assert main(["report", str(root), "--dataset", "Dataset004_Hippocampus", "--configuration", "3d_fullres",
                 "--trainer", "nnUNetTrainer", "-o", str(out), "--scale", "0.5"]) == 0
    assert size_of(out) == (800, 500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "cli_dataset_3_folds_half_scale.png").write_bytes(out.read_bytes())
    out = tmp_path / "compare.png"
    assert main(["report", str(fold(root)), "--compare", str(fold(root, "nnUNetTrainer_600epochs")),
                 "--x", "epochs", "-o", str(out), "--dpi", "150"]) == 0
    assert size_of(out) == (2400, 1500)


def test_output_folder_gets_a_derived_name(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(fold(root)), "-o", str(tmp_path)]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written.parent == tmp_path and SAFE.match(written.name)
    assert written.name == "Dataset004_Hippocampus--nnUNetTrainer__nnUNetPlans__3d_fullres--fold_0.png"


@pytest.mark.parametrize(("argv", "message"), [
    (["{empty}"], "no completed epoch to plot"),
    (["{missing}"], "run folder not found"),
    (["{root}", "--dataset", "Dataset999_X", "--configuration", "2d"], "no runs of dataset 'Dataset999_X'"),
    (["{root}", "--dataset", "Dataset004_Hippocampus", "--configuration", "2d"], "configurations there: 3d_fullres"),
    (["{root}", "--dataset", "Dataset004_Hippocampus", "--configuration", "3d_fullres"], "choose one with --trainer"),
    (["{missing}", "--all"], "results root not found"),
    (["{root}", "--all", "--compare", "{empty}"], "cannot be combined"),
    (["{root}", "--dataset", "Dataset004_Hippocampus"], "needs both --dataset and --configuration"),
    (["{run}", "--x", "fraction"], "--x applies to --compare"),
    (["{run}", "--width", "10"], "width×height must be within"),
])
def test_errors_exit_2_with_a_message(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      argv: list[str], message: str) -> None:
    paths = {"root": str(root), "run": str(fold(root)), "missing": str(tmp_path / "missing"),
             "empty": str(model_dir(root, "Dataset005_Empty", "2d") / "fold_0")}
    code = main(["report", *(arg.format(**paths) for arg in argv), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("nnwatch: error: ") and message in err
    assert not (tmp_path / "x.png").exists()


def test_all_writes_one_png_per_run_and_group(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports"
    assert main(["report", str(root), "--all", "-o", str(out), "--width", "800", "--height", "500",
                 "--workers", "2"]) == 0
    captured = capsys.readouterr()
    names = sorted(p.name for p in out.iterdir())
    assert all(SAFE.match(name) for name in names), names
    runs = [n for n in names if not n.startswith("dataset--")]
    groups = [n for n in names if n.startswith("dataset--")]
    assert len(runs) == 5 and len(groups) == 3  # empty run skipped; its group has nothing to draw either
    assert "Dataset007_Lung_v2--nnUNetTrainer__nnUNetPlans__2d--fold_0.png" in runs
    assert "dataset--Dataset004_Hippocampus--3d_fullres--nnUNetTrainer__nnUNetPlans.png" in groups
    assert all(size_of(out / n) == (800, 500) for n in names)
    assert "skipped Dataset005_Empty" in captured.err and "[" in captured.err and "10/10" in captured.err
    assert "8 report(s) written" in captured.out and "2 skipped" in captured.out


def test_write_all_reports_calls_progress_for_every_file(root: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    result = write_all_reports(root, tmp_path, progress=lambda *a: calls.append(a), workers=1, width=640,
                               height=400, now=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert [c[0] for c in calls] == list(range(1, 11)) and {c[1] for c in calls} == {10}
    assert len(result.written) == 8 and len(result.skipped) == 2 and not result.failed
    with Image.open(io.BytesIO(result.written[0].read_bytes())) as image:
        assert image.size == (640, 400)


def test_file_names_are_safe_short_and_unique(root: Path) -> None:
    assert safe_name(["Dataset 1/ü", "fold_0"]) == "Dataset_1--fold_0"
    long = safe_name(["D" * 300, "fold_0"])
    assert len(long) <= 180 and long != safe_name(["D" * 299 + "E", "fold_0"])
    names = [job.file_name.lower() for job in plan_jobs(root)]
    assert len(names) == len(set(names))
