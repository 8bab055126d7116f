"""Next steps under AppTest, past the first click: find-best over several plans, a validation known to have used
checkpoint_best because nnwatch's own job ran it, and nnU-Net's accumulated cross-validation showing up without
any change to the runs.

Synthetic runs (no training) with the files find-best and the checks look at written by hand, a real SQLite
registry, launches recorded by the test backend.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import (
    DATASET,
    MODEL,
    FixtureTree,
    assert_no_crash,
    build_fixture_tree,
    dashboard_env,
    open_page,
    page_texts,
)
from streamlit.testing.v1 import AppTest
from validation_summaries import v2_summary, write_summary

from monitor.synth import CurveSpec, RunSpec, write_run
from trainer import JobKind, JobRegistry, JobState
from trainer.backends import Observation

TIMEOUT = 120  # generous for a loaded machine
RESENC = "nnUNetResEncUNetMPlans"
RESENC_MODEL = f"nnUNetTrainer__{RESENC}__3d_fullres"


def _validated_with_npz(run_dir: Path) -> None:
    """What ``nnUNetv2_train --val --npz`` leaves: the final checkpoint, summary.json, one .npz per case."""
    (run_dir / "checkpoint_final.pth").write_bytes(b"")
    write_summary(run_dir, v2_summary({"case_0": (0.8, 0.7), "case_1": (0.9, 0.6)}))
    for case in ("case_0", "case_1"):
        (run_dir / "validation" / f"{case}.npz").write_bytes(b"")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureTree]:
    """The fixture tree plus fold 1 of the same trainer with a second plans (ResEnc M), both validated with --npz."""
    built = build_fixture_tree(tmp_path_factory.mktemp("steps_choices"))
    write_run(built.root, RunSpec(DATASET, "nnUNetTrainer", "3d_fullres", 1, 300,
                                  CurveSpec((0.83, 0.73), timescale=0.05, noise=0.008, epoch_time_s=60.0, seed=7),
                                  plans=RESENC), labels=("kidney", "tumor"))
    for model in (MODEL, RESENC_MODEL):
        _validated_with_npz(built.root / DATASET / model / "fold_1")
    preprocessed = Path(built.env["nnUNet_preprocessed"]) / DATASET
    (preprocessed / f"{RESENC}.json").write_text(json.dumps(
        {"configurations": {"3d_fullres": {"data_identifier": f"{RESENC}_3d_fullres"}}}))
    (preprocessed / f"{RESENC}_3d_fullres").mkdir()
    (preprocessed / f"{RESENC}_3d_fullres" / "case_000.npz").write_bytes(b"\0")
    (preprocessed / "gt_segmentations").mkdir()
    with dashboard_env(built.env):
        yield built


def _app(page: str | None = None, **query: str) -> AppTest:
    at = open_page(page, timeout=TIMEOUT, **query)
    assert_no_crash(at)
    return at


def test_find_best_over_two_plans_of_one_trainer(tree: FixtureTree) -> None:
    registry = JobRegistry(tree.env["NNWATCH_JOBS_DB"])
    at = _app("views/run.py", id=tree.plateau)
    plans = at.multiselect(key="steps_run_fb_plans")
    assert plans.options == ["nnUNetPlans", RESENC] and plans.value == ["nnUNetPlans"]
    plans.set_value(["nnUNetPlans", RESENC]).run()
    assert_no_crash(at)
    # Over the split's five folds both plans lack folds; each plans' model folder is named with its own folds.
    button = at.button(key="steps_run_find_best")
    assert button.disabled
    assert f"{RESENC_MODEL}: fold 0: not trained" in button.help and f"{MODEL}: fold 0:" in button.help
    at.multiselect(key="steps_run_fb_folds").set_value(["1"]).run()
    assert_no_crash(at)
    button = at.button(key="steps_run_find_best")
    assert not button.disabled, button.help
    button.click().run()
    assert_no_crash(at)
    assert "Find the best configuration" in page_texts(at)
    assert f"{RESENC_MODEL}: folds 1 finished and validated with --npz" in page_texts(at)
    at.button(key="step_confirm").click().run()
    assert_no_crash(at)
    job = registry.list_jobs()[0]
    assert job.kind is JobKind.FIND_BEST
    assert job.argv[1:] == (DATASET, "-c", "3d_fullres", "-tr", "nnUNetTrainer", "-p", "nnUNetPlans", RESENC,
                            "-f", "1")
    assert [e["job_id"] for e in tree.launches() if e["event"] == "launch"] == [job.job_id]


def test_a_validation_run_by_an_nnwatch_job_with_val_best_is_shown_as_such(tree: FixtureTree) -> None:
    registry = JobRegistry(tree.env["NNWATCH_JOBS_DB"])
    run_dir = tree.root / tree.improving
    (run_dir / "checkpoint_final.pth").write_bytes(b"")
    (run_dir / "checkpoint_best.pth").write_bytes(b"")
    at = _app("views/run.py", id=tree.improving)
    at.button(key="steps_run_validate").click().run()
    at.radio(key="step_device").set_value("cpu").run()
    at.checkbox(key="step_val_best").check().run()
    assert_no_crash(at)
    at.button(key="step_confirm").click().run()
    assert_no_crash(at)
    job = next(j for j in registry.list_jobs() if j.kind is JobKind.VALIDATE)
    assert "--val_best" in job.argv and job.new_run_path == str(run_dir)
    # The job writes its validation and ends; nothing in the files says which checkpoint was scored.
    write_summary(run_dir, v2_summary({"case_0": (0.8, 0.7), "case_1": (0.9, 0.6)}))
    assert registry.record_observation(registry.get(job.job_id), Observation(JobState.SUCCEEDED, exit_code=0))
    # The dashboard asks the registry again at most every few seconds: open the page until it has.
    deadline = time.monotonic() + 30
    while True:
        at = _app("views/run.py", id=tree.improving)
        marks = [w.value for w in at.warning if "checkpoint_best" in str(w.value)]
        if marks or time.monotonic() > deadline:
            break
    assert marks == ["**Validated with checkpoint_best**, not the final checkpoint: the job that ran this "
                     "validation passed --val_best."]
    assert {m.label: m.value for m in at.metric}["Checkpoint · npz"] == "best · none"

    # Validated again later by someone else (no job): the registry no longer speaks for the file.
    write_summary(run_dir, v2_summary({"case_0": (0.8, 0.7), "case_1": (0.9, 0.6)}))
    later = os.stat(run_dir / "validation" / "summary.json").st_mtime + 60
    os.utime(run_dir / "validation" / "summary.json", (later, later))
    at = _app("views/run.py", id=tree.improving)
    assert not [w.value for w in at.warning if "Validated with checkpoint_best" in str(w.value)]
    assert {m.label: m.value for m in at.metric}["Checkpoint · npz"] == "final · none"


def test_nnunets_accumulated_crossval_appears_without_a_change_to_the_runs(tree: FixtureTree) -> None:
    at = _app("views/dataset.py", dataset=DATASET, model=MODEL)
    assert "crossval_results_folds_" not in page_texts(at)
    # What find_best_configuration writes into the model folder; no fold folder changes.
    accumulated = tree.root / DATASET / MODEL / "crossval_results_folds_1"
    write_summary(accumulated, v2_summary({"case_0": (0.8, 0.7), "case_1": (0.9, 0.6)}), folder=".")
    at = _app("views/dataset.py", dataset=DATASET, model=MODEL)
    boxes = [s.value for s in at.success if "crossval_results_folds_1" in str(s.value)]
    assert boxes == ["nnU-Net's `crossval_results_folds_1`: agrees with nnU-Net's "
                     "crossval_results_folds_1/summary.json (2 cases)."]
