"""Incremental parser for nnU-Net ``training_log_*.txt`` files, v2 and v1 formats.

v2 (``nnUNetTrainer``) prints per epoch ``<ts>: Epoch 12``, ``Current learning rate: 0.00989`` (this
epoch's), ``train_loss -0.7012``, ``val_loss -0.6543``, ``Pseudo dice [0.8123, nan]`` (``np.float32(…)``
items with numpy 2) and ``Epoch time: 101.3 s``, which completes the epoch; :mod:`monitor.logs.v2` reads it.
v1 (``nnUNetTrainerV2``) prints ``epoch:  12`` on a line of its own, ``train loss :``, ``validation loss:``,
``Average global foreground Dice: [..]``, ``lr: x`` (the *next* epoch's rate; also once at start-up) and
``This epoch took x s``; one regex reads it.  The parser resumes from a byte offset: it consumes whole lines
only, and leaves an epoch that has not ended unconsumed, to be read again on the next call.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from monitor.logs.v2 import _dice_list, _to_float, extract_v2_blocks, line_timestamp

__all__ = ["EpochRows", "LogParser", "ParseResult"]

_V2_FINAL_DICE = b": Mean Validation Dice: "
_V1_EVENTS = re.compile(
    rb"(?:\n(epoch:) +(\d+)|: (train loss : |validation loss: |Average global foreground Dice: \[|lr: "
    rb"|This epoch took |finished prediction|Starting\.\.\.)([^\n]*))"
)


@dataclass
class EpochRows:
    """Columns of completed epochs in file order (epochs may repeat across sessions); ``epoch_end`` is the
    training machine's naive local time of the end-of-epoch line."""

    epoch: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    session: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    lr: np.ndarray = field(default_factory=lambda: np.empty(0))
    train_loss: np.ndarray = field(default_factory=lambda: np.empty(0))
    val_loss: np.ndarray = field(default_factory=lambda: np.empty(0))
    dice: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    epoch_time_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    epoch_end: np.ndarray = field(default_factory=lambda: np.empty(0, "datetime64[us]"))

    def __len__(self) -> int:
        return int(self.epoch.shape[0])

    def extend(self, other: EpochRows) -> None:
        if not len(other):
            return
        if not len(self):
            self.__dict__.update(other.__dict__)
            return
        for name in ("epoch", "session", "lr", "train_loss", "val_loss", "epoch_time_s", "epoch_end"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))
        self.dice = stack_ragged([self.dice, other.dice])


def stack_ragged(parts: list[np.ndarray]) -> np.ndarray:
    """Stack (n_i × K_i) matrices, NaN-padding to the widest K (a class list can change across files)."""
    width = max((p.shape[1] for p in parts), default=0)
    padded = [p if p.shape[1] == width else np.hstack([p, np.full((p.shape[0], width - p.shape[1]), np.nan)])
              for p in parts]
    return np.vstack(padded) if padded else np.empty((0, width))


@dataclass
class ParseResult:
    """What one call to :meth:`LogParser.feed` found in the newly consumed bytes."""

    rows: EpochRows
    consumed: int  # bytes of the input that are final; the caller's next offset is old offset + consumed
    training_done: bool = False
    final_validation_dice: float | None = None
    problems: list[str] = field(default_factory=list)


