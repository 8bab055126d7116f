"""The dashboard over several results roots (``nnwatch serve --root A --root B``): every root's runs in one overview,
each labelled with its root, and a run page of any root opened by its labelled id."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd
import pytest
import streamlit as st
from app_support import runs_table
from paths import REPO
from streamlit.testing.v1 import AppTest

from app.dashboard.downloads import dataset_report
from app.dashboard.roots_store import RootsStore, group_root
from app.dashboard.store import RunStore
from app.dashboard.tables import model_groups
from app.served import root_labels
from monitor.report.data import find_group
from monitor.report.multi import load_group
from monitor.synth import CurveSpec, RunSpec, write_folds, write_run
from trainer import Job, JobKind, JobRegistry, JobState

MAIN = str(REPO / "app" / "dashboard" / "main.py")


@dataclass(frozen=True)
class TwoRoots:
    new_root: Path
    old_root: Path
    new_runs: list[str]
    old_run: str
    old_copies: list[str]  # the new root's model, also found on the old disk (other folds, other curves)


def _serve(patch: pytest.MonkeyPatch, roots: list[Path], base: Path) -> None:
    """The dashboard's environment for ``roots`` served together from 127.0.0.1, its state and jobs in ``base``."""
    patch.setenv("NNWATCH_ROOT", os.pathsep.join(str(root) for root in roots))
    patch.setenv("NNWATCH_STATE", str(base / "state"))
    patch.setenv("NNWATCH_JOBS_DB", str(base / "jobs.sqlite3"))
    patch.setenv("NNWATCH_HOST", "127.0.0.1")
    for name in ("nnUNet_results", "NNWATCH_USERS_FILE", "NNWATCH_OPEN_VIEW", "NNWATCH_BACKEND_FACTORY"):
        patch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRoots]:
    base = tmp_path_factory.mktemp("roots")
    new_root, old_root = base / "lab" / "nnUNet_results", base / "old_disk" / "nnUNet_results"
    folders = write_folds(new_root, "Dataset301_Heart", "3d_fullres", [200, 200], planned=200)
    write_run(old_root, RunSpec("Task002_Heart", "nnUNetTrainerV2", "3d_fullres", 0, 150, CurveSpec(seed=3),
                                version="v1", plans="nnUNetPlansv2.1"))
    old_run = "nnUNet/3d_fullres/Task002_Heart/nnUNetTrainerV2__nnUNetPlansv2.1/fold_0"
    copies = write_folds(old_root, "Dataset301_Heart", "3d_fullres", [200, 120], planned=200, seed=30)
    parent = folders[0]  # an extension job of the first root's fold 0, as the registry records it
    child = parent.parent.parent / "nnUNetTrainer_400epochs__nnUNetPlans__3d_fullres" / "fold_0"
    JobRegistry(base / "jobs.sqlite3").create(Job(
        job_id="job-roots-1", state=JobState.SUCCEEDED, parent_run_id=parent.relative_to(new_root).as_posix(),
        parent_path=str(parent), new_run_id=child.relative_to(new_root).as_posix(), new_run_path=str(child),
        new_trainer="nnUNetTrainer_400epochs", epochs=400, backend="local", device="cpu", requested_by="alice",
        created_at="2026-01-01T00:00:00+00:00", argv=("true",), env={}, job_dir=str(base / "job"),
        log_path=str(base / "job" / "log.txt"), kind=JobKind.EXTEND))
    st.cache_resource.clear()
    with pytest.MonkeyPatch.context() as patch:
        _serve(patch, [new_root, old_root], base)
        yield TwoRoots(new_root, old_root, [f"lab-nnUNet_results/{f.relative_to(new_root).as_posix()}"
                                            for f in folders], f"old_disk-nnUNet_results/{old_run}",
                       [f"old_disk-nnUNet_results/{f.relative_to(old_root).as_posix()}" for f in copies])
    st.cache_resource.clear()
    st.cache_data.clear()


