"""Notifications end to end: synthetic runs written as nnU-Net writes them, the real watcher (inotify), a real job
run by the local backend, the SQLite outbox, apprise, and real receivers (HTTP JSON, SMTP)."""

from __future__ import annotations

import base64
import email
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from notify_receivers import JsonReceiver, MailReceiver, live_run, python_argv, wait_for, write_config

from app.notify import EventKind, Notification, Notifier, Outbox, load_config
from monitor.synth import CurveSpec, RunSpec, write_run
from monitor.validation import read_summary
from trainer import Job, JobRegistry, JobState
from trainer.backends import LaunchRequest
from trainer.local import LocalBackend

IMPROVING = CurveSpec((0.9, 0.8), timescale=0.6, noise=0.004, seed=3)
LIMIT_S = 10.0  # the promise: an event reaches the receiver within 10 s (inotify)


class Clock:
    """The watcher's wall clock, which a test moves forward to let hours of silence pass at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    server = JsonReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "results"
    path.mkdir()
    return path


def _notifier(tmp_path: Path, root: Path, urls: list[str], clock: Clock | None = None, extra: str = "",
              registry: JobRegistry | None = None, behind_check_s: float = 60.0, poll: float | None = None) -> Notifier:
    config = load_config(write_config(tmp_path / "notify.toml", urls, extra=extra))
    notifier = Notifier(root, config, outbox=Outbox(tmp_path / "state" / "notifications.sqlite3"),
                        registry=registry, clock=clock or Clock(), behind_check_s=behind_check_s, poll=poll)
    notifier.start()
    wait_for(lambda: notifier.outbox.is_primed(str(root)), 30, "the notifier's first look at the tree")
    return notifier


def _failing_job(registry: JobRegistry, tmp_path: Path, new_run_id: str, parent_run_id: str) -> tuple[Job, Path]:
    """An extension job run by the real local backend whose process exits with code 3 after a second."""
    marker = tmp_path / "exited_at"
    code = (f"import sys, time; time.sleep(1); open({str(marker)!r}, 'w').write(repr(time.time())); sys.exit(3)")
    job_id = "f00dfeed0001"
    job_dir = registry.job_dir(job_id)
    job = Job(job_id=job_id, state=JobState.QUEUED, parent_run_id=parent_run_id, parent_path=str(tmp_path / "p"),
              new_run_id=new_run_id, new_run_path=str(tmp_path / "n"), new_trainer="nnUNetTrainer_2000epochs",
              epochs=2000, backend="local", device="cpu", requested_by="alice",
              created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), argv=python_argv(code), env={},
              job_dir=str(job_dir), log_path=str(job_dir / "job.log"))
    registry.create(job)
    launched = LocalBackend().launch(LaunchRequest(job_id, job_dir, job_dir / "job.log", job.argv, job.env))
    registry.record_launch(job_id, launched)
    return job, marker


@pytest.mark.parametrize("poll", [None, 2.0], ids=["inotify", "polling-2s"])
def test_a_crash_a_finished_improving_run_and_a_failed_extension_arrive_within_10_s(
        poll: float | None, tmp_path: Path, root: Path, receiver: JsonReceiver) -> None:
    """Within 10 s of the event with inotify, within the polling interval + 10 s when polling."""
    limit = LIMIT_S + (poll or 0.0)
    crashing = live_run(root, dataset="Dataset001_Liver", fold=0)
    finishing = live_run(root, dataset="Dataset002_Heart", planned=1000, epochs=999, spec=IMPROVING)
    clock = Clock()
    registry = JobRegistry(tmp_path / "jobs.sqlite3")
    notifier = _notifier(tmp_path, root, [receiver.url], clock, registry=registry, poll=poll)
    try:
        assert notifier.watcher.observer.kind == ("polling" if poll else "inotify")
        assert receiver.posts == []  # the runs as they were at the first start are a baseline, not news
        # a finished run that is still improving: verdict, final Dice, report attached, link to its page
        finished_at = time.time()
        finishing.epoch()
        finishing.finish(final_dice=0.8312)
        run_id = "Dataset002_Heart/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
        post = wait_for(lambda: receiver.messages(f"run_finished: {run_id}"), limit + 5, "run_finished")[0]
        latency_finished = post.at - finished_at
        text = post.body["message"]
        final = read_summary(finishing.folder / "validation" / "summary.json").foreground_dice
        assert "verdict improving" in text and f"final validation Dice {final:.4f}" in text
        assert f"http://lab-server:8501/run?id={run_id.replace('/', '%2F')}" in text
        assert "extend_recommended" in text  # it comes in the same quiet window
        png = [a for a in post.body["attachments"] if a["mimetype"] == "image/png"]
        assert png and base64.b64decode(png[0]["base64"])[:8] == b"\x89PNG\r\n\x1a\n"

        # an extension job that fails: its cause, from the job record
        new_run = "Dataset002_Heart/nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres/fold_0"
        _job, marker = _failing_job(registry, tmp_path, new_run, run_id)
        post = wait_for(lambda: receiver.messages(f"job_failed: {new_run}"), limit + 10, "job_failed")[0]
        latency_job = post.at - float(wait_for(marker.read_text, 5, "the job's exit time"))
        assert "cause:" in post.body["message"] and "3" in post.body["message"]

        # a fold that crashed: two hours of silence pass on the watcher's clock
        crashed_at = time.time()
        clock.offset += 7200
        fold = "Dataset001_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
        post = wait_for(lambda: receiver.messages(f"run_stopped: {fold}"), limit + 5, "run_stopped")[0]
        latency_crash = post.at - crashed_at
        assert "cause:" in post.body["message"] and "50 of 1000 epochs" in post.body["message"]
    finally:
        notifier.stop()
    kind, quiet = notifier.watcher.observer.kind, notifier.config.quiet_s
    print(f"\nlatency event → receiver ({kind}, quiet window {quiet:.0f} s): finished "
          f"{latency_finished:.2f} s, failed job {latency_job:.2f} s, crashed fold {latency_crash:.2f} s")
    assert max(latency_finished, latency_job, latency_crash) < limit
    assert crashing.folder.is_dir()


def test_a_node_failure_killing_five_folds_sends_one_message(tmp_path: Path, root: Path,
                                                            receiver: JsonReceiver) -> None:
    for fold in range(5):
        live_run(root, dataset="Dataset003_Lung", fold=fold)
    clock = Clock()
    notifier = _notifier(tmp_path, root, [receiver.url], clock, extra="quiet_s = 2")
    try:
        clock.offset += 7200
        post = wait_for(lambda: receiver.posts, 20, "the grouped message")[0]
        wait_for(lambda: notifier.outbox.pending() == 0, 10, "every delivery accounted for")
    finally:
        notifier.stop()
    assert len(receiver.posts) == 1
    assert post.body["title"].startswith("nnwatch: 5 × run stopped before its end")
    assert all(f"fold_{fold}" in post.body["message"] for fold in range(5))
    assert len({row.sent_at for row in notifier.outbox.history()}) == 1


def test_a_channel_that_is_down_is_retried_and_reported_while_the_watcher_goes_on(
        tmp_path: Path, root: Path, receiver: JsonReceiver) -> None:
    finishing = live_run(root, dataset="Dataset004_Hippocampus", planned=100, epochs=99)
    other = live_run(root, dataset="Dataset005_Prostate")
    unreachable = f"json://127.0.0.1:{receiver.port + 1 if receiver.port < 65535 else 1}/hook"
    notifier = _notifier(tmp_path, root, [receiver.url, unreachable], extra="quiet_s = 0.5")
    try:
        receiver.failing = True
        finishing.epoch()
        finishing.finish(final_dice=0.9)
        wait_for(lambda: receiver.refused >= 2, 20, "a second try at the failing receiver")
        rows = wait_for(lambda: [r for r in notifier.outbox.history() if r.last_error and r.attempts >= 2], 20,
                        "failed tries reported")
        assert all(row.state == "pending" for row in rows)
        other_id = "Dataset005_Prostate/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
        other.epoch()  # the watcher keeps working meanwhile
        wait_for(lambda: notifier.watcher.run(other_id).summary.epochs_completed == 51, 10, "the watcher")
        receiver.failing = False
        wait_for(lambda: receiver.posts, 30, "the retried message")
        sent = wait_for(lambda: [r for r in notifier.outbox.history() if r.state == "sent"], 5, "sent rows")
    finally:
        notifier.stop()
    assert len(receiver.messages("run_finished")) == 1
    assert {row.url for row in sent} == {receiver.url}
    down = [row for row in notifier.outbox.history() if row.url == unreachable]
    assert down and all(row.state == "pending" and row.last_error for row in down)
    assert "Connection" in (notifier.last_error or "") or notifier.last_error


def test_each_event_is_sent_once_across_a_restart_and_nothing_is_lost_meanwhile(
        tmp_path: Path, root: Path, receiver: JsonReceiver) -> None:
    first = live_run(root, dataset="Dataset006_A", planned=100, epochs=99)
    second = live_run(root, dataset="Dataset007_B", planned=100, epochs=99)
    notifier = _notifier(tmp_path, root, [receiver.url], extra="quiet_s = 0.5")
    receiver.failing = True  # the channel is down when the first run finishes
    first.epoch()
    first.finish(final_dice=0.7)
    wait_for(lambda: receiver.refused >= 1, 20, "a failed try")
    notifier.stop()
    receiver.failing = False
    second.epoch()  # finishes while nnwatch is not running
    second.finish(final_dice=0.75)
    restarted = _notifier(tmp_path, root, [receiver.url], extra="quiet_s = 0.5")
    try:
        wait_for(lambda: len(receiver.messages("run_finished")) >= 2 or
                 (len(receiver.posts) == 1 and "Dataset007_B" in receiver.posts[0].body["message"]), 30,
                 "both runs' messages")
        wait_for(lambda: restarted.outbox.pending() == 0, 10, "nothing pending")
    finally:
        restarted.stop()
    texts = "\n".join(post.body["message"] for post in receiver.posts)
    assert texts.count("run_finished: Dataset006_A") == 1 and texts.count("run_finished: Dataset007_B") == 1
    # a third start finds nothing new to send
    third = _notifier(tmp_path, root, [receiver.url], extra="quiet_s = 0.5")
    try:
        assert third.dispatch_once() == 0 and third.outbox.pending() == 0
    finally:
        third.stop()
    assert texts.count("run_finished") == sum(post.body["message"].count("run_finished") for post in receiver.posts)


def test_one_run_id_in_two_roots_is_two_runs_and_what_an_older_version_recorded_is_not_sent_again(
        tmp_path: Path, receiver: JsonReceiver) -> None:
    """Two people's trees can hold the same run id: each run's end is its own event. An event recorded before
    events were told apart by their root (an older nnwatch, the same outbox) still counts as sent."""
    roots = [tmp_path / "alice" / "results", tmp_path / "bob" / "results"]
    runs = [live_run(root, dataset="Dataset009_Same", planned=100, epochs=99) for root in roots]
    old = live_run(roots[0], dataset="Dataset010_Old", planned=100, epochs=99)
    old.epoch()
    old.finish(final_dice=0.7)
    outbox = Outbox(tmp_path / "state" / "notifications.sqlite3")
    old_id = old.folder.relative_to(roots[0]).as_posix()
    outbox.record_many([(Notification(EventKind.RUN_FINISHED, old_id, f"{old_id}\trun_finished"), ())],
                       baseline=True)
    outbox.mark_primed(str(roots[0]))
    notifiers = [_notifier(tmp_path, root, [receiver.url], extra="quiet_s = 0.5") for root in roots]
    try:
        for run in runs:
            run.epoch()
            run.finish(final_dice=0.72)
        wait_for(lambda: sum(post.body["message"].count("run_finished: Dataset009_Same") for post in receiver.posts)
                 == 2, 30, "a message for each root's run")
    finally:
        for notifier in notifiers:
            notifier.stop()
    assert not receiver.messages("Dataset010_Old")


def test_an_email_carries_the_run_report(tmp_path: Path, root: Path) -> None:
    mail = MailReceiver().start()
    finishing = live_run(root, dataset="Dataset008_Mail", planned=100, epochs=99)
    notifier = _notifier(tmp_path, root, [mail.url], extra="quiet_s = 0.5")
    try:
        finishing.epoch()
        finishing.finish(final_dice=0.88)
        content, _at = wait_for(lambda: mail.messages, 30, "the e-mail")[0]
    finally:
        notifier.stop()
        mail.stop()
    message = email.message_from_bytes(content)
    assert "run_finished" in message["Subject"] or "run finished" in message["Subject"]
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert images and images[0].get_payload(decode=True)[:8] == b"\x89PNG\r\n\x1a\n"
    text = "".join(str(part.get_payload(decode=True), "utf-8") for part in message.walk()
                   if part.get_content_type() == "text/plain")
    final = read_summary(finishing.folder / "validation" / "summary.json").foreground_dice
    assert "run_finished: Dataset008_Mail" in text and f"final validation Dice {final:.4f}" in text


def test_an_extension_fallen_behind_its_parent_is_reported_with_how_sure(tmp_path: Path, root: Path,
                                                                        receiver: JsonReceiver) -> None:
    write_run(root, RunSpec("Dataset009_Spleen", "nnUNetTrainer", "3d_fullres", 0, 1000,
                            CurveSpec((0.9, 0.8), timescale=0.1, noise=0.01, seed=1)), labels=("spleen", "vessel"))
    extension = live_run(root, dataset="Dataset009_Spleen", trainer="nnUNetTrainer_2000epochs", planned=2000,
                         epochs=900, spec=CurveSpec((0.8, 0.7), timescale=0.1, noise=0.01, seed=2))
    notifier = _notifier(tmp_path, root, [receiver.url], extra="quiet_s = 0.5", behind_check_s=0.0)
    try:
        extension.epoch()
        post = wait_for(lambda: receiver.messages("extension_behind"), 20, "extension_behind")[0]
    finally:
        notifier.stop()
    text = post.body["message"]
    assert "extension_behind: Dataset009_Spleen/nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres/fold_0" in text
    assert "behind its parent Dataset009_Spleen/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0" in text
    assert "(likely)" in text and "on track to beat its parent" in text
    assert "at 45% of its schedule" in text and "rule: end of schedule" in text


def test_a_stopped_runs_message_names_its_cause_as_every_view_does(tmp_path: Path, root: Path,
                                                                   receiver: JsonReceiver) -> None:
    crashing = live_run(root, dataset="Dataset011_Oom", fold=0)
    oom = (Path(__file__).parents[2] / "monitor" / "stops" / "fixtures" / "cuda_oom.txt").read_text()
    with crashing.log_path.open("a") as log:  # type: ignore[union-attr]
        log.write(oom)
    clock = Clock()
    notifier = _notifier(tmp_path, root, [receiver.url], clock, extra="quiet_s = 0.5")
    try:
        clock.offset += 7200  # two hours of silence: crashed
        post = wait_for(lambda: receiver.messages("run_stopped: Dataset011_Oom"), 20, "run_stopped")[0]
    finally:
        notifier.stop()
    assert "— cause: CUDA out of memory" in post.body["message"] and "cuda_oom" not in post.body["message"]
    assert re.search(r"last log line at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\.", post.body["message"])  # as pages


def test_a_run_that_stops_learning_and_one_that_stalls_are_reported(tmp_path: Path, root: Path,
                                                                    receiver: JsonReceiver) -> None:
    stalling = live_run(root, dataset="Dataset010_Colon", fold=0)
    clock = Clock()
    notifier = _notifier(tmp_path, root, [receiver.url], clock, extra="quiet_s = 0.5")
    try:
        live_run(root, dataset="Dataset010_Colon", fold=1, epochs=20, spec=CurveSpec((0.0, 0.0), noise=0.0, seed=4))
        dead = wait_for(lambda: receiver.messages("dead_dice: Dataset010_Colon"), 20, "dead_dice")[0]
        assert "fold_1" in dead.body["message"] and "not learning" in dead.body["message"]
        clock.offset += 600  # 10 min of silence: stalled (after 5 min), not yet crashed (30 min)
        stalled = wait_for(lambda: receiver.messages("run_stalled: Dataset010_Colon"), 20, "run_stalled")[0]
    finally:
        notifier.stop()
    assert "fold_0" in stalled.body["message"] and "No new epoch since" in stalled.body["message"]
    assert stalling.folder.is_dir()


def test_an_edited_rules_file_is_picked_up_and_a_broken_edit_keeps_the_rules(
        tmp_path: Path, root: Path, receiver: JsonReceiver) -> None:
    finishing = live_run(root, dataset="Dataset013_Edit", planned=100, epochs=99)
    notifier = _notifier(tmp_path, root, [receiver.url], extra="quiet_s = 0.5")
    other = JsonReceiver().start()
    try:
        path = notifier.config.path
        assert path is not None
        path.write_text('[[rule]]\nevents = ["*"\n')  # broken: the rules in force stay
        wait_for(lambda: notifier._config_stamp == path.stat().st_mtime_ns, 10, "the broken edit to be seen")
        assert notifier.config.urls() == [receiver.url]
        write_config(path, [other.url], extra="quiet_s = 0.5")
        wait_for(lambda: notifier.config.urls() == [other.url], 10, "the new rules")
        finishing.epoch()
        finishing.finish(final_dice=0.8)
        wait_for(lambda: other.messages("run_finished: Dataset013_Edit"), 30, "the message at the new URL")
    finally:
        notifier.stop()
        other.stop()
    assert receiver.posts == []
