"""The Notifications page under AppTest: the rules with secrets hidden, the last notifications, editing on
127.0.0.1 (checked before saving), and no editing for a visitor from elsewhere who is not an admin."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from notify_receivers import write_config
from paths import REPO
from streamlit.testing.v1 import AppTest

from app.notify import EventKind, Notification, Outbox

PAGE = str(REPO / "app" / "dashboard" / "views" / "notifications.py")
RUN = "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_1"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = write_config(tmp_path / "notify.toml", ["json://127.0.0.1:9/hook", "mailto://bob:hunter2@lab.example"])
    monkeypatch.setenv("NNWATCH_NOTIFY_CONFIG", str(path))
    monkeypatch.setenv("NNWATCH_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("NNWATCH_USERS_FILE", raising=False)
    monkeypatch.delenv("NNWATCH_ADMINS", raising=False)
    outbox = Outbox()
    notification = Notification(EventKind.RUN_STOPPED, RUN, f"{RUN}\trun_stopped", "Dataset004_Hippocampus",
                                cause="CUDA out of memory")
    outbox.record(notification, [("rule 1", "json://127.0.0.1:9/hook", True)])
    outbox.mark_sent([1])
    yield path
    st.cache_resource.clear()


def _page(host: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("NNWATCH_HOST", host)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_rules_and_history_are_shown_and_a_local_user_edits_with_a_check(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page("127.0.0.1", monkeypatch)
    rules, history = (frame.value for frame in at.dataframe)
    assert list(rules["Runs"]) == ["*"] and "hunter2" not in rules.to_string()
    assert "mailto://bob:***@lab.example" in rules["URLs"].iloc[0]
    assert list(history["Event"]) == ["run_stopped"] and list(history["Run"]) == [RUN]
    assert list(history["State"]) == ["sent"]
    at.text_area(key="notify_config_text").set_value('[[rule]]\nevents = ["run_finishd"]\nurls = ["json://h/x"]\n')
    at.button(key="notify_save").click().run()
    assert any("line 2" in str(error.value) and "run_finishd" in str(error.value) for error in at.error)
    assert "run_finishd" not in config.read_text()  # a bad edit is not saved
    good = '[[rule]]\nevents = ["run_finished"]\nruns = "Dataset004_*"\nurls = ["json://127.0.0.1:9/x"]\n'
    at.text_area(key="notify_config_text").set_value(good)
    at.button(key="notify_save").click().run()
    assert config.read_text() == good and stat.S_IMODE(config.stat().st_mode) == 0o600


def test_a_visitor_from_elsewhere_sees_the_rules_but_cannot_edit(config: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page("0.0.0.0", monkeypatch)
    assert len(at.dataframe) == 2 and not at.text_area
    assert any("Only admins" in str(caption.value) for caption in at.caption)
