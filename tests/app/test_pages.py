"""Every dashboard page under AppTest over a fixture tree with bad runs: no exceptions, right rows, verdicts,
the extend dialog creating exactly one job (real SQLite registry, recording backend), and cancel."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import (
    DASHBOARD_MAIN,
    FixtureTree,
    assert_no_crash,
    build_fixture_tree,
    dashboard_env,
    open_page,
    page_texts,
    runs_table,
)
from streamlit.testing.v1 import AppTest

from trainer import JobRegistry, JobState
from trainer.backends import Observation

MAIN = DASHBOARD_MAIN
TIMEOUT = 90  # generous for a loaded machine


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureTree]:
    built = build_fixture_tree(tmp_path_factory.mktemp("dash"))
    with dashboard_env(built.env):
        yield built


def _app(page: str | None = None, **query: str) -> AppTest:
    at = open_page(page, timeout=TIMEOUT, **query)
    return at


def test_overview_lists_every_run_with_verdicts(tree: FixtureTree) -> None:
    at = _app()
    assert_no_crash(at)
    runs = runs_table(at)
    assert sorted(runs["run_id"]) == sorted(tree.all_runs)
    verdicts = dict(zip(runs["run_id"], runs["Verdict"]))
    assert verdicts[tree.improving] == "↗ improving"
    assert verdicts[tree.plateau] == "→ plateau"
    status = dict(zip(runs["run_id"], runs["Status"]))
    assert status[tree.running] == "▶ running"
    assert runs.set_index("run_id").loc[tree.improving, "Why"].startswith("At the end of the run")
    assert runs.set_index("run_id").loc[tree.v1, "Trainer"].endswith("(v1)")
    groups = next(df.value for df in at.dataframe if "Folds" in df.value.columns)
    kidney = groups[groups["Dataset"] == "Dataset201_Kidney"].iloc[0]
    assert kidney["Finished"] == "2 / 5"
    assert kidney["Running"] == 1
    assert {m.label: m.value for m in at.metric}["Runs"] == str(len(tree.all_runs))


def test_the_sidebar_counts_the_runs_that_became_ready_while_the_page_waited(
        tree: FixtureTree, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.dashboard import resources

    at = _app()
    counted = f"{len(tree.all_runs)} runs · "
    assert any(counted in caption.value for caption in at.sidebar.caption)
    real = resources.store
    asked: list[bool] = []

    def store(*, quiet: bool = False) -> object:  # the runs are ready once the page has waited for them
        asked.append(quiet)
        return None if all(asked) else real(quiet=quiet)

    monkeypatch.setattr(resources, "store", store)
    at.run()
    assert_no_crash(at)
    assert sorted(runs_table(at)["run_id"]) == sorted(tree.all_runs)
    assert any(counted in caption.value for caption in at.sidebar.caption)


def test_overview_filters_round_trip_through_the_url(tree: FixtureTree) -> None:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.query_params.update({"status": "running"})
    at.run()
    assert_no_crash(at)
    runs = runs_table(at)
    assert sorted(runs["run_id"]) == sorted([tree.running, tree.extended])
    at.multiselect(key="f_dataset").set_value(["Dataset202_Spleen"]).run()
    runs = runs_table(at)
    assert list(runs["run_id"]) == [tree.extended]
    assert at.query_params["dataset"] == "Dataset202_Spleen"
    assert at.query_params["status"] == "running"


@pytest.mark.parametrize("which", ["improving", "plateau", "running", "empty", "garbled", "v1", "parent",
                                   "extended"])
def test_run_page_renders_every_kind_of_run(tree: FixtureTree, which: str) -> None:
    run_id = getattr(tree, which)
    at = _app("views/run.py", id=run_id)
    assert_no_crash(at)
    text = page_texts(at)
    if which in ("improving", "plateau", "parent"):
        assert any(df for df in at.get("plotly_chart")), "the Dice chart is drawn"
        labels = {m.label for m in at.metric}
        assert {"Slope at the end", "Projected gain at 2000 ep", "Cost of 2000 epochs"} <= labels
    if which == "improving":
        assert "improving" in text and "still rising" in text
        assert "differs from the final validation Dice" in text
        assert not at.button(key="run_extend").disabled
    if which == "v1":
        assert at.button(key="run_extend").disabled
        assert "v1 runs cannot be extended" in text
    if which == "running":
        assert at.button(key="run_extend").disabled
        assert {m.label: m.value for m in at.metric}["Status"] == "▶ running"
    if which == "empty":
        assert "no training log" in text or "No completed epoch" in text
    if which == "garbled":
        assert "Needs a look" in text


def test_run_page_draws_loss_learning_rate_and_epoch_time_side_by_side_in_one_chart(tree: FixtureTree) -> None:
    at = _app("views/run.py", id=tree.improving)
    assert_no_crash(at)
    dice, panels = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))
    assert dice["layout"]["title"]["text"] == "Validation pseudo Dice"
    axes = {trace["name"]: (trace.get("xaxis", "x"), trace.get("yaxis", "y")) for trace in panels["data"]}
    assert axes["train loss"] == axes["validation loss"] == ("x", "y")
    assert axes["learning rate"] == ("x2", "y2") and axes["epoch time"] == ("x3", "y3")
    layout = panels["layout"]
    domains = [layout[f"xaxis{k}"]["domain"] for k in ("", "2", "3")]
    assert all(left[1] < right[0] for left, right in itertools.pairwise(domains)), domains  # no panel overlaps
    assert len({tuple(layout[f"xaxis{k}"]["range"]) for k in ("", "2", "3")}) == 1  # one schedule for all
    assert layout["yaxis2"]["type"] == "log"
    titles = [a["text"] for a in layout["annotations"]]
    assert titles[:3] == ["Loss", "Learning rate", "Epoch time"]
    assert [s["yref"] for s in layout["shapes"]] == ["y3"] and any(t.startswith("median ") for t in titles)
    assert {b.label for b in at.get("download_button")} >= {
        ":material/download: Loss CSV", ":material/download: Learning rate CSV", ":material/download: Epoch time CSV"}


def test_run_page_with_unknown_id_offers_a_picker(tree: FixtureTree) -> None:
    at = _app("views/run.py", id="Dataset999_Nope/x__y__z/fold_0")
    assert_no_crash(at)
    assert "No run `Dataset999_Nope/x__y__z/fold_0`" in page_texts(at)
    assert at.selectbox(key="run_picker").options


def test_compare_page_shows_folds_and_the_extended_pair(tree: FixtureTree) -> None:
    at = _app("views/compare.py", dataset="Dataset201_Kidney", config="3d_fullres", trainer="nnUNetTrainer")
    assert_no_crash(at)
    assert len(at.get("plotly_chart")) == 2
    fold_table = next(df.value for df in at.dataframe if "Fold" in df.value.columns)
    assert sorted(fold_table["Fold"]) == ["0", "1", "2", "3", "4", "mean ± SD"]
    pair = at.selectbox(key="cmp_pair")
    assert pair.value == (tree.parent, tree.extended)
    assert "Comparison rule: **end of schedule**" in page_texts(at)


def _expected_verdict_line(tree: FixtureTree, run_id: str) -> str:
    """What the dialog must say, from the analyzer's own answer (its thresholds may change)."""
    from app.dashboard.ui import verdict_supports_extend
    from monitor.analyze import analyze_run

    analysis = analyze_run(tree.root / run_id)
    return "The verdict supports a longer run" if verdict_supports_extend(analysis) else "does not support a longer run"


