"""Polling a results tree without listing it: for network file systems, where inotify sees no remote writes.

A poll stats, and lists nothing unless something changed: the folders above the runs (``Dataset``,
``Trainer__Plans__config``; v1's deeper levels), whose mtime moves when an entry is added, removed or renamed in
them, then each run's fold folder (a new or removed file) and the files its reader reads (a log that grew, by
size). Only a folder whose mtime moved is listed again. So an unchanged 10,000-run tree costs about
``folders + runs × (files + 1)`` ``stat`` calls per poll and no directory reads.

On NFS the client caches attributes (``actimeo``, by default 3–60 s, growing while a file does not change): a
``stat`` may answer from that cache, so a remote append is seen after the interval plus up to the attribute
cache's age. Mounting with a shorter ``actimeo`` (or ``noac``) lowers that latency at the cost of more requests
to the server.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from monitor.runs.layout import FOLD_DIR_RE, RunLocation
from monitor.runs.resume import FileSignature

__all__ = ["TreePoller"]

_Stat = tuple[int, int, int]  # size, mtime_ns, inode


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class TreePoller:
    """Which folders above the runs and which runs changed since they were last seen."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(Path(root).absolute())
        self._dirs: dict[str, int] = {}  # folder above the runs -> mtime_ns when last listed
        self._folds: dict[str, int | None] = {}  # run id -> its fold folder's mtime_ns when last read
        self._inodes: dict[str, int] = {}  # run id -> its fold folder's inode

    def track_tree(self, top: str | os.PathLike[str]) -> None:
        """Record the mtimes of every folder under ``top`` down to (not into) fold folders; done after listing
        them, so a change made after this is seen by the next :meth:`changed_dirs`."""
        for dirpath, dirnames, _ in os.walk(top):
            mtime = _mtime(dirpath)
            if mtime is not None:
                self._dirs[dirpath] = mtime
            dirnames[:] = [d for d in dirnames if not FOLD_DIR_RE.match(d)]

    def changed_dirs(self) -> list[str]:
        """Folders above the runs added to, removed from or renamed in since they were tracked (gone ones too)."""
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
        try:
            info = os.stat(folder)
        except OSError:
            self._folds[run_id] = None
            return
        self._folds[run_id], self._inodes[run_id] = info.st_mtime_ns, info.st_ino

    def forget_run(self, run_id: str) -> None:
        self._folds.pop(run_id, None)
        self._inodes.pop(run_id, None)

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
        """Did the fold folder or any file of ``signature`` change (or is the folder gone)?"""
        path = os.fspath(folder)
        if signature is None or _mtime(path) != self._folds.get(run_id):
            return True
        for name, size, mtime_ns, inode in signature:
            try:
                info = os.stat(os.path.join(path, name))
            except OSError:
                return True
            if (info.st_size, info.st_mtime_ns, info.st_ino) != (size, mtime_ns, inode):
                return True
        return False