def _no_crash(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_overview_lists_the_runs_of_every_root_with_their_root(roots: TwoRoots) -> None:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    _no_crash(at)
    runs = runs_table(at)
    assert sorted(runs["run_id"]) == sorted([*roots.new_runs, roots.old_run, *roots.old_copies])
    where = dict(zip(runs["run_id"], runs["Root"]))
    assert where[roots.old_run] == "old_disk-nnUNet_results"
    assert {where[run] for run in roots.new_runs} == {"lab-nnUNet_results"}
    assert {where[run] for run in roots.old_copies} == {"old_disk-nnUNet_results"}
    assert runs.set_index("run_id").loc[roots.old_run, "Trainer"].endswith("(v1)")
    assert runs.set_index("run_id").loc[roots.new_runs[0], "Job"] == "succeeded: → 400 ep (job-roots-1)"
    assert {m.label: m.value for m in at.metric}["Runs"] == "5"
    sidebar = " ".join(str(c.value) for c in at.sidebar.caption)
    assert str(roots.new_root) in sidebar and str(roots.old_root) in sidebar


def test_a_run_of_the_second_root_opens_by_its_id(roots: TwoRoots) -> None:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    at.query_params.update({"id": roots.old_run})
    at.switch_page("views/run.py").run()
    _no_crash(at)
    texts = "\n".join(str(part.value) for part in [*at.markdown, *at.caption, *at.warning, *at.info])
    assert "No run `" not in texts
    assert "v1 runs cannot be extended" in texts
    assert {m.label: m.value for m in at.metric}["Status"] == "✓ finished"


def _compare(at: AppTest, **query: str) -> AppTest:
    """Compare opened from the page ``at`` shows, with ``query`` in its URL; it must not crash."""
    at.query_params.update(query)
    at.switch_page("views/compare.py").run()
    _no_crash(at)
    return at


def _overview() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    return at


def test_compare_page_shows_the_folds_of_the_second_root(roots: TwoRoots) -> None:
    at = _compare(_overview(), dataset="Task002_Heart", config="3d_fullres", trainer="nnUNetTrainerV2")
    folds = next(df.value for df in at.dataframe if "Run" in df.value.columns)
    assert [link for link in folds["Run"] if link] == ["run?id=" + roots.old_run.replace("/", "%2F")]


def test_one_model_in_two_roots_is_two_groups_on_the_overview(roots: TwoRoots) -> None:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    _no_crash(at)
    groups = next(df.value for df in at.dataframe if "Folds" in df.value.columns)
    heart = groups[groups["Dataset"] == "Dataset301_Heart"].set_index("Root")
    assert sorted(heart.index) == ["lab-nnUNet_results", "old_disk-nnUNet_results"]
    assert heart.loc["lab-nnUNet_results", "Folds"].split() == ["0✓", "1✓"]
    assert heart.loc["old_disk-nnUNet_results", "Folds"].split() == ["0✓", "1✗"]
    assert heart.loc["lab-nnUNet_results", "Finished"] == "2 / 5"
    assert heart.loc["old_disk-nnUNet_results", "Finished"] == "1 / 5"
    assert heart["Crashed"].tolist() == [0, 1]
    assert set(heart["Trainer"]) == {"nnUNetTrainer"}
    runs = runs_table(at).set_index("run_id")
    for root, ids in (("lab-nnUNet_results", roots.new_runs), ("old_disk-nnUNet_results", roots.old_copies)):
        best = runs.loc[ids, "Best EMA"].astype(float)
        shown = [float(part) for part in heart.loc[root, "Best EMA (mean ± SD)"].split(" ± ")]
        assert shown == pytest.approx([best.mean(), best.std(ddof=1)], abs=1.1e-4)  # the folds' 4-decimal values
    assert "3 group(s) of folds" in [str(c.value) for c in at.caption]


def test_a_selected_group_links_to_compare_with_its_plans_and_root(roots: TwoRoots) -> None:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    groups = next(df.value for df in at.dataframe if "Folds" in df.value.columns).reset_index(drop=True)
    old = groups.index[(groups["Dataset"] == "Dataset301_Heart") & (groups["Root"] == "old_disk-nnUNet_results")]
    at.session_state["groups_table"] = {"selection": {"rows": [int(old[0])], "columns": [], "cells": []}}
    at.run()
    _no_crash(at)
    links = {link.proto.label: link.proto for link in at.get("page_link")}
    assert links["Compare these folds"].page == "compare"
    assert parse_qs(links["Compare these folds"].query_string) == {
        "dataset": ["Dataset301_Heart"], "config": ["3d_fullres"], "trainer": ["nnUNetTrainer"],
        "plans": ["nnUNetPlans"], "root": ["old_disk-nnUNet_results"]}
    assert parse_qs(links["Cross-validation table"].query_string) == {
        "dataset": ["Dataset301_Heart"], "model": ["old_disk-nnUNet_results/nnUNetTrainer__nnUNetPlans__3d_fullres"]}


def test_the_datasets_page_tells_the_roots_apart(roots: TwoRoots) -> None:
    """One model in two roots is two rows of the Datasets page, each named by its root; a link names which."""
    at = _overview()
    at.query_params.update({"dataset": "Dataset301_Heart",
                            "model": "old_disk-nnUNet_results/nnUNetTrainer__nnUNetPlans__3d_fullres"})
    at.switch_page("views/dataset.py").run()
    _no_crash(at)
    models = next(df.value for df in at.dataframe if "model" in df.value.columns)
    assert sorted(models["Root"]) == ["lab-nnUNet_results", "old_disk-nnUNet_results"]
    assert at.query_params["model"] == "old_disk-nnUNet_results/nnUNetTrainer__nnUNetPlans__3d_fullres"


def test_the_png_report_of_a_group_draws_the_folds_of_its_own_root(roots: TwoRoots) -> None:
    stores = [RunStore(roots.new_root), RunStore(roots.old_root)]
    try:
        served = RootsStore(stores)
        table = served.table()
        old = next(g for g in model_groups(table) if g.dataset == "Dataset301_Heart" and g.root.startswith("old"))
        assert group_root(served, old) == roots.old_root
        png = dataset_report(group_root(served, old), old.dataset, old.configuration, old.trainer, plans=old.plans)()
        assert png.startswith(b"\x89PNG")
        folds = load_group(find_group(group_root(served, old), old.dataset, old.configuration, old.trainer,
                                      old.plans), group_root(served, old))
        assert [(row.fold, row.data.epochs_done if row.data else 0) for row in folds] == [("0", 200), ("1", 120)]
    finally:
        for store in stores:
            store.close()


def _fold_table(at: AppTest) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if "Run" in df.value.columns)