def test_extend_dialog_creates_exactly_one_job_and_cancel_works(tree: FixtureTree) -> None:
    registry = JobRegistry(tree.env["NNWATCH_JOBS_DB"])
    before = len(registry.list_jobs())
    at = _app("views/run.py", id=tree.improving)
    at.button(key="run_extend").click().run()
    assert_no_crash(at)
    assert at.number_input(key="extend_epochs").value == 2000
    text = page_texts(at)
    assert _expected_verdict_line(tree, tree.improving) in text
    assert "nnUNetTrainer_2000epochs" in text
    at.radio(key="extend_device").set_value("cpu").run()
    assert_no_crash(at)
    confirm = at.button(key="extend_confirm")
    assert not confirm.disabled, page_texts(at)
    confirm.click().run()
    assert_no_crash(at)
    jobs = registry.list_jobs()
    assert len(jobs) == before + 1
    job = jobs[0]
    assert job.parent_run_id == tree.improving and job.epochs == 2000 and job.new_trainer == "nnUNetTrainer_2000epochs"
    assert job.requested_by and job.state is JobState.RUNNING
    assert [e["job_id"] for e in tree.launches() if e["event"] == "launch"] == [job.job_id]
    assert f"Extend job **{job.job_id}** was created" in page_texts(at)

    # Opening the dialog again recognises the extension that is already training: no second start offered.
    at.button(key="run_extend").click().run()
    at.radio(key="extend_device").set_value("cpu").run()
    assert at.button(key="extend_confirm").disabled
    text = page_texts(at)
    assert "an extension of this run is already training" in text and job.job_id in text
    assert "delete" not in text.lower()
    assert len(registry.list_jobs()) == before + 1
    assert len([e for e in tree.launches() if e["event"] == "launch"]) == 1
    at.button(key="extend_cancel").click().run()

    jobs_page = _app("views/jobs.py", job=job.job_id)
    assert_no_crash(jobs_page)
    table = jobs_page.dataframe[0].value
    assert job.job_id in set(table["Job"])
    assert "recorded launch" in "\n".join(c.value for c in jobs_page.code)
    jobs_page.button(key="cancel_job").click().run()
    jobs_page.button(key="confirm_cancel").click().run()
    assert_no_crash(jobs_page)
    cancelled = registry.get(job.job_id)
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.cancel_requested_by == job.requested_by
    assert any(e["event"] == "cancel" for e in tree.launches())


