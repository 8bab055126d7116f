"""Reading one training log incrementally: a byte offset per file and everything parsed from it so far.

nnU-Net only appends; a file that shrank or was replaced (size, inode) is read again from the start.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from monitor.logs.parser import EpochRows, LogParser

__all__ = ["CursorState", "LogCursor", "log_sort_key"]

_LOG_NAME = re.compile(r"^training_log_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)\.txt$")
# A log line longer than this is not nnU-Net's; reading it is not worth the memory.
_MAX_READ = 256 * 1024 * 1024


def log_sort_key(name: str, mtime: float) -> tuple[int, tuple[int, ...], float]:
    """Order by the start time in the name, numerically (``2023_9_1`` after ``2023_8_31``)."""
    match = _LOG_NAME.match(name)
    if match:
        return (0, tuple(int(part) for part in match.groups()), mtime)
    return (1, (), mtime)


@dataclass(frozen=True)
class CursorState:
    """Everything a :class:`LogCursor` needs to go on reading where it stopped, without the file's path (a
    persistent index stores it; :meth:`LogCursor.resume` rebuilds the cursor)."""

    name: str
    inode: int
    offset: int
    size: int
    mtime: float
    parser_version: str | None
    parser_last_epoch: int | None
    parser_session: int
    parser_pending_lr: float
    parser_training_done: bool
    rows: EpochRows
    problems: tuple[str, ...]
    final_dice: float | None


@dataclass
class LogCursor:
    """Read position in one log file plus everything parsed from it so far."""

    path: Path
    inode: int = -1
    offset: int = 0
    size: int = 0
    mtime: float = 0.0
    parser: LogParser = field(default_factory=LogParser)
    rows: EpochRows = field(default_factory=EpochRows)
    problems: list[str] = field(default_factory=list)
    final_dice: float | None = None
    # Resumed from a saved state: a replacement found by the first read is not news (it happened while no one
    # watched), so it is read again quietly, as a first read would.
    resumed: bool = False

    def state(self) -> CursorState:
        """The read position, the parser's cross-epoch state and the rows parsed so far."""
        parser = self.parser
        return CursorState(self.path.name, self.inode, self.offset, self.size, self.mtime, parser.version,
                           parser.last_epoch, parser.session, parser.pending_lr, parser.training_done,
                           self.rows, tuple(self.problems), self.final_dice)

    @classmethod
    def resume(cls, folder: Path, state: CursorState) -> LogCursor:
        """A cursor that continues from ``state`` (the next :meth:`read_new` reads only what was appended)."""
        parser = LogParser()
        parser.version, parser.last_epoch, parser.session = (state.parser_version, state.parser_last_epoch,
                                                             state.parser_session)
        parser.pending_lr, parser.training_done = state.parser_pending_lr, state.parser_training_done
        return cls(folder / state.name, state.inode, state.offset, state.size, state.mtime, parser, state.rows,
                   list(state.problems), state.final_dice, resumed=True)

    def reset(self) -> None:
        self.offset = 0
        self.parser = LogParser()
        self.rows = EpochRows()
        self.problems = []
        self.final_dice = None

    def read_new(self, *, later_log: bool) -> bool:
        """Consume appended bytes; True when new epochs (or markers) were found. ``later_log``: a later log file
        exists, so this one's writer has finished (as it has once the log says ``Training done.``)."""
        info = os.stat(self.path)
        if info.st_ino != self.inode or info.st_size < self.offset:
            replaced = self.inode != -1 and not self.resumed
            self.reset()
            if replaced:  # after reset(), which clears the problems of the old content
                self.problems.append(f"{self.path.name} was replaced or truncated; read again from the start")
            self.inode = info.st_ino
        self.resumed = False
        self.size, self.mtime = info.st_size, info.st_mtime
        if info.st_size == self.offset:
            return False
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(min(info.st_size - self.offset, _MAX_READ))
        if b"\0" in data:
            data = data.replace(b"\0", b"")
            note = f"{self.path.name}: binary garbage (NUL bytes) ignored"
            if note not in self.problems:
                self.problems.append(note)
        # After a reset the old content's "Training done." no longer counts.
        result = self.parser.feed(data, eof_is_final=later_log or self.parser.training_done)
        if result.consumed == 0 and len(data) >= _MAX_READ:
            self.problems.append(f"{self.path.name}: a line longer than {_MAX_READ >> 20} MB; skipped")
            result.consumed = len(data)
        self.offset += result.consumed
        self.rows.extend(result.rows)
        for problem in result.problems:
            self.problems.append(f"{self.path.name}: {problem}")
        if result.final_validation_dice is not None:
            self.final_dice = result.final_validation_dice
        return bool(len(result.rows)) or result.training_done

