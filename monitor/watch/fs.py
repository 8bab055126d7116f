"""Which watchdog observer suits a results root: inotify on local disks, polling on network file systems.

inotify never sees writes made by another machine (NFS, SMB, FUSE), so there only polling works; the root's
file system comes from ``/proc/self/mountinfo``. When inotify runs out of watches (one per folder, shared by all
of a user's processes) or instances while starting, the watcher polls instead and says how to raise the limit.
"""

from __future__ import annotations

import errno
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer as InotifyObserver
from watchdog.observers.polling import PollingObserver

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver

log = logging.getLogger("nnwatch.watch")

__all__ = [
    "DEFAULT_POLL_S",
    "EventForwarder",
    "MountEntry",
    "ObserverChoice",
    "choose_observer",
    "is_checkpoint_name",
    "is_network_fstype",
    "mount_of",
    "parse_mountinfo",
    "start_observer",
]

DEFAULT_POLL_S = 2.0
NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "smb", "9p", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
    "afs", "ncpfs", "davfs", "fuse", "virtiofs", "panfs", "wekafs", "orangefs", "pvfs2", "ocfs2", "gfs2",
})
_MOUNTINFO = "/proc/self/mountinfo"
_MAX_WATCHES = "/proc/sys/fs/inotify/max_user_watches"


class EventForwarder(FileSystemEventHandler):
    """Runs on watchdog's thread: hands each event to ``forward``, nothing else (an exception is logged)."""

    def __init__(self, forward: Callable[[FileSystemEvent], object]) -> None:
        self._forward = forward

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._forward(event)
        except Exception:  # never kill watchdog's dispatcher thread
            log.exception("cannot route file event %r", event)


def is_checkpoint_name(name: str) -> bool:
    return name.startswith(("checkpoint_", "model_")) and name.endswith((".pth", ".model", ".model.pkl"))


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo`` (the fields the watcher needs)."""

    mount_point: str
    fstype: str
    source: str


@dataclass(frozen=True)
class ObserverChoice:
    """What to run and why (the CLI prints ``reason``)."""

    kind: str  # "inotify" or "polling"
    interval_s: float  # polling interval (unused for inotify)
    reason: str


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo`` octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text (``id parent maj:min root mount_point options [optional...] - fstype source ...``)."""
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or not tail:
            continue
        entries.append(MountEntry(_unescape(fields[4]), tail[0], _unescape(tail[1]) if len(tail) > 1 else ""))
    return entries


def mount_of(path: str | os.PathLike[str], entries: list[MountEntry]) -> MountEntry | None:
    """The mount holding ``path``: longest mount point prefix; among equals the last (it shadows earlier)."""
    real = os.path.realpath(path)
    best: MountEntry | None = None
    for entry in entries:
        point = entry.mount_point
        inside = real == point or point == "/" or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = entry
    return best


def is_network_fstype(fstype: str) -> bool:
    """True where inotify cannot see other machines' writes (network and FUSE file systems)."""
    return fstype in NETWORK_FSTYPES or fstype.startswith(("fuse.", "nfs"))


def choose_observer(root: str | os.PathLike[str], poll: float | None = None, *,
                    mountinfo: str | None = None) -> ObserverChoice:
    """Polling when asked (``poll`` seconds) or when the root is on a network file system, else inotify."""
    if poll is not None:
        if poll <= 0:
            raise ValueError(f"polling interval must be positive, got {poll}")
        return ObserverChoice("polling", float(poll), f"polling every {poll:g} s as asked")
    if mountinfo is None:
        try:
            mountinfo = Path(_MOUNTINFO).read_text()
        except OSError:
            mountinfo = ""
    entry = mount_of(root, parse_mountinfo(mountinfo))
    if entry is not None and is_network_fstype(entry.fstype):
        return ObserverChoice("polling", DEFAULT_POLL_S,
                              f"{entry.mount_point} is {entry.fstype} (a network/FUSE file system inotify cannot "
                              f"see remote writes on): polling every {DEFAULT_POLL_S:g} s")
    fstype = entry.fstype if entry is not None else "unknown"
    return ObserverChoice("inotify", DEFAULT_POLL_S, f"inotify ({fstype} file system)")


def count_folders(root: str | os.PathLike[str]) -> int:
    """Folders watchdog's recursive inotify watch needs, one watch each (symlinks not followed, like it)."""
    return sum(1 for _ in os.walk(root))


def max_user_watches() -> int | None:
    try:
        return int(Path(_MAX_WATCHES).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _limit_message(detail: str, interval: float) -> str:
    return (f"inotify cannot watch this tree ({detail}); falling back to polling every {interval:g} s. "
            "Raise the limit with: sudo sysctl fs.inotify.max_user_watches=1048576")


#: The events the watcher acts on. Asking for these only keeps the kernel from queueing every open and read-only
#: close (each run read, by this process or its workers, would otherwise flood and overflow the inotify queue).
WATCHED_EVENTS: list[type[FileSystemEvent]] = [DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileCreatedEvent,
                                               FileDeletedEvent, FileMovedEvent, FileModifiedEvent, FileClosedEvent]


def start_observer(handler: FileSystemEventHandler, root: str | os.PathLike[str],
                   choice: ObserverChoice) -> tuple[BaseObserver, ObserverChoice]:
    """Schedule ``handler`` recursively on ``root`` and start; returns the observer and what actually runs."""
    # watchdog warns "Callback with id ... already exists" for a folder created with subfolders: harmless, but
    # where warnings are errors that kills its shared inotify thread and silences every watcher, so drop it.
    warnings.filterwarnings("ignore", message=r"Callback with id .* already exists for watch",
                            category=RuntimeWarning)
    if choice.kind == "inotify":
        observer = InotifyObserver()
        try:
            observer.schedule(handler, os.fspath(root), recursive=True, event_filter=WATCHED_EVENTS)
            observer.start()
            return observer, choice
        except OSError as exc:
            _stop_quietly(observer)
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            if exc.errno == errno.ENOSPC:
                detail = (f"watch limit reached: {count_folders(root)} folders to watch, "
                          f"fs.inotify.max_user_watches = {max_user_watches() or '?'} for all of this user's processes")
            else:
                detail = f"instance limit reached: {exc.strerror or exc}"
            choice = ObserverChoice("polling", choice.interval_s, _limit_message(detail, choice.interval_s))
    observer = PollingObserver(timeout=choice.interval_s)
    observer.schedule(handler, os.fspath(root), recursive=True, event_filter=WATCHED_EVENTS)
    observer.start()
    return observer, choice


def _stop_quietly(observer: BaseObserver) -> None:
    try:
        if observer.is_alive():
            observer.stop()
            observer.join(timeout=5)
    except (OSError, RuntimeError):
        pass