class LogParser:
    """Stateful parser of one log file, fed its bytes from successive offsets.  It keeps only what crosses
    an epoch boundary: the format, the last epoch (one not larger starts a new session) and v1's next lr."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.last_epoch: int | None = None
        self.session = 0
        self.pending_lr = math.nan
        self.training_done = False

    def feed(self, data: bytes, *, eof_is_final: bool = False) -> ParseResult:
        """Parse the complete lines of ``data``; return the completed epochs and how much was consumed.
        ``eof_is_final``: the writer has finished, so an epoch cut off at the end is dropped, not held back."""
        end = data.rfind(b"\n") + 1
        if end == 0:
            return ParseResult(EpochRows(), 0)
        buf = data[:end] if end < len(data) else data
        if self.version is None:
            self.version = self._detect(buf)
            if self.version is None:
                # Nothing epoch-like yet (start-up banner, or a finished run resumed): consume it, there is
                # nothing to hold back.
                done = b": Training done." in buf
                self.training_done |= done
                return ParseResult(EpochRows(), end, training_done=done)
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

    def _rows(self, epochs: np.ndarray, **columns: np.ndarray) -> EpochRows:
        """The completed epochs, each with its session: a new one wherever the counter does not increase."""
        if epochs.size == 0:
            return EpochRows(epoch=epochs, session=np.empty(0, np.int64), **columns)
        previous = np.concatenate([[self.last_epoch if self.last_epoch is not None else -1], epochs[:-1]])
        sessions = self.session + np.cumsum(epochs <= previous)
        self.session = int(sessions[-1])
        self.last_epoch = int(epochs[-1])
        return EpochRows(epoch=epochs, session=sessions.astype(np.int64), **columns)

    def _feed_v2(self, buf: bytes, end: int, eof_is_final: bool) -> ParseResult:
        """Epoch blocks from :mod:`monitor.logs.v2`; here only which are complete, and holding back the last."""
        result = ParseResult(EpochRows(), end)
        if b": Training done." in buf:
            result.training_done = self.training_done = True
        final = buf.rfind(_V2_FINAL_DICE)  # printed once, after training
        if final >= 0:
            value = buf[final + len(_V2_FINAL_DICE):buf.find(b"\n", final)].split()
            result.final_validation_dice = _to_float(value[0]) if value else math.nan
        blocks = extract_v2_blocks(buf)
        if blocks.garbled_dice:
            result.problems.append(f"{blocks.garbled_dice} garbled 'Pseudo dice' line(s) skipped")
        complete = blocks.has_end & blocks.has_dice & (blocks.epoch >= 0)
        keep = np.flatnonzero(complete)
        epoch_numbers = blocks.epoch[keep]
        result.rows = self._rows(
            epoch_numbers,
            lr=blocks.lr[keep],
            train_loss=blocks.train_loss[keep],
            val_loss=blocks.val_loss[keep],
            dice=blocks.dice[keep],
            epoch_time_s=blocks.epoch_time_s[keep],
            epoch_end=blocks.epoch_end[keep],
        )
        last = blocks.epoch.size - 1
        if last >= 0 and not blocks.has_end[last] and not eof_is_final and not result.training_done:
            # The last epoch has started but not ended: leave its lines for the next read.
            result.consumed = int(blocks.line_start[last])
        return result

    def _feed_v1(self, buf: bytes, end: int, eof_is_final: bool) -> ParseResult:
        """v1 logs are rarer and smaller; a plain loop over their events is fast enough."""
        result = ParseResult(EpochRows(), end)
        epoch = None
        lr = train_loss = val_loss = math.nan
        dice: list[float] | None = None
        pending_before_epoch = self.pending_lr
        out_epoch: list[int] = []
        out_values: list[tuple[float, float, float, float]] = []
        out_dice: list[list[float]] = []
        out_end: list[np.datetime64] = []
        for match in _V1_EVENTS.finditer(buf):
            epoch_word, number, key, value = match.groups()
            if epoch_word == b"epoch:":
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
                pass  # outside an epoch (before the first, or after a restart): belongs to none
            elif key == b"train loss : ":
                train_loss = _to_float(value.strip())
            elif key == b"validation loss: ":
                val_loss = _to_float(value.strip())
            elif key == b"Average global foreground Dice: [":
                dice = _dice_list(value, 0)  # the list rules of v2
                if dice is None:
                    result.problems.append(f"garbled Dice line at epoch {epoch} skipped")
            elif key == b"This epoch took ":
                if dice is not None:
                    out_epoch.append(epoch)
                    out_values.append((lr, train_loss, val_loss, _to_float(value.strip().split(b" ", 1)[0])))
                    out_dice.append(dice)
                    out_end.append(line_timestamp(buf, buf.rfind(b"\n", 0, match.start()) + 1, match.start() + 2))
                epoch = None
        if epoch is not None and not eof_is_final:
            marker = buf.rfind(b"\nepoch: ")
            if marker >= 0:
                # Re-read from the timestamp line before "epoch:", with the lr it announced restored.
                result.consumed = buf.rfind(b"\n", 0, marker) + 1
                self.pending_lr = pending_before_epoch
        values = np.array(out_values, dtype=np.float64).reshape(-1, 4)
        width = max((len(d) for d in out_dice), default=0)
        dice_matrix = np.full((len(out_dice), width), np.nan)
        for i, row in enumerate(out_dice):
            dice_matrix[i, : len(row)] = row
        epochs = np.array(out_epoch, dtype=np.int64)
        result.rows = self._rows(
            epochs,
            lr=values[:, 0],
            train_loss=values[:, 1],
            val_loss=values[:, 2],
            dice=dice_matrix,
            epoch_time_s=values[:, 3],
            epoch_end=np.array(out_end, dtype="datetime64[us]"),
        )
        return result
