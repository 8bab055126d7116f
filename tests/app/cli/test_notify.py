"""``nnwatch notify`` and the notifier inside ``nnwatch serve``, as real processes with real receivers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from notify_receivers import JsonReceiver, free_port, live_run, wait_for, write_config
from paths import REPO

from app.cli import main
from app.notify import Outbox

NNWATCH = [sys.executable, "-m", "app.cli"]


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    server = JsonReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("NNWATCH_STATE", str(folder))
    return folder


def test_test_sends_one_message_to_each_url_and_reports_the_unreachable(
        tmp_path: Path, receiver: JsonReceiver, state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second = JsonReceiver().start()
    try:
        config = write_config(tmp_path / "notify.toml", [receiver.url, second.url])
        assert main(["notify", "--test", "--config", str(config)]) == 0
    finally:
        second.stop()
    assert len(receiver.posts) == 1 and len(second.posts) == 1
    assert receiver.posts[0].body["title"] == "nnwatch: test message"
    down = write_config(tmp_path / "down.toml", [receiver.url, f"json://127.0.0.1:{free_port()}/hook"])
    capsys.readouterr()
    assert main(["notify", "--test", "--config", str(down)]) == 1
    out = capsys.readouterr().out
    assert out.count("sent  ") == 1 and "FAILED json://127.0.0.1" in out


def test_a_bad_config_is_refused_with_its_line(tmp_path: Path, state: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "notify.toml"
    config.write_text('[[rule]]\nevents = ["*"]\nruns = "*"\nurls = "json://h/x"\n')
    os.chmod(config, 0o600)
    assert main(["notify", "--check", "--config", str(config)]) == 2
    assert f"{config}, line 4: rule 1: urls must be a list" in capsys.readouterr().err
    write_config(config, ["json://127.0.0.1:9/x"])
    os.chmod(config, 0o644)
    assert main(["notify", "--test", "--config", str(config)]) == 2
    assert "readable by every user" in capsys.readouterr().err


def _start(args: list[str], state: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NNWATCH_STATE": str(state), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([*NNWATCH, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
    return err


@pytest.mark.parametrize("command", ["notify", "serve"])
def test_exactly_once_across_a_restart_of_the_process(command: str, tmp_path: Path, receiver: JsonReceiver,
                                                      state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Headless ``nnwatch notify`` and ``nnwatch serve`` (no browser open) send each event once, and what
    happened while they were stopped on their next start."""
    root = tmp_path / "results"
    first = live_run(root, dataset="Dataset011_First", planned=100, epochs=99)
    second = live_run(root, dataset="Dataset012_Second", planned=100, epochs=99)
    config = write_config(tmp_path / "notify.toml", [receiver.url], extra="quiet_s = 0.5")
    if command == "notify":
        args = ["notify", "--config", str(config), str(root), "--jobs-db", str(tmp_path / "jobs.sqlite3")]
    else:
        args = ["serve", "--root", str(root), "--port", str(free_port()), "--notify-config", str(config),
                "--jobs-db", str(tmp_path / "jobs.sqlite3")]
    outbox = Outbox(state / "notifications.sqlite3")
    process = _start(args, state)
    try:
        wait_for(lambda: outbox.is_primed(str(root)) or process.poll() is not None, 60, "the first look")
        assert process.poll() is None
        first.epoch()
        first.finish(final_dice=0.71)
        wait_for(lambda: receiver.messages("Dataset011_First"), 30, "the first run's message")
    finally:
        err = _stop(process)
    assert process.returncode in (0, -signal.SIGTERM, 143), err
    second.epoch()  # finishes while nothing is running
    second.finish(final_dice=0.72)
    process = _start(args, state)
    try:
        wait_for(lambda: receiver.messages("Dataset012_Second") or process.poll() is not None, 60,
                 "the second run's message after the restart")
        wait_for(lambda: outbox.pending() == 0, 10, "nothing pending")
    finally:
        _stop(process)
    texts = "\n".join(post.body["message"] for post in receiver.posts)
    assert texts.count("run_finished: Dataset011_First") == 1
    assert texts.count("run_finished: Dataset012_Second") == 1
    capsys.readouterr()
    assert main(["notify", "--history", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert sorted(row["run_id"].split("/")[0] for row in history) == ["Dataset011_First", "Dataset012_Second"]
    assert {row["state"] for row in history} == {"sent"} and {row["event"] for row in history} == {"run_finished"}


def test_serve_with_several_roots_notifies_about_every_root(tmp_path: Path, receiver: JsonReceiver,
                                                            state: Path) -> None:
    """``nnwatch serve --root A --root B`` runs one background notifier per root: a run of either is reported, with
    a link that opens it on this dashboard (its address, and the run's id there, which starts with its root's label)
    where the rules name no ``base_url``."""
    roots = [tmp_path / "lab" / "results", tmp_path / "old_disk" / "results"]
    runs = [live_run(root, dataset=f"Dataset02{n}_Root{n}", planned=100, epochs=99) for n, root in enumerate(roots)]
    config = write_config(tmp_path / "notify.toml", [receiver.url], extra="quiet_s = 0.5", base_url=None)
    outbox = Outbox(state / "notifications.sqlite3")
    port = free_port()
    process = _start(["serve", "--root", str(roots[0]), "--root", str(roots[1]), "--port", str(port),
                      "--notify-config", str(config), "--jobs-db", str(tmp_path / "jobs.sqlite3")], state)
    try:
        wait_for(lambda: all(outbox.is_primed(str(root)) for root in roots) or process.poll() is not None, 60,
                 "the first look at both roots")
        assert process.poll() is None
        for run in runs:
            run.epoch()
            run.finish(final_dice=0.7)
        wait_for(lambda: receiver.messages("Dataset020_Root0") and receiver.messages("Dataset021_Root1"), 30,
                 "a message about each root's run")
    finally:
        _stop(process)
    lines = [line for post in receiver.posts for line in post.body["message"].splitlines()]
    for run, label in zip(runs, ["lab-results", "old_disk-results"]):
        run_id = run.folder.relative_to(run.folder.parents[2]).as_posix()
        assert f"http://127.0.0.1:{port}/run?id={quote(f'{label}/{run_id}', safe='')}" in lines, lines
