"""Next-step buttons under AppTest: disabled with the reason, a dialog that creates exactly one job, the result panel.

The fixture tree's runs are synthetic (no checkpoints), the registry is real SQLite and launches go to the
recording backend, so every job created here is checked for its kind and exact argv without training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

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

from trainer import NPZ_WHY, JobKind, JobRegistry

TIMEOUT = 120  # generous for a loaded machine


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureTree]:
    built = build_fixture_tree(tmp_path_factory.mktemp("steps"))
    with dashboard_env(built.env):
        yield built


def _app(page: str | None = None, **query: str) -> AppTest:
    at = open_page(page, timeout=TIMEOUT, **query)
    return at


def _confirm_cpu(at: AppTest) -> None:
    at.radio(key="step_device").set_value("cpu").run()
    assert_no_crash(at)
    confirm = at.button(key="step_confirm")
    assert not confirm.disabled, page_texts(at)
    confirm.click().run()
    assert_no_crash(at)


def test_run_page_train_a_missing_fold_and_validate_a_finished_one(tree: FixtureTree) -> None:
    registry = JobRegistry(tree.env["NNWATCH_JOBS_DB"])
    at = _app("views/run.py", id=tree.improving)
    assert_no_crash(at)
    # Synthetic runs have no checkpoint_final.pth: no validation, no --val_best, and the page says why.
    assert at.button(key="steps_run_validate").disabled
    assert "(nnU-Net issue #3056)" in page_texts(at)
    assert "steps_run_train_3" in {b.key for b in at.button}  # fold_3 is an empty folder: not trained
    assert "steps_run_train_0" not in {b.key for b in at.button}

    at.button(key="steps_run_train_3").click().run()
    assert_no_crash(at)
    assert "Train a missing fold" in page_texts(at)
    _confirm_cpu(at)
    job = registry.list_jobs()[0]
    assert job.kind is JobKind.TRAIN_FOLD and job.new_run_id == f"{DATASET}/{MODEL}/fold_3"
    assert job.argv[1:] == (DATASET, "3d_fullres", "3", "-tr", "nnUNetTrainer", "-p", "nnUNetPlans", "--npz",
                            "-device", "cpu")
    assert [e["job_id"] for e in tree.launches() if e["event"] == "launch"] == [job.job_id]
    assert f"Train fold job **{job.job_id}** was created" in page_texts(at)

    (tree.root / tree.plateau / "checkpoint_final.pth").write_bytes(b"")
    at = _app("views/run.py", id=tree.plateau)
    assert_no_crash(at)
    validate = at.button(key="steps_run_validate")
    assert not validate.disabled and validate.help == NPZ_WHY
    validate.click().run()
    assert not at.checkbox(key="step_val_best").disabled
    _confirm_cpu(at)
    job = registry.list_jobs()[0]
    assert job.kind is JobKind.VALIDATE and job.new_run_id == tree.plateau
    assert job.argv[-5:] == ("nnUNetPlans", "--val", "--npz", "-device", "cpu")
    # Asking again returns the same job, launched once.
    at = _app("views/run.py", id=tree.plateau)
    at.button(key="steps_run_validate").click().run()
    _confirm_cpu(at)
    assert "was already active" in page_texts(at)
    assert [e["job_id"] for e in tree.launches() if e["event"] == "launch"].count(job.job_id) == 1


def test_compare_disables_find_best_with_the_reasons_and_shows_a_result(tree: FixtureTree) -> None:
    at = _app("views/compare.py", dataset=DATASET, config="3d_fullres", trainer="nnUNetTrainer")
    assert_no_crash(at)
    files = next(df.value for df in at.dataframe if "Files" in df.value.columns)
    assert list(files["Fold"]) == ["0", "1", "2", "3", "4"]
    assert files.set_index("Fold").loc["3", "Files"] == "not trained"
    assert "not finished (no checkpoint_final.pth)" in set(files["Files"])  # running or stopped: never "training"
    button = at.button(key="steps_cmp_find_best")
    assert button.disabled
    assert "fold 0: training not finished (no checkpoint_final.pth)" in button.help
    assert "Find best configuration is not available yet" in page_texts(at)
    assert f"No find_best_configuration result for {DATASET} yet" in page_texts(at)

    (tree.root / DATASET / "inference_information.json").write_text('{"folds": [0, 1, 2')
    at = _app("views/compare.py", dataset=DATASET, config="3d_fullres", trainer="nnUNetTrainer")
    assert_no_crash(at)
    assert "The find_best_configuration result cannot be read" in page_texts(at)


def test_compare_shows_what_find_best_wrote(tree: FixtureTree) -> None:
    dataset_dir = tree.root / DATASET
    info = {"folds": [0, 1], "dataset_name_or_id": DATASET, "ensembling_allowed": True,
            "all_results": {MODEL: 0.81, f"ensemble___{MODEL}___B__nnUNetPlans__3d_fullres___0_1": 0.83},
            "best_model_or_ensemble": {
                "result_on_crossval_pre_pp": 0.83, "result_on_crossval_post_pp": 0.835,
                "postprocessing_file": str(dataset_dir / "ensembles" / "postprocessing.pkl"),
                "some_plans_file": str(dataset_dir / MODEL / "plans.json"),
                "selected_model_or_models": [
                    {"configuration": "3d_fullres", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"},
                    {"configuration": "3d_fullres", "trainer": "B", "plans_identifier": "nnUNetPlans"}]}}
    (dataset_dir / "inference_information.json").write_text(json.dumps(info))
    commands = [f"nnUNetv2_predict -d {DATASET} -i INPUT_FOLDER -o OUTPUT_FOLDER_MODEL_1 -f  0 1",
                "nnUNetv2_ensemble -i OUTPUT_FOLDER_MODEL_1 OUTPUT_FOLDER_MODEL_2 -o OUTPUT_FOLDER -np 8"]
    (dataset_dir / "inference_instructions.txt").write_text("***Run inference like this:***\n\n"
                                                            + "\n\n".join(commands) + "\n")
    at = _app("views/compare.py", dataset=DATASET, config="3d_fullres", trainer="nnUNetTrainer")
    assert_no_crash(at)
    text = page_texts(at)
    assert f"**Best ensemble (find_best_configuration, folds 0, 1):** `{MODEL}` + `B__nnUNetPlans__3d_fullres`" in text
    results = next(df.value for df in at.dataframe if "Model or ensemble" in df.value.columns)
    assert dict(zip(results["Model or ensemble"], results["CV Dice"])) == {
        name: f"{dice:.4f}" for name, dice in info["all_results"].items()}
    assert list(results["Chosen"]) == ["✓", ""]
    assert "\n".join(commands) in [c.value for c in at.code]
    assert {m.label: m.value for m in at.metric}["CV Dice after postprocessing"] == "0.8350"
