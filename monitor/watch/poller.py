"""Polling a results tree without listing it: for network file systems, where inotify sees no remote writes.

A poll stats, and lists nothing unless something changed: the folders above the runs (``Dataset``,
``Trainer__Plans__config``; v1's deeper levels), whose mtime moves when an entry is added, removed or renamed in
them, then each run's fold folder (a new or removed file) and its logs (a log that grew, by size). The other
files a reader reads (checkpoints, ``debug.json``, the validation summary) are rewritten in place, and the curves
come from the logs: they are stat'ed once every ``SWEEP_S`` seconds, a rotating share of the runs at each poll.
A log that changed has the run read again, all of its files included. So an unchanged 10,000-run tree costs
about ``folders + runs × (logs + 1)`` ``stat`` calls per poll plus that share, and no directory reads.

On NFS the client caches attributes (``actimeo``, by default 3–60 s, growing while a file does not change): a
``stat`` may answer from that cache, so a remote append is seen after the interval plus up to the attribute
cache's age. Mounting with a shorter ``actimeo`` (or ``noac``) lowers that latency at the cost of more requests
to the server.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.runs.layout import FOLD_DIR_RE, RunLocation
from monitor.runs.resume import FileSignature

__all__ = ["SWEEP_S", "TreePoller"]

#: How long a change to a settled run's checkpoints or side files can go unseen (besides attribute caching).
SWEEP_S = 30.0
#: A folder whose mtime is this close to the clock may change again within the same timestamp tick, unseen:
#: it is listed again at the next poll (git's "racy timestamp" rule).
_RACY_NS = 2_000_000_000

_Stat = tuple[int, int, int]  # size, mtime_ns, inode


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _settled(mtime_ns: int) -> int:
    """``mtime_ns``, or -1 (a value no folder has) if a change in the same tick could still follow unseen."""
    return mtime_ns if time.time_ns() - mtime_ns > _RACY_NS else -1


@dataclass(frozen=True, slots=True)
class _Files:
    """A run as a poll checks it: its fold folder's mtime when last read, and the files of its signature by full
    path with what ``stat`` gave, logs apart."""

    signature: FileSignature
    folder: str
    folder_mtime: int
    logs: tuple[tuple[str, _Stat], ...]
    others: tuple[tuple[str, _Stat], ...]
    sweep_slot: int

    @classmethod
    def of(cls, run_id: str, folder: str, folder_mtime: int, signature: FileSignature) -> _Files:
        logs: list[tuple[str, _Stat]] = []
        others: list[tuple[str, _Stat]] = []
        for name, size, mtime_ns, inode in signature:
            entry = (os.path.join(folder, name), (size, mtime_ns, inode))
            (logs if name.startswith("training_log") else others).append(entry)
        return cls(signature, folder, folder_mtime, tuple(logs), tuple(others), zlib.crc32(run_id.encode()))


def _unchanged(files: tuple[tuple[str, _Stat], ...]) -> bool:
    for path, seen in files:
        try:
            info = os.stat(path)
        except OSError:
            return False
        if (info.st_size, info.st_mtime_ns, info.st_ino) != seen:
            return False
    return True


class TreePoller:
    """Which folders above the runs and which runs changed since they were last seen, polled every
    ``interval_s`` seconds."""

    def __init__(self, root: str | os.PathLike[str], interval_s: float = 5.0) -> None:
        self.root = os.fspath(Path(root).absolute())
        self._dirs: dict[str, int] = {}  # folder above the runs -> mtime_ns when last listed
        self._folds: dict[str, int | None] = {}  # run id -> its fold folder's mtime_ns when last read
        self._inodes: dict[str, int] = {}  # run id -> its fold folder's inode
        self._files: dict[str, _Files] = {}  # run id -> its files as last checked
        self._sweep_polls = max(1, round(SWEEP_S / interval_s))
        self._poll = 0

    def track_tree(self, top: str | os.PathLike[str]) -> None:
        """Record the mtimes of every folder under ``top`` down to (not into) fold folders; done after listing
        them, so a change made after this is seen by the next :meth:`changed_dirs`."""
        for dirpath, dirnames, _ in os.walk(top):
            mtime = _mtime(dirpath)
            if mtime is not None:
                self._dirs[dirpath] = _settled(mtime)
            dirnames[:] = [d for d in dirnames if not FOLD_DIR_RE.match(d)]

    def changed_dirs(self) -> list[str]:
        """Folders above the runs added to, removed from or renamed in since they were tracked (gone ones too);
        called once per poll, before :meth:`run_changed`."""
        self._poll += 1
        changed = []
        for path, seen in list(self._dirs.items()):
            now = _mtime(path)
            if now != seen:
                changed.append(path)
                if now is None:
                    del self._dirs[path]
        return changed

    def note_run(self, run_id: str, folder: str | os.PathLike[str]) -> None:
        """The run's fold folder as its reader is about to read it."""
        self._files.pop(run_id, None)
        try:
            info = os.stat(folder)
        except OSError:
            self._folds[run_id] = None
            return
        self._folds[run_id], self._inodes[run_id] = _settled(info.st_mtime_ns), info.st_ino

    def relist_above(self, path: str | os.PathLike[str]) -> bool:
        """A folder vanished: have the next poll list the nearest tracked folder above it, which tells a rename
        (same inode) from a deletion. False if none is tracked (the caller decides alone)."""
        path = os.fspath(path)
        while (parent := os.path.dirname(path)) != path and path != self.root:
            if parent in self._dirs:
                self._dirs[parent] = -1
                return True
            path = parent
        return False

    def forget_run(self, run_id: str) -> None:
        self._folds.pop(run_id, None)
        self._inodes.pop(run_id, None)
        self._files.pop(run_id, None)

    def moves(self, gone: Sequence[str], found: Sequence[RunLocation]) -> dict[str, str]:
        """Old run id -> new run id for runs whose fold folder reappeared elsewhere (same inode: a rename)."""
        by_inode = {self._inodes[run_id]: run_id for run_id in gone if run_id in self._inodes}
        moved = {}
        for location in found:
            try:
                old = by_inode.get(os.stat(location.path).st_ino)
            except OSError:
                continue
            if old is not None:
                moved[old] = location.run_id
        return moved

    def run_changed(self, run_id: str, folder: str | os.PathLike[str], signature: FileSignature | None) -> bool:
        """Did the fold folder or a log of ``signature`` change (or is the folder gone)? Its other files are
        compared in the run's turn of the sweep."""
        files = self._files.get(run_id)
        if files is None or files.signature is not signature:
            folder_mtime = self._folds.get(run_id)
            if signature is None or folder_mtime is None:
                return True
            files = self._files[run_id] = _Files.of(run_id, os.fspath(folder), folder_mtime, signature)
        if _mtime(files.folder) != files.folder_mtime or not _unchanged(files.logs):
            return True
        return (files.sweep_slot - self._poll) % self._sweep_polls == 0 and not _unchanged(files.others)