def _chart_folds(at: AppTest) -> list[str]:
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    return sorted(trace["name"] for trace in figure["data"] if str(trace.get("name", "")).startswith("fold "))


def _links(ids: list[str]) -> list[str]:
    return sorted("run?id=" + run_id.replace("/", "%2F") for run_id in ids)


def test_compare_offers_the_model_of_each_root_with_its_own_folds(roots: TwoRoots) -> None:
    at = _compare(_overview(), dataset="Dataset301_Heart", config="3d_fullres", trainer="nnUNetTrainer",
                  plans="nnUNetPlans", root="old_disk-nnUNet_results")
    picker = at.selectbox(key="cmp_group")
    assert [o for o in picker.options if o.startswith("Dataset301_Heart")] == [
        "Dataset301_Heart · 3d_fullres · nnUNetTrainer · lab-nnUNet_results (2 folds)",
        "Dataset301_Heart · 3d_fullres · nnUNetTrainer · old_disk-nnUNet_results (2 folds)"]
    folds = _fold_table(at)
    assert sorted(link for link in folds["Run"] if link) == _links(roots.old_copies)
    assert folds.set_index("Fold").loc["1", "Epoch"] == "120 / 200"
    assert _chart_folds(at) == ["fold 0", "fold 1"]
    picker.set_value(next(v for v in picker.options if "lab-nnUNet_results" in v)).run()
    _no_crash(at)
    folds = _fold_table(at)
    assert sorted(link for link in folds["Run"] if link) == _links(roots.new_runs)
    assert folds.set_index("Fold").loc["1", "Epoch"] == "200 / 200"
    assert _chart_folds(at) == ["fold 0", "fold 1"]
    assert at.query_params["root"] == "lab-nnUNet_results"  # the link names the model shown


def test_overview_and_compare_state_one_spread_of_the_folds(roots: TwoRoots) -> None:
    """A group's best EMA mean ± SD reads the same on the overview and in Compare's fold table (sample SD)."""
    at = _overview()
    groups = next(df.value for df in at.dataframe if "Folds" in df.value.columns)
    heart = groups[groups["Dataset"] == "Dataset301_Heart"].set_index("Root")
    on_overview = heart.loc["lab-nnUNet_results", "Best EMA (mean ± SD)"]
    _compare(at, dataset="Dataset301_Heart", config="3d_fullres", trainer="nnUNetTrainer", plans="nnUNetPlans",
             root="lab-nnUNet_results")
    summary_row = _fold_table(at).iloc[-1]
    assert summary_row["Fold"] == "mean ± SD" and " ± " in on_overview
    assert summary_row["Best EMA"] == on_overview


def test_an_old_compare_link_without_root_still_opens(roots: TwoRoots) -> None:
    at = _compare(_overview(), dataset="Dataset301_Heart", config="3d_fullres", trainer="nnUNetTrainer")
    picker = at.selectbox(key="cmp_group")
    assert picker.options[picker.index] == \
        "Dataset301_Heart · 3d_fullres · nnUNetTrainer · lab-nnUNet_results (2 folds)"
    assert sorted(link for link in _fold_table(at)["Run"] if link) == _links(roots.new_runs)


def test_root_labels_are_folder_names_told_apart_by_their_parents() -> None:
    assert root_labels([Path("/data/results"), Path("/mnt/old_v1")]) == ["results", "old_v1"]
    assert root_labels([Path("/data/nnUNet_results"), Path("/mnt/old/nnUNet_results")]) == \
        ["data-nnUNet_results", "old-nnUNet_results"]
    assert root_labels([Path("/a/b/r"), Path("/c/b/r"), Path("/r")]) == ["a-b-r", "c-b-r", "r"]


def test_find_best_offers_the_models_of_the_runs_own_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """find-best runs in one results root: another root's trainers and configurations of the same dataset are not
    offered (nnU-Net would find no folds of them there)."""
    here, other = tmp_path / "lab" / "nnUNet_results", tmp_path / "old" / "nnUNet_results"
    (fold,) = write_folds(here, "Dataset301_Heart", "3d_fullres", [100], planned=100)
    write_run(other, RunSpec("Dataset301_Heart", "nnUNetTrainerDA5", "2d", 0, 100, CurveSpec(seed=4)))
    _serve(monkeypatch, [here, other], tmp_path)
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(MAIN, default_timeout=60)
        at.run()
        at.query_params.update({"id": f"lab-nnUNet_results/{fold.relative_to(here).as_posix()}"})
        at.switch_page("views/run.py").run()
        _no_crash(at)
        assert at.multiselect(key="steps_run_fb_trainers").options == ["nnUNetTrainer"]
        assert at.multiselect(key="steps_run_fb_configs").options == ["3d_fullres"]
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
