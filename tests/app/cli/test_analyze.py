"""`nnwatch analyze` on a run folder and on a results root, as a user calls it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

from monitor.synth import write_folds

CONTRACT = ["verdict", "slope_per_100_epochs", "slope_ci95", "window", "series", "min_practical_gain",
            "projected_gain_2000", "gpu_hours_2000", "reason", "epochs_completed"]


def nnwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("results")
    write_folds(base, "Dataset004_Hippocampus", "3d_fullres", [1000, 640])  # fold 1 crashed at 640 of 1000
    return base


def test_run_dir_json_has_the_contract_keys_in_order(root: Path) -> None:
    run = root / "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    done = nnwatch("analyze", str(run), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result)[: len(CONTRACT)] == CONTRACT
    assert result["verdict"] == "plateau" and result["epochs_completed"] == 1000
    lo, hi = result["slope_ci95"]
    assert lo <= result["slope_per_100_epochs"] <= hi
    assert result["window"][1] == 999 and result["gpu_hours_2000"] > 0


def test_root_json_is_a_list_with_run_ids_and_a_resume_hint_for_the_crashed_fold(root: Path) -> None:
    done = nnwatch("analyze", str(root), "--json")
    results = {r["run_id"].rsplit("/", 1)[1]: r for r in json.loads(done.stdout)}
    assert set(results) == {"fold_0", "fold_1"}
    assert "--c" in results["fold_1"]["reason"]  # stopped at 640 of 1000: resume, don't extend


def test_thresholds_are_options(root: Path) -> None:
    run = root / "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    default = json.loads(nnwatch("analyze", str(run), "--json").stdout)
    strict = json.loads(nnwatch("analyze", str(run), "--json", "--min-practical-gain", "0.0001").stdout)
    assert strict["min_practical_gain"] == 0.0001
    assert default["verdict"] == "plateau"
    # The slope's interval lies above zero; with a tiny practical threshold it counts as improving.
    assert strict["verdict"] == ("improving" if default["slope_ci95"][0] > 0 else "plateau")


def test_scan_table_gains_the_verdict_column(root: Path) -> None:
    rows = json.loads(nnwatch("scan", str(root), "--format", "json").stdout)
    assert {r["verdict"] for r in rows} <= {"improving", "plateau", "declining", "insufficient_data"}
    assert all(r["verdict_reason"] for r in rows)


def test_scan_verdicts_match_the_analyzer_on_the_frame(root: Path) -> None:
    """A scan analyses the merged curves as arrays; the dashboard's Run page analyses the DataFrame.
    Both must say the same, to the last digit, or a user sees two answers for one run."""
    from monitor.analyze import AnalyzerOptions, analyze, analyze_run
    from monitor.runs.reader import load_run
    from monitor.runs.status import RunStatus

    for fold in ("fold_0", "fold_1"):
        reader = load_run(root / "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres" / fold)
        state = reader.status()
        for options in (AnalyzerOptions(), AnalyzerOptions(series="ema_fg_dice"), AnalyzerOptions(series="dice_2")):
            on_frame = analyze(reader.frame(), planned_epochs=reader.planned_epochs()[0],
                               finished=state == RunStatus.FINISHED,
                               running=state in (RunStatus.RUNNING, RunStatus.STALLED), options=options)
            assert analyze_run(reader, options).to_dict() == on_frame.to_dict()


def test_json_scan_does_not_import_pandas(root: Path) -> None:
    """pandas costs a cold ``nnwatch scan`` ~0.3 s of its ~1.5 s on a lab's tree; JSON output needs none."""
    code = ("import sys, io, contextlib\nfrom app import cli\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            f"    assert cli.main(['scan', {str(root)!r}, '--format', 'json']) == 0\n"
            "assert len(__import__('json').loads(out.getvalue())) == 2\n"
            "print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_an_extended_run_against_its_parent_states_the_one_comparison(tmp_path: Path) -> None:
    from report_fixtures import model_dir, write_v2_run

    from monitor.analyze import compare_runs

    parent = write_v2_run(model_dir(tmp_path, "Dataset001_Liver", "3d_fullres") / "fold_0", epochs=1000, seed=3)
    child = write_v2_run(model_dir(tmp_path, "Dataset001_Liver", "3d_fullres", "nnUNetTrainer_2000epochs") / "fold_0",
                         epochs=700, planned=2000, running=True, seed=4)
    done = nnwatch("analyze", str(child), "--parent", str(parent), "--json")
    assert done.returncode == 0, done.stderr
    comparison = json.loads(done.stdout)["comparison_with_parent"]
    expected = compare_runs(parent, child)
    assert comparison["rule"] == "end of schedule" and comparison["statement"] == expected.statement
    assert comparison["standing"] == expected.standing.value
    text = nnwatch("analyze", str(child), "--parent", str(parent)).stdout
    assert expected.statement in text
