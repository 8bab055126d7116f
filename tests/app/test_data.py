"""The dashboard's Streamlit-free parts: the shared store, the overview tables, the compare maths, the demo."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_support import FixtureTree, append_epoch, build_fixture_tree

from app.dashboard.compare_data import FoldRow, fold_band, fold_table, with_fraction
from app.dashboard.store import RunStore, StoreError
from app.dashboard.tables import (
    Filters,
    apply_filters,
    fmt_duration,
    groups_frame,
    run_link,
    runs_frame,
    runs_of,
)
from app.demo import DEMO_RUNNING, build_demo_tree
from monitor import scan
from monitor.runs import extension_pairs
from monitor.synth import CurveSpec, RunSpec, write_run


@pytest.fixture
def tree(tmp_path: Path) -> FixtureTree:
    return build_fixture_tree(tmp_path)


def test_store_picks_up_appended_epochs(tree: FixtureTree) -> None:
    store = RunStore(tree.root)
    try:
        before = store.summary(tree.running)
        assert before is not None and before.status == "running" and before.eta_s > 0
        verdict = store.analysis(tree.running).verdict.value  # type: ignore[union-attr]
        assert store.table().set_index("run_id").loc[tree.running, "verdict"] == verdict
        append_epoch(tree, tree.running, before.epochs_completed)
        deadline = time.monotonic() + 20
        version = store.version
        while store.summary(tree.running).epochs_completed == before.epochs_completed:
            assert time.monotonic() < deadline, "the new epoch never arrived"
            version = store.wait_for_change(version, timeout=2.0)
        after = store.summary(tree.running)
        assert after.epochs_completed == before.epochs_completed + 1
        assert len(store.frame(tree.running)) == after.epochs_completed
        assert store.table().set_index("run_id").loc[tree.running, "epochs_completed"] == after.epochs_completed
    finally:
        store.close()


def test_store_matches_scan_and_follows_deleted_runs(tree: FixtureTree) -> None:
    store = RunStore(tree.root)
    try:
        reference = scan(tree.root, verdicts=True, workers=1).set_index("run_id")
        table = store.table().set_index("run_id")
        assert sorted(table.index) == sorted(reference.index)
        for column in ("epochs_completed", "verdict", "last_ema_fg_dice"):
            pd.testing.assert_series_equal(table[column].astype(object),
                                           reference.loc[table.index, column].astype(object), check_names=False)
        assert store.analysis(tree.improving).verdict.value == "improving"
        version = store.version
        shutil.rmtree(tree.root / tree.plateau)
        deadline = time.monotonic() + 20
        while tree.plateau in store.run_ids():
            assert time.monotonic() < deadline, "the deleted run is still listed"
            version = store.wait_for_change(version, timeout=2.0)
        assert tree.plateau not in set(store.table()["run_id"])
        assert store.summary("nope") is None and store.frame("nope") is None and store.analysis("nope") is None
    finally:
        store.close()


def test_the_run_page_warm_up_draws_a_run_once_the_tree_has_one_with_epochs(tmp_path: Path) -> None:
    """A server started on a tree whose runs have not finished an epoch yet still warms the run page later."""
    import base64
    import json

    import streamlit as st

    from app.dashboard.run_charts import warm_figures

    root = tmp_path / "nnUNet_results"
    root.mkdir()
    st.cache_resource.clear()
    store = RunStore(root)
    try:
        assert warm_figures(store) == "[]"
        version = store.version
        write_run(root, RunSpec("Dataset201_Kidney", "nnUNetTrainer", "3d_fullres", 0, 120, CurveSpec(seed=2)))
        deadline = time.monotonic() + 20

        def epochs() -> int:
            summaries = [store.summary(run_id) for run_id in store.run_ids()]
            return max((s.epochs_completed for s in summaries if s is not None), default=0)

        while epochs() < 120:  # the folder can be seen before its log is whole
            assert time.monotonic() < deadline, "the new run's epochs never arrived"
            version = store.wait_for_change(version, timeout=2.0)
        figures = json.loads(warm_figures(store))
        assert len(figures) == 2 and figures[0]["layout"]["title"]["text"] == "Validation pseudo Dice"
        x = figures[0]["data"][0]["x"]  # plotly's binary form of an array
        assert 40 <= len(np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])) < 120  # thinned
    finally:
        store.close()
        st.cache_resource.clear()


def test_store_on_a_missing_root_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        RunStore(tmp_path / "missing")


def test_overview_tables(tree: FixtureTree) -> None:
    table = scan(tree.root, verdicts=True, workers=1)
    table["eta_s"] = np.where(table["status"] == "running", 3 * 3600 + 600, np.nan)
    runs = runs_frame(table)
    assert list(runs.columns[:7]) == ["Open", "Dataset", "Config", "Trainer", "Fold", "Status", "Epoch"]
    row = runs.set_index("run_id").loc[tree.running]
    assert row["Epoch"] == "120 / 300" and row["ETA"] == "3 h 10 min" and row["Status"] == "▶ running"
    assert row["Open"] == "run?id=" + tree.running.replace("/", "%2F")
    assert row["Last EMA"] == f"{table.set_index('run_id').loc[tree.running, 'last_ema_fg_dice']:.4f}"
    table.loc[table["run_id"] == tree.running, ["last_ema_fg_dice", "best_ema_fg_dice"]] = np.nan  # no epochs yet
    assert runs_frame(table).set_index("run_id").loc[tree.running, ["Last EMA", "Best EMA"]].tolist() == ["–", "–"]
    groups = groups_frame(table)
    kidney = groups[groups["Dataset"] == "Dataset201_Kidney"].iloc[0]
    assert kidney["Folds"].split() == ["0✓", "1✓", "2▶", "3?", "4✗"]
    assert " ± " in kidney["Best EMA (mean ± SD)"]
    assert runs_frame(table.iloc[0:0]).empty and groups_frame(table.iloc[0:0]).empty


def test_overview_tables_send_each_repeated_text_once(tree: FixtureTree) -> None:
    """A lab's thousands of runs share a few datasets, trainers, statuses and reasons: the browser gets each text
    once (Arrow dictionaries), which keeps the 10,000-run overview's message small."""
    from streamlit.dataframe_util import convert_pandas_df_to_arrow_bytes as arrow_bytes

    one = scan(tree.root, verdicts=True, workers=1)
    many = pd.concat([one.assign(run_id=one["run_id"] + f"_{k}", dataset=one["dataset"] + f"_{k % 50}")
                      for k in range(200)], ignore_index=True)  # 1,600 runs in 200 fold groups
    for frame in (runs_frame(many).drop(columns="run_id"), groups_frame(many)):
        plain = frame.astype({c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})
        assert len(arrow_bytes(frame)) < 0.5 * len(arrow_bytes(plain)), list(frame.columns)
        assert frame.astype(str).to_numpy().tolist() == plain.astype(str).to_numpy().tolist(), "the same texts"
    runs = runs_frame(many)
    few = runs_of(runs, many["run_id"].iloc[[5, 900, 3]])  # a filtered table: in the table's order
    assert few["run_id"].tolist() == many["run_id"].iloc[[3, 5, 900]].tolist()
    pd.testing.assert_frame_equal(runs_of(runs, many["run_id"].iloc[::-1]), runs)  # every run: all, in order
    alone = runs_frame(many.iloc[[3, 5, 900]])
    assert len(arrow_bytes(few.drop(columns="run_id"))) <= len(arrow_bytes(alone.drop(columns="run_id"))), \
        "a filtered table carries its rows' texts, not every run's"


