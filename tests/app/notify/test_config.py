"""The rules file: what a user writes, what a typo gives, and the refusal of a file every user can read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.notify import ConfigError, EventKind, load_config, redact_url

GOOD = """\
base_url = "https://nnwatch.lab.example/"
quiet_s = 10

[[rule]]
name = "everything"
events = ["*"]
runs = "*"
urls = ["json://localhost:8080/hook", "mailto://user:s3cret@example.org"]

[[rule]]
events = ["run_finished", "job_failed"]
runs = "Dataset004_*"
urls = ["ntfy://ntfy.sh/nnwatch-lab"]
attach_report = false
"""


def _write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_the_documented_form_is_read(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.base_url == "https://nnwatch.lab.example/" and config.quiet_s == 10
    everything, hippocampus = config.rules
    assert everything.events == frozenset(EventKind) and everything.name == "everything"
    assert hippocampus.events == {EventKind.RUN_FINISHED, EventKind.JOB_FAILED} and not hippocampus.attach_report
    # globs on the run id or the dataset; a URL named by two rules receives an event once
    run = "Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    assert [url for _, url in config.targets(EventKind.RUN_FINISHED, run, "Dataset004_Hippocampus")] == [
        "json://localhost:8080/hook", "mailto://user:s3cret@example.org", "ntfy://ntfy.sh/nnwatch-lab"]
    assert len(config.targets(EventKind.RUN_STALLED, run, "Dataset004_Hippocampus")) == 2
    assert config.targets(EventKind.RUN_FINISHED, "Dataset005_Prostate/x/fold_0", "Dataset005_Prostate")[-1][1] \
        == "mailto://user:s3cret@example.org"


@pytest.mark.parametrize(("text", "line", "words"), [
    ('[[rule]]\nevents = ["run_finished"\nurls = ["json://h/x"]\n', 3, "not valid TOML"),
    ('[[rule]]\nevents = ["*"]\nruns = "*"\nurls = ["json://h/x"]\n\n[[rule]]\nevents = ["run_finsihed"]\n'
     'urls = ["json://h/x"]\n', 7, "unknown event 'run_finsihed'"),
    ('quiet_s = "five"\n[[rule]]\nevents = ["*"]\nurls = ["json://h/x"]\n', 1, "quiet_s must be a number"),
    ('[[rule]]\nevents = ["*"]\nurl = ["json://h/x"]\n', 3, "unknown key 'url'"),
    ('[[rule]]\nevents = ["*"]\nurls = ["nosuchservice://h/x"]\n', 3, "does not understand"),
    ('base_url = "lab-server:8501"\n[[rule]]\nevents = ["*"]\nurls = ["json://h/x"]\n', 1, "base_url"),
])
def test_a_malformed_config_names_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}, line {line}:" in message and words in message


def test_a_world_readable_config_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, mode=0o644)
    with pytest.raises(ConfigError, match=r"readable by every user.*chmod 600"):
        load_config(path)
    os.chmod(path, 0o640)  # the group may read it (a lab group sharing one config)
    assert load_config(path).rules


def test_secrets_are_hidden_where_urls_are_shown() -> None:
    assert redact_url("mailto://user:s3cret@example.org") == "mailto://user:***@example.org"
    assert "hunter2" not in redact_url("json://host/hook?token=hunter2&x=1")


def test_links_point_to_the_rules_base_url_else_to_the_serving_dashboard(tmp_path: Path) -> None:
    """Without ``base_url`` the link goes to the dashboard that runs the notifier (headless: serve's default
    address); a run id is quoted whole, with the root's label in front where the dashboard serves several."""
    from app.notify import DEFAULT_BASE_URL, Links, Notifier, Outbox

    bare = load_config(_write(tmp_path, '[[rule]]\nevents = ["*"]\nurls = ["json://h/x"]\n'))
    assert bare.base_url is None
    root = tmp_path / "results"
    root.mkdir()
    outbox = Outbox(tmp_path / "state" / "notifications.sqlite3")
    served = Notifier(root, bare, outbox=outbox, dashboard_url="http://gpu-7.lab:8600", root_label="old-results")
    assert served.links == Links("http://gpu-7.lab:8600", "old-results")
    assert served.links.run_page("Dataset004_H/T__P__2d/fold_0") == \
        "http://gpu-7.lab:8600/run?id=old-results%2FDataset004_H%2FT__P__2d%2Ffold_0"
    assert Notifier(root, bare, outbox=outbox).links.base_url == DEFAULT_BASE_URL == "http://127.0.0.1:8501"
    named = load_config(_write(tmp_path, GOOD))
    assert Notifier(root, named, outbox=outbox, dashboard_url="http://gpu-7.lab:8600").links.base_url == \
        "https://nnwatch.lab.example/"
