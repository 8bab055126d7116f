"""Choosing the observer: mountinfo parsing, network file systems, inotify limits falling back to polling."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from event_recorder import EventRecorder

import monitor.watch.fs as watch_fs
from monitor.synth import FakeRun, make_run_dir
from monitor.watch.fs import choose_observer, is_network_fstype, mount_of, parse_mountinfo
from monitor.watch.watcher import ResultsWatcher

MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/lab rw,relatime shared:20 - nfs4 fileserver:/export/lab rw,vers=4.2
41 40 0:36 / /mnt/lab/scratch rw,relatime shared:21 - xfs /dev/sdb1 rw
42 22 0:37 / /home/me/remote\040results rw,nosuid - fuse.sshfs me@gpu01:/results rw,user_id=0
43 22 0:38 / /data rw - cifs //nas/data rw
44 22 0:39 / /data rw - tmpfs tmpfs rw
"""


def test_mountinfo_is_parsed_with_escapes() -> None:
    entries = parse_mountinfo(MOUNTINFO + "garbage line without separator\n")
    assert [(e.mount_point, e.fstype) for e in entries] == [
        ("/", "ext4"), ("/mnt/lab", "nfs4"), ("/mnt/lab/scratch", "xfs"), ("/home/me/remote results", "fuse.sshfs"),
        ("/data", "cifs"), ("/data", "tmpfs")]
    assert entries[1].source == "fileserver:/export/lab"


@pytest.mark.parametrize(("path", "fstype"), [
    ("/mnt/lab/nnUNet_results", "nfs4"),
    ("/mnt/lab/scratch/results", "xfs"),  # the longest mount point wins
    ("/mnt/labels", "ext4"),  # a prefix of the name is not a parent folder
    ("/home/me/remote results/Dataset001", "fuse.sshfs"),
    ("/data/x", "tmpfs"),  # the later mount on the same point shadows the earlier
])
def test_mount_of_picks_the_mount_holding_the_path(path: str, fstype: str) -> None:
    entry = mount_of(path, parse_mountinfo(MOUNTINFO))
    assert entry is not None and entry.fstype == fstype


@pytest.mark.parametrize(("fstype", "network"), [
    ("nfs", True), ("nfs4", True), ("cifs", True), ("smb3", True), ("fuse.sshfs", True), ("fuse.rclone", True),
    ("9p", True), ("lustre", True), ("gpfs", True), ("beegfs", True), ("ceph", True),
    ("ext4", False), ("xfs", False), ("btrfs", False), ("tmpfs", False), ("overlay", False),
])
def test_network_file_systems(fstype: str, network: bool) -> None:
    assert is_network_fstype(fstype) is network


def test_choose_observer(tmp_path: Path) -> None:
    local = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    remote = local + f"40 22 0:35 / {tmp_path} rw - nfs4 server:/x rw\n"
    assert choose_observer(tmp_path, mountinfo=local).kind == "inotify"
    chosen = choose_observer(tmp_path / "sub", mountinfo=remote)
    assert (chosen.kind, chosen.interval_s) == ("polling", watch_fs.DEFAULT_POLL_S) and "nfs4" in chosen.reason
    asked = choose_observer(tmp_path, 5.0, mountinfo=local)
    assert (asked.kind, asked.interval_s) == ("polling", 5.0)
    with pytest.raises(ValueError):
        choose_observer(tmp_path, 0.0)


def test_a_network_root_is_polled(tmp_path: Path) -> None:
    remote = f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 0:35 / {tmp_path} rw - cifs //nas/x rw\n"
    with ResultsWatcher(tmp_path, mountinfo=remote) as watcher:
        assert watcher.observer.kind == "polling"
        assert watcher._observer is None and watcher._poller is not None  # our tree poller, not a full walk


class _FullInotify:
    """An inotify observer whose kernel has no watches left."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def schedule(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    def is_alive(self) -> bool:
        return False


def _append_is_seen(root: Path, watcher: ResultsWatcher, run: FakeRun) -> None:
    recorder = EventRecorder(watcher)
    recorder.poll()
    run.epoch()
    rid = run.folder.relative_to(root).as_posix()
    recorder.wait_for(lambda e: e.kind == "epoch" and e.run_id == rid, what="an epoch while polling")


def test_watch_limit_reached_falls_back_to_polling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(make_run_dir(tmp_path))
    run.start_session()
    run.history(2)
    monkeypatch.setattr(watch_fs, "InotifyObserver", _FullInotify)
    monkeypatch.setattr(watch_fs, "max_user_watches", lambda: 3)
    monkeypatch.setattr(watch_fs, "DEFAULT_POLL_S", 0.2)
    with ResultsWatcher(tmp_path) as watcher:
        assert watcher.observer.kind == "polling"
        # what to raise the limit above: the tree's 4 folders (root, dataset, trainer, fold)
        assert "watch limit reached: 4 folders to watch, fs.inotify.max_user_watches = 3" in watcher.observer.reason
        assert "sudo sysctl fs.inotify.max_user_watches=" in watcher.observer.reason
        assert watcher.notes == [watcher.observer.reason]
        _append_is_seen(tmp_path, watcher, run)
