"""A real nnU-Net training process watched live: its epochs arrive as events, in order, then ``finished``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from event_recorder import EventRecorder

from monitor.watch.watcher import ResultsWatcher


@pytest.mark.nnunet
def test_real_training_is_watched_live(tiny_nnunet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from nnunet_tiny import train_command

    fold = 1  # other tests train fold 0
    fold_dir = tiny_nnunet.model_dir() / f"fold_{fold}"
    shutil.rmtree(fold_dir, ignore_errors=True)
    rid = fold_dir.relative_to(tiny_nnunet.results).as_posix()
    env = {**tiny_nnunet.env, "NNWATCH_TINY_EPOCHS": "4", "NNWATCH_TINY_ITERS": "10"}  # epochs of seconds
    with ResultsWatcher(tiny_nnunet.results, tick_s=0.2) as watcher, open(tmp_path / "train.log", "w") as output:
        recorder = EventRecorder(watcher)
        recorder.poll()
        process = subprocess.Popen(train_command(fold), env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            first = recorder.wait_for(lambda e: e.kind == "epoch" and e.run_id == rid, timeout=600,
                                      what="the first epoch")
            assert process.poll() is None, "the first epoch was only seen after training ended: not live"
            assert first.data["epoch"] == 0
            recorder.wait_for(lambda e: e.kind == "status" and e.run_id == rid and e.data["status"] == "finished",
                              timeout=600, what="the finished status")
            assert process.wait(timeout=600) == 0, (tmp_path / "train.log").read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        own = [e for e in recorder.events if e.run_id == rid]
        assert own[0].kind == "run_added"
        assert [e.data["epoch"] for e in own if e.kind == "epoch"] == [0, 1, 2, 3]
        finished = next(i for i, e in enumerate(own) if e.kind == "status" and e.data["status"] == "finished")
        assert max(i for i, e in enumerate(own) if e.kind == "epoch") < finished
        for event in recorder.of("epoch", rid):
            assert 0.0 <= event.data["mean_fg_dice"] <= 1.0 and event.data["epoch_time_s"] > 0
            assert event.data["lr"] > 0 and "dice_1" in event.data and "dice_2" in event.data
        summary = watcher.run(rid).summary  # type: ignore[union-attr]
        assert summary.status == "finished" and summary.epochs_completed == 4
