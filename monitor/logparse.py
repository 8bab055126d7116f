"""Incremental parser for nnU-Net ``training_log_*.txt`` files, v2 and v1 formats.

What each line means (read off nnU-Net's trainers):

v2 (``nnUNetTrainer``) prints, per epoch::

    <ts>: Epoch 12
    <ts>: Current learning rate: 0.00989      <- lr used in this epoch, rounded to 5 decimals
    <ts>: train_loss -0.7012                  <- 4 decimals
    <ts>: val_loss -0.6543
    <ts>: Pseudo dice [0.8123, nan]           <- or [np.float32(0.8123), ...] with numpy 2
    <ts>: Epoch time: 101.3 s                 <- the epoch is complete here
    <ts>: Yayy! New best EMA pseudo Dice: 0.8012

v1 (``nnUNetTrainerV2``) prints ``epoch:  12`` on a line of its own, then ``train loss :``,
``validation loss:``, ``Average global foreground Dice: [..]``, ``lr: x`` — the rate for the *next*
epoch (it also prints ``lr:`` once at start-up, before the first epoch of a session) — and
``This epoch took x s``, which completes the epoch.

Speed matters (a lab's tree holds hundreds of 1000-epoch logs), so one compiled regex with a literal
prefix (``": "``) pulls out only the interesting lines with ``findall`` in C, and Python touches each
of those once. The parser resumes from a byte offset: it consumes only whole lines, and an epoch whose
end-of-epoch lines are not written yet is left unconsumed, to be read again on the next call.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = ["EpochRows", "LogParser", "ParseResult"]

_V2_EVENTS = re.compile(
    rb": (Epoch time: |Epoch |Current learning rate: |train_loss |val_loss |Pseudo dice \[|Training done\."
    rb"|Mean Validation Dice: )([^\n]*)"
)
_V2_EPOCH_TIME = re.compile(rb": Epoch time: ")
_V1_EVENTS = re.compile(
    rb"(?:\n(epoch:) +(\d+)|: (train loss : |validation loss: |Average global foreground Dice: \[|lr: "
    rb"|This epoch took |finished prediction|Starting\.\.\.)([^\n]*))"
)
_V1_EPOCH_TOOK = re.compile(rb": This epoch took ")
_NUMPY_SCALAR = re.compile(rb"np\.float(?:16|32|64)\(|\)")
_TIMESTAMP_RE = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\s*$")


@dataclass
class EpochRows:
    """Column lists of completed epochs, in file order (epochs may repeat across sessions)."""

    epoch: list[int] = field(default_factory=list)
    session: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    dice: list[list[float]] = field(default_factory=list)
    epoch_time_s: list[float] = field(default_factory=list)
    epoch_end: list[str] = field(default_factory=list)  # naive local "YYYY-MM-DD HH:MM:SS[.ffffff]"

    def __len__(self) -> int:
        return len(self.epoch)

    def extend(self, other: EpochRows) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


@dataclass
class ParseResult:
    """What one call to :meth:`LogParser.feed` found in the newly consumed bytes."""

    rows: EpochRows
    consumed: int  # bytes of the input that are final; the caller's next offset is old offset + consumed
    training_done: bool = False
    final_validation_dice: float | None = None
    problems: list[str] = field(default_factory=list)


def _to_float(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan


def _parse_list(raw: bytes) -> list[float] | None:
    """``0.81, nan`` or ``np.float32(0.81), np.float32(nan)`` → floats; None when garbled."""
    body = raw.split(b"]", 1)[0]
    if b"np." in body:
        body = _NUMPY_SCALAR.sub(b"", body)
    try:
        return [float(part) for part in body.split(b",")] if body.strip() else []
    except ValueError:
        return None


def _line_timestamp(buf: bytes, match_start: int) -> str:
    line_start = buf.rfind(b"\n", 0, match_start) + 1
    found = _TIMESTAMP_RE.search(buf, line_start, match_start)
    return found.group(1).decode("ascii") if found else ""


class LogParser:
    """Stateful parser of one log file, fed its bytes from successive offsets.

    State kept between calls is only what crosses an epoch boundary: the format, the last epoch seen
    (a smaller or equal epoch number starts a new session, as after a restart inside one file) and,
    for v1, the learning rate announced for the next epoch.
    """

    def __init__(self) -> None:
        self.version: str | None = None
        self.last_epoch: int | None = None
        self.session = 0
        self.pending_lr = math.nan
        self.training_done = False

    def feed(self, data: bytes, *, eof_is_final: bool = False) -> ParseResult:
        """Parse the complete lines of ``data``; return the completed epochs and how much was consumed.

        ``eof_is_final`` says the writer has finished (e.g. a later log file exists), so an epoch cut off
        at the end is dropped for good instead of being held back for the next call.
        """
        end = data.rfind(b"\n") + 1
        if end == 0:
            return ParseResult(EpochRows(), 0)
        buf = data[:end] if end < len(data) else data
        if self.version is None:
            self.version = self._detect(buf)
            if self.version is None:
                # Nothing epoch-like yet (start-up banner): consume it, there is nothing to hold back.
                return ParseResult(EpochRows(), end)
        if self.version == "v1":
            return self._feed_v1(buf, end, eof_is_final)
        return self._feed_v2(buf, end, eof_is_final)

    @staticmethod
    def _detect(buf: bytes) -> str | None:
        if b": Epoch " in buf or b": Current learning rate: " in buf or b": Pseudo dice [" in buf:
            return "v2"
        if b"\nepoch: " in buf or b"Average global foreground Dice" in buf or b": lr: " in buf:
            return "v1"
        return None

    def _start_session(self, epoch: int) -> None:
        if self.last_epoch is not None and epoch <= self.last_epoch:
            self.session += 1

    def _feed_v2(self, buf: bytes, end: int, eof_is_final: bool) -> ParseResult:
        rows = EpochRows()
        result = ParseResult(rows, end)
        times = [m.start() for m in _V2_EPOCH_TIME.finditer(buf)]
        time_index = 0
        epoch = None
        lr = train_loss = val_loss = math.nan
        dice: list[float] | None = None
        garbled = 0
        for key, value in _V2_EVENTS.findall(buf):
            if key == b"Epoch ":
                number = value.strip()
                if not number.isdigit():
                    continue
                epoch = int(number)
                lr = train_loss = val_loss = math.nan
                dice = None
            elif epoch is None:
                if key == b"Training done.":
                    result.training_done = self.training_done = True
                elif key == b"Mean Validation Dice: ":
                    result.final_validation_dice = _to_float(value.strip())
                elif key == b"Epoch time: ":
                    time_index += 1
            elif key == b"Current learning rate: ":
                lr = _to_float(value.strip())
            elif key == b"train_loss ":
                train_loss = _to_float(value.strip())
            elif key == b"val_loss ":
                val_loss = _to_float(value.strip())
            elif key == b"Pseudo dice [":
                dice = _parse_list(value)
                if dice is None:
                    garbled += 1
            elif key == b"Epoch time: ":
                position = times[time_index] if time_index < len(times) else -1
                time_index += 1
                if dice is not None:
                    self._start_session(epoch)
                    rows.epoch.append(epoch)
                    rows.session.append(self.session)
                    rows.lr.append(lr)
                    rows.train_loss.append(train_loss)
                    rows.val_loss.append(val_loss)
                    rows.dice.append(dice)
                    rows.epoch_time_s.append(_to_float(value.strip().split(b" ", 1)[0]))
                    rows.epoch_end.append(_line_timestamp(buf, position) if position >= 0 else "")
                    self.last_epoch = epoch
                epoch = None
            elif key == b"Training done.":
                result.training_done = self.training_done = True
                epoch = None
        if garbled:
            result.problems.append(f"{garbled} garbled 'Pseudo dice' line(s) skipped")
        if epoch is not None and not eof_is_final:
            # The last epoch has started but not ended: leave its lines for the next read.
            marker = buf.rfind(b": Epoch %d " % epoch)
            if marker >= 0:
                result.consumed = buf.rfind(b"\n", 0, marker) + 1
        return result

    def _feed_v1(self, buf: bytes, end: int, eof_is_final: bool) -> ParseResult:
        rows = EpochRows()
        result = ParseResult(rows, end)
        took = [m.start() for m in _V1_EPOCH_TOOK.finditer(buf)]
        took_index = 0
        epoch = None
        lr = train_loss = val_loss = math.nan
        dice: list[float] | None = None
        pending_before_epoch = self.pending_lr
        epoch_key = b"epoch:"
        for epoch_word, number, key, value in _V1_EVENTS.findall(buf):
            if epoch_word == epoch_key:
                epoch = int(number)
                pending_before_epoch = self.pending_lr
                lr, self.pending_lr = self.pending_lr, math.nan
                train_loss = val_loss = math.nan
                dice = None
            elif key == b"lr: ":
                self.pending_lr = _to_float(value.strip())
            elif key == b"Starting...":
                # A new start inside the same file; the epoch counter tells resume from restart.
                epoch = None
                self.pending_lr = math.nan
            elif key == b"finished prediction":
                result.training_done = self.training_done = True
            elif epoch is None:
                if key == b"This epoch took ":
                    took_index += 1
            elif key == b"train loss : ":
                train_loss = _to_float(value.strip())
            elif key == b"validation loss: ":
                val_loss = _to_float(value.strip())
            elif key == b"Average global foreground Dice: [":
                dice = _parse_list(value)
                if dice is None:
                    result.problems.append(f"garbled Dice line at epoch {epoch} skipped")
            elif key == b"This epoch took ":
                position = took[took_index] if took_index < len(took) else -1
                took_index += 1
                if dice is not None:
                    self._start_session(epoch)
                    rows.epoch.append(epoch)
                    rows.session.append(self.session)
                    rows.lr.append(lr)
                    rows.train_loss.append(train_loss)
                    rows.val_loss.append(val_loss)
                    rows.dice.append(dice)
                    rows.epoch_time_s.append(_to_float(value.strip().split(b" ", 1)[0]))
                    rows.epoch_end.append(_line_timestamp(buf, position) if position >= 0 else "")
                    self.last_epoch = epoch
                epoch = None
        if epoch is not None and not eof_is_final:
            marker = buf.rfind(b"\nepoch: ")
            if marker >= 0:
                # Re-read from the timestamp line before "epoch:", with the lr it announced restored.
                result.consumed = buf.rfind(b"\n", 0, marker) + 1
                self.pending_lr = pending_before_epoch
        return result
