"""Two plans of one trainer (nnUNetPlans and a ResEnc preset, both with a fold_0) are two trained models: the
overview and Compare show them as two groups, each with its own folds, and an old Compare link still opens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from app_support import assert_no_crash, dashboard_env, open_page, page_texts
from streamlit.testing.v1 import AppTest

from monitor.synth import CurveSpec, RunSpec, write_run

TIMEOUT = 90
DATASET, TRAINER, RESENC = "Dataset210_Liver", "nnUNetTrainer", "nnUNetResEncUNetMPlans"


@dataclass(frozen=True)
class TwoPlans:
    default_runs: list[str]  # nnUNetPlans: folds 0 and 1, finished
    resenc_runs: list[str]  # nnUNetResEncUNetMPlans: fold 0 only, still running


@pytest.fixture(scope="module")
def two_plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoPlans]:
    base = tmp_path_factory.mktemp("plans")
    root = base / "nnUNet_results"
    specs = [
        RunSpec(DATASET, TRAINER, "3d_fullres", 0, 300, CurveSpec((0.78, 0.66), timescale=0.3, seed=1)),
        RunSpec(DATASET, TRAINER, "3d_fullres", 1, 300, CurveSpec((0.80, 0.70), timescale=0.3, seed=2)),
        RunSpec(DATASET, TRAINER, "3d_fullres", 0, 200, CurveSpec((0.90, 0.84), timescale=0.2, seed=9),
                epochs_done=120, state="running", plans=RESENC),
    ]
    ids = [write_run(root, spec).folder.relative_to(root).as_posix() for spec in specs]
    env = {"NNWATCH_ROOT": str(root), "NNWATCH_STATE": str(base / "state"),
           "NNWATCH_JOBS_DB": str(base / "jobs.sqlite3"), "NNWATCH_HOST": "127.0.0.1",
           "nnUNet_results": str(root), "nnUNet_preprocessed": str(base / "nnUNet_preprocessed")}
    with dashboard_env(env):
        yield TwoPlans(ids[:2], ids[2:])


def _fold_table(at: AppTest) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if "Run" in df.value.columns).set_index("Fold")


def _files_table(at: AppTest) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if "Files" in df.value.columns).set_index("Fold")


def _links(ids: list[str]) -> list[str]:
    return sorted("run?id=" + run_id.replace("/", "%2F") for run_id in ids)


def _chart_folds(at: AppTest) -> list[str]:
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    return sorted(trace["name"] for trace in figure["data"] if str(trace.get("name", "")).startswith("fold "))


def test_overview_shows_one_group_per_plans(two_plans: TwoPlans) -> None:
    at = open_page(None, timeout=TIMEOUT)
    assert_no_crash(at)
    groups = next(df.value for df in at.dataframe if "Folds" in df.value.columns).set_index("Trainer")
    assert sorted(groups.index) == [TRAINER, f"{TRAINER} · {RESENC}"]
    assert groups.loc[TRAINER, "Folds"].split() == ["0✓", "1✓"]
    assert groups.loc[f"{TRAINER} · {RESENC}", "Folds"].split() == ["0▶"]
    assert groups.loc[TRAINER, "Finished"] == "2 / 5"
    assert groups.loc[f"{TRAINER} · {RESENC}", "Running"] == 1
    assert "Root" not in groups.columns  # one results root: no root to name


def test_compare_lists_both_plans_and_shows_each_ones_fold_0(two_plans: TwoPlans) -> None:
    at = open_page("views/compare.py", timeout=TIMEOUT, dataset=DATASET, config="3d_fullres", trainer=TRAINER,
                   plans=RESENC)
    assert_no_crash(at)
    picker = at.selectbox(key="cmp_group")
    assert picker.options == [f"{DATASET} · 3d_fullres · {TRAINER} (2 folds)",
                              f"{DATASET} · 3d_fullres · {TRAINER} · {RESENC} (1 fold)"]
    assert picker.options[picker.index].endswith(f"{RESENC} (1 fold)")
    resenc = _fold_table(at)
    assert sorted(link for link in resenc["Run"] if link) == _links(two_plans.resenc_runs)
    assert resenc.loc["0", "Epoch"] == "120 / 200"
    assert _chart_folds(at) == ["fold 0"]
    assert _files_table(at).loc["1", "Files"] == "not trained"  # this model has no fold 1 yet
    assert at.button(key="steps_cmp_train_1")  # so next steps offer to train it

    picker.set_value(picker.options[0]).run()
    assert_no_crash(at)
    default = _fold_table(at)
    assert sorted(link for link in default["Run"] if link) == _links(two_plans.default_runs)
    assert default.loc["0", "Epoch"] == "300 / 300"
    assert default.loc["0", "Best EMA"] != resenc.loc["0", "Best EMA"]
    assert _chart_folds(at) == ["fold 0", "fold 1"]
    assert _files_table(at).loc["1", "Files"] != "not trained"
    assert at.query_params["plans"] == "nnUNetPlans"


def test_an_old_compare_link_opens_the_default_plans(two_plans: TwoPlans) -> None:
    at = open_page("views/compare.py", timeout=TIMEOUT, dataset=DATASET, config="3d_fullres", trainer=TRAINER)
    assert_no_crash(at)
    picker = at.selectbox(key="cmp_group")
    assert picker.options[picker.index] == f"{DATASET} · 3d_fullres · {TRAINER} (2 folds)"
    assert sorted(link for link in _fold_table(at)["Run"] if link) == _links(two_plans.default_runs)
    assert "Next steps for this configuration" in page_texts(at)


def test_compare_link_to_a_model_that_is_gone_opens_the_largest_group(two_plans: TwoPlans) -> None:
    at = open_page("views/compare.py", timeout=TIMEOUT, dataset=DATASET, config="3d_fullres", trainer=TRAINER,
                   plans="nnUNetResEncUNetLPlans")
    assert_no_crash(at)
    picker = at.selectbox(key="cmp_group")
    assert picker.options[picker.index] == f"{DATASET} · 3d_fullres · {TRAINER} (2 folds)"