def test_filters_round_trip_and_apply(tree: FixtureTree) -> None:
    table = scan(tree.root, verdicts=True, workers=1)
    filters = Filters.from_query({"status": "running,finished", "dataset": ["Dataset202_Spleen"], "q": "400"})
    assert filters.to_query() == {"dataset": "Dataset202_Spleen", "status": "running,finished", "q": "400"}
    assert list(apply_filters(table, filters)["run_id"]) == [tree.extended]
    assert len(apply_filters(table, Filters())) == len(table) and not Filters().active


@pytest.mark.parametrize(("seconds", "text"), [(None, ""), (float("nan"), ""), (0, "0 min"), (30, "1 min"),
                                               (3 * 3600 + 120, "3 h 02 min"), (2 * 86400 + 5 * 3600, "2 d 5 h")])
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_run_link_encodes_everything() -> None:
    assert run_link("a b/c&d") == "run?id=a%20b%2Fc%26d"


def test_fold_band_and_fraction() -> None:
    a = pd.DataFrame({"epoch": [0, 1, 2], "ema_fg_dice": [0.1, 0.2, 0.3]})
    b = pd.DataFrame({"epoch": [0, 1], "ema_fg_dice": [0.3, 0.4]})
    band = fold_band({"0": a, "1": b})
    assert band["mean"].round(6).tolist() == [0.2, 0.3] and band["n"].tolist() == [2, 2]
    assert fold_band({"0": a})["n"].tolist() == [1, 1, 1], "a single fold is still drawn"
    child = pd.DataFrame({"epoch": np.arange(50), "ema_fg_dice": np.linspace(0.5, 0.7, 50)})
    assert with_fraction(child, 200)["fraction"].iloc[-1] == pytest.approx(0.25)


def test_the_fold_table_ends_with_mean_and_sd_and_links_each_fold() -> None:
    rows = [FoldRow("0", "✓ finished", "1000 / 1000", 0.80, 0.81, 0.85, "plateau", "run?id=a"),
            FoldRow("1", "✓ finished", "1000 / 1000", 0.84, 0.85, None, "improving", "run?id=b")]
    table = fold_table(rows)
    assert table["Run"].tolist()[:2] == ["run?id=a", "run?id=b"]
    last = table.iloc[-1]
    assert last["Fold"] == "mean ± SD"
    assert last["Last EMA"] == f"0.8200 ± {np.std([0.80, 0.84], ddof=1):.4f}"
    assert last["Final val Dice"] == "0.8500 (1 fold)"
    assert table.iloc[0]["Best EMA"] == "0.8100"