def test_jobs_page_shows_one_state_per_job(tree: FixtureTree) -> None:
    """The table, the picker and the details of a job read the registry once: a job that ends between two readings
    never shows as running in one place and ended in another, and all three follow it."""
    registry = JobRegistry(tree.env["NNWATCH_JOBS_DB"])
    at = _app("views/run.py", id=tree.improving)
    at.button(key="run_extend").click().run()
    at.radio(key="extend_device").set_value("cpu").run()
    at.button(key="extend_confirm").click().run()
    job = registry.list_jobs()[0]

    def states(page: AppTest) -> tuple[str, str, str]:
        picker = page.selectbox(key="job_picker")
        table = page.dataframe[0].value.set_index("Job")
        details = next(h.value for h in page.subheader if h.value.startswith(f"Job {job.job_id} · "))
        return (str(table.loc[job.job_id, "State"]).split(" ", 1)[-1], picker.options[picker.index].split(" · ")[1],
                details.rsplit(" ", 1)[-1])

    jobs_page = _app("views/jobs.py", job=job.job_id)
    assert states(jobs_page) == ("running", "running", "running")
    assert registry.record_observation(registry.get(job.job_id), Observation(JobState.FAILED, reason="out of memory"))
    deadline = time.monotonic() + 30
    while True:
        seen = states(jobs_page.run())
        assert len(set(seen)) == 1, seen
        if seen[0] == "failed" or time.monotonic() > deadline:
            break
    assert seen == ("failed", "failed", "failed")


def test_extend_dialog_says_when_the_verdict_does_not_support_it(tree: FixtureTree) -> None:
    at = _app("views/run.py", id=tree.plateau)
    at.button(key="run_extend").click().run()
    assert_no_crash(at)
    assert _expected_verdict_line(tree, tree.plateau) == "does not support a longer run"
    assert "does not support a longer run" in page_texts(at)
    at.radio(key="extend_device").set_value("cpu").run()
    assert not at.button(key="extend_confirm").disabled  # allowed, just not recommended
    at.button(key="extend_cancel").click().run()
    assert "extend_confirm" not in {b.key for b in at.button}


def test_jobs_page_without_jobs_explains_how_to_start_one(tmp_path: Path, tree: FixtureTree,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNWATCH_JOBS_DB", str(tmp_path / "empty.sqlite3"))
    at = _app("views/jobs.py")
    assert_no_crash(at)
    assert "No jobs yet" in page_texts(at)


def test_overview_row_selection_offers_open_and_extend(tree: FixtureTree) -> None:
    at = _app()
    runs = runs_table(at)
    row = list(runs["run_id"]).index(tree.improving)
    at.session_state["runs_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert_no_crash(at)
    # The table shows the start of the analyzer's reason; the selected run's reason is printed whole below it.
    shown = runs["Why"].iloc[row]
    selected = next(line for line in page_texts(at).splitlines() if line.startswith("**↗ improving** — "))
    reason = selected.split(" — ", 1)[1]
    assert len(reason) > 100 and shown.endswith(" …") and reason.startswith(shown[:-2])
    assert reason.endswith(".")
    assert not at.button(key="row_extend").disabled
    at.button(key="row_extend").click().run()
    assert_no_crash(at)
    assert at.number_input(key="extend_epochs").value == 2000, "the extend dialog opened for the selected run"
    assert "Dataset201_Kidney · 3d_fullres · nnUNetTrainer · fold 0" in page_texts(at)


def test_the_run_page_warm_up_carries_run_texts_without_a_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A class name holding ``</script>`` neither ends the warm-up's script early nor reaches the page as a tag."""
    import streamlit as st

    from app.dashboard import ui

    sent: list[str] = []
    monkeypatch.setattr(st, "html", lambda body, **_: sent.append(body))
    figures = json.dumps([{"data": [{"name": "</script><img src=x onerror=alert(1)>"}], "layout": {}}])
    ui.warm_run_page(figures)
    (body,) = sent
    assert re.findall(r"<[A-Za-z/!]", body) == ["<s", "</"]  # the script's own two tags, nothing else
    literal = body[body.rindex("idle(() => ", 0, body.index(".reduce(")) + len("idle(() => "):body.index(".reduce(")]
    assert json.loads(literal) == json.loads(figures)
