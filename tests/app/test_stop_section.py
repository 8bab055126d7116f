"""Stop causes in the dashboard: the overview's "Stopped by" column and the run page's section (cause, evidence,
advice), with the cause taken from nnwatch's own job for the run (real SQLite registry, real watcher)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from app_support import runs_table
from paths import REPO
from streamlit.testing.v1 import AppTest

from app.dashboard.tables import runs_frame
from monitor.synth import FakeRun, make_run_dir
from trainer import Job, JobRegistry, JobState

MAIN = str(REPO / "app" / "dashboard" / "main.py")
OOM = (REPO / "tests" / "monitor" / "stops" / "fixtures" / "cuda_oom.txt").read_text()


@dataclass(frozen=True)
class Tree:
    root: Path
    crashed: str
    running: str


def _job(registry: JobRegistry, run_dir: Path, run_id: str) -> Job:
    job_dir = registry.job_dir("c0ffee000001")
    job_dir.mkdir(parents=True)
    (job_dir / "job.log").write_text("[nnwatch runner] starting\n" + OOM)
    job = Job(job_id="c0ffee000001", state=JobState.FAILED, parent_run_id="Dataset001_Fake/parent/fold_0",
              parent_path=str(run_dir.parent / "parent"), new_run_id=run_id, new_run_path=str(run_dir),
              new_trainer="nnUNetTrainer", epochs=2000, backend="local", device="cuda", requested_by="alice",
              created_at="2026-12-07T01:00:00+00:00", argv=("nnUNetv2_train",), env={}, job_dir=str(job_dir),
              log_path=str(job_dir / "job.log"), exit_code=1, reason="nnUNetv2_train exited with code 1")
    created, _ = registry.create(job)
    return created


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    base = tmp_path_factory.mktemp("stops_dash")
    root = base / "results"
    crashed = FakeRun(make_run_dir(root, fold=0, labels=["liver"]), planned_epochs=1000, epoch_s=60.0)
    crashed.start_session()
    crashed.history(30)
    running = FakeRun(make_run_dir(root, fold=1, labels=["liver"]), planned_epochs=1000, epoch_s=60.0)
    running.start_session()
    running.history(30)
    running.begin_epoch()
    # Written minutes ago: by its files alone the crashed run would still look alive; its job says otherwise.
    assert crashed.log_path is not None
    stamp = time.time() - 120
    os.utime(crashed.log_path, (stamp, stamp))
    registry = JobRegistry(base / "jobs.sqlite3")
    crashed_id = crashed.folder.relative_to(root).as_posix()
    _job(registry, crashed.folder, crashed_id)
    env = {"NNWATCH_ROOT": str(root), "NNWATCH_JOBS_DB": str(registry.path), "NNWATCH_HOST": "127.0.0.1",
           "NNWATCH_REFRESH_S": "1"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("NNWATCH_BACKEND_FACTORY", raising=False)
        patch.delenv("NNWATCH_USERS_FILE", raising=False)
        st.cache_resource.clear()
        st.cache_data.clear()
        yield Tree(root, crashed_id, running.folder.relative_to(root).as_posix())
    st.cache_resource.clear()
    st.cache_data.clear()


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [c.value for c in at.code]
    return "\n".join(str(p) for p in parts)


def _app(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    if page:
        at.query_params.update(query)
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_overview_says_why_a_run_stopped(tree: Tree) -> None:
    at = _app()
    runs = runs_table(at).set_index("run_id")
    assert runs.loc[tree.crashed, "Status"] == "✗ crashed"  # at once: its job is known to have failed
    assert runs.loc[tree.crashed, "Stopped by"] == "CUDA out of memory"
    assert runs.loc[tree.running, "Stopped by"] == ""


def test_run_page_shows_cause_evidence_and_advice(tree: Tree) -> None:
    at = _app("views/run.py", id=tree.crashed)
    assert any("Stopped because of CUDA out of memory." in str(e.value) for e in at.error)
    code = "\n".join(str(c.value) for c in at.code)
    assert "torch.cuda.OutOfMemoryError: CUDA out of memory" in code and "train_step" in code
    text = _texts(at)
    assert "strong evidence" in text and "job.log" in text
    assert "#2814" in text and "CUDA_VISIBLE_DEVICES" in text


def test_run_page_of_a_running_run_has_no_stop_section(tree: Tree) -> None:
    at = _app("views/run.py", id=tree.running)
    assert "Stopped because" not in _texts(at)


def test_runs_frame_labels_causes() -> None:
    table = pd.DataFrame({"run_id": ["a", "b", "c"], "dataset": ["D"] * 3, "configuration": ["2d"] * 3,
                          "trainer": ["T"] * 3, "fold": ["0", "1", "2"], "status": ["crashed", "running", "stalled"],
                          "stop_cause": ["time_limit", None, "something_new"]})
    shown = runs_frame(table)
    assert list(shown["Stopped by"]) == ["scheduler time limit", "", "something_new"]