def test_extension_pairs_from_names_and_jobs(tree: FixtureTree) -> None:
    table = scan(tree.root, workers=1)
    assert extension_pairs(table) == [(tree.parent, tree.extended, "trainer name")]

    class _Job:
        job_id, parent_run_id, new_run_id = "abc123", tree.plateau, tree.improving

    assert (tree.plateau, tree.improving, "job abc123") in extension_pairs(table, [_Job()])

    class _Validation:  # a job that writes into the run it was planned from extends nothing
        job_id, parent_run_id, new_run_id = "def456", tree.plateau, tree.plateau

    assert extension_pairs(table, [_Validation()]) == extension_pairs(table)


def test_demo_tree_shows_every_situation(tmp_path: Path) -> None:
    root, trainer = build_demo_tree(tmp_path, live=True, interval_s=0.05)
    assert trainer is not None
    try:
        log = sorted((root / DEMO_RUNNING[0]).glob("training_log_*.txt"))[0]
        size = log.stat().st_size
        trainer.step()
        assert log.stat().st_size > size
    finally:
        trainer.stop()
    table = scan(root, verdicts=True, workers=1).set_index("run_id")
    assert {"improving", "plateau", "declining"} <= set(table["verdict"])
    assert {"running", "finished", "crashed"} <= set(table["status"])
    assert all(table.loc[run, "status"] == "running" for run in DEMO_RUNNING)
    assert "v1" in set(table["nnunet_version"])
    folds = table[(table["dataset"] == "Dataset101_Prostate") & (table["trainer"] == "nnUNetTrainer")
                  & (table["configuration"] == "3d_fullres")]
    assert sorted(folds["fold"]) == ["0", "1", "2", "3", "4"]
    assert extension_pairs(table.reset_index())[0][1] == DEMO_RUNNING[0]
    assert all(not problems for problems in table["problems"])
    finished_v2 = table.index[(table["status"] == "finished") & (table["nnunet_version"] == "v2")]
    assert len(finished_v2) >= 5 and all((root / run / "checkpoint_final.pth").is_file() for run in finished_v2)
    assert os.path.getmtime(log) > os.path.getmtime(root / table.index[table["status"] == "crashed"][0]
                                                     / "debug.json")


def test_the_demos_job_history_reads_like_jobs_that_ran(tmp_path: Path) -> None:
    """Each ended demo job was created, started and ended in that order, in the past, with its exit code."""
    from datetime import datetime

    from app.demo import write_demo_jobs
    from trainer import JobRegistry, JobState

    write_demo_jobs(tmp_path / "jobs.sqlite3", tmp_path / "nnUNet_results")
    jobs = JobRegistry(tmp_path / "jobs.sqlite3").list_jobs()
    assert {job.state for job in jobs} == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    now = datetime.now().astimezone()
    for job in jobs:
        assert job.started_at is not None and job.finished_at is not None, job
        created, started, finished = (datetime.fromisoformat(t) for t in (job.created_at, job.started_at,
                                                                           job.finished_at))
        assert created < started < finished < now, job
        assert job.exit_code == {JobState.SUCCEEDED: 0, JobState.FAILED: 1, JobState.CANCELLED: -15}[job.state]


def test_png_downloads_come_from_the_report_renderer(tree: FixtureTree) -> None:
    from app.dashboard.downloads import compare_report, dataset_report, run_report
    from monitor.analyze import analyze_run

    png = b"\x89PNG\r\n\x1a\n"
    run_dir = tree.root / tree.improving
    assert run_report(run_dir, analyze_run(run_dir), 10)().startswith(png)
    assert dataset_report(tree.root, "Dataset201_Kidney", "3d_fullres", "nnUNetTrainer")().startswith(png)
    assert compare_report(tree.root / tree.parent, tree.root / tree.extended, "fraction")().startswith(png)


def test_every_page_prints_a_moment_one_way() -> None:
    """Registry times (``+00:00``), run-table times (``Z``), another offset and seconds since the epoch all read
    ``2026-11-27 21:17:49 UTC``: the Jobs page, the notifications history and a crashed run's note agree."""
    from datetime import datetime, timezone

    from monitor.numbers import moment

    seconds = datetime(2026, 11, 27, 21, 17, 49, tzinfo=timezone.utc).timestamp()
    shown = {moment(v) for v in ("2026-11-27T21:17:49+00:00", "2026-11-27T21:17:49Z",
                                      "2026-11-27T22:17:49+01:00", seconds)}
    assert shown == {"2026-11-27 21:17:49 UTC"}
    assert moment(None) == moment("") == moment("yesterday") == "–"
