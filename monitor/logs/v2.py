"""nnU-Net v2 log text → per-epoch columns, by these rules:

* Each line is ``str(datetime.now()) + ": " + message``; the message starts at byte 28 when bytes 26–27 are
  ``": "``, else after the line's first ``": "``.
* ``Epoch N`` opens a block; ``Current learning rate: ``, ``train_loss ``, ``val_loss ``, ``Pseudo dice [`` and
  ``Epoch time: `` (the end) fill the current block, the later of two counting; earlier lines belong to none.
* A number is the token after the key, up to whitespace, NUL, ``,`` or ``]``, as ``float()`` reads it (else NaN).
  A Dice list ends at the line's last ``]``; its ``,``-split items are stripped of spaces and ``np.float32(…)``;
  ``[]`` is no class; an item that is not a number or is over 32 bytes garbles the line.
* An epoch ends at the timestamp of its ``Epoch time`` line: the ``YYYY-MM-DD HH:MM:SS[.f]`` that ends the text
  before the message, else NaT.

The compiled pass (``_v2log.c``) applies them in one pass over the bytes; without it, the line reader below
does.  The tests hold the two to each other bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import ModuleType

import numpy as np

_compiled: ModuleType | None
try:
    from monitor.logs import _v2log as _compiled
except ImportError:  # no C compiler at install time: the line reader does the same work
    _compiled = None

__all__ = ["V2Blocks", "extract_v2_blocks", "line_timestamp"]

START, LR, TRAIN, VAL, TIME, DICE = range(6)
_CODES = {b"Epoch ": START, b"Current learning rate: ": LR, b"train_loss ": TRAIN, b"val_loss ": VAL,
          b"Epoch time: ": TIME, b"Pseudo dice [": DICE}
# A key and the token after it; "Epoch time: " also starts with "Epoch ", so it is tried first.
_EVENT = re.compile(rb"(Epoch time: |Epoch |Current learning rate: |train_loss |val_loss |Pseudo dice \[)"
                    rb"([^\s,\]\x00]*)")
_MESSAGE_AT = 28  # after "YYYY-MM-DD HH:MM:SS.ffffff: ", what str(datetime) prints unless microseconds are 0
_MAX_ITEM = 32  # no float prints longer: a longer Dice item means the line is not a Dice list
_TIMESTAMP_RE = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\s*$")
_NAT = np.datetime64("NaT", "us")


@dataclass
class V2Blocks:
    """One entry per ``Epoch N`` line of a chunk, in file order; NaN / False where a line is missing."""

    epoch: np.ndarray  # int64, -1 where the number is garbled
    lr: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    epoch_time_s: np.ndarray
    dice: np.ndarray  # (n × K)
    has_dice: np.ndarray
    has_end: np.ndarray  # an "Epoch time" line was written: the epoch is over
    epoch_end: np.ndarray  # datetime64[us] of the "Epoch time" line
    line_start: np.ndarray  # offset of the "Epoch N" line, where a re-read of an unfinished epoch starts
    garbled_dice: int  # "Pseudo dice" lines that could not be read


def _to_float(text: bytes) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def line_timestamp(buf: bytes, line_start: int, message_start: int) -> np.datetime64:
    """The ``YYYY-MM-DD HH:MM:SS[.f]`` that ends a line's text before its message, NaT where there is none or
    where it only looks like one (a garbled "2024-25-01")."""
    found = _TIMESTAMP_RE.search(buf, line_start, max(message_start - 2, line_start))
    try:
        return np.datetime64(found.group(1).decode("ascii"), "us") if found else _NAT
    except ValueError:
        return _NAT


def extract_v2_blocks(buf: bytes) -> V2Blocks:
    """Per-epoch columns of whole v2 log lines (``buf`` ends with a newline), by the compiled pass if built."""
    return _compiled_blocks(buf) if _compiled is not None else _python_blocks(buf)


# The records of monitor/logs/_v2log.c, one per block (its struct Block).
_BLOCK = np.dtype([("epoch", "i8"), ("line_start", "i8"), ("end_line", "i8"), ("end_message", "i8"),
                   ("epoch_end", "M8[us]"), ("lr", "f8"), ("train_loss", "f8"), ("val_loss", "f8"),
                   ("epoch_time_s", "f8"), ("dice_at", "i8"), ("dice_count", "i8")])


def _compiled_blocks(buf: bytes) -> V2Blocks:
    """:func:`extract_v2_blocks` by ``_v2log.c``: views of its records, no per-column conversion; timestamps
    not in ``str(datetime)``'s fixed width are read here."""
    assert _compiled is not None
    records, dice, classes, garbled, unconverted = _compiled.blocks(buf)
    block = np.frombuffer(records, _BLOCK)
    has_end = block["end_line"] >= 0
    epoch_end = block["epoch_end"]
    for i in np.flatnonzero(has_end & np.isnat(epoch_end)).tolist() if unconverted else ():
        epoch_end[i] = line_timestamp(buf, int(block["end_line"][i]), int(block["end_message"][i]))
    return V2Blocks(epoch=block["epoch"], lr=block["lr"], train_loss=block["train_loss"], val_loss=block["val_loss"],
                    epoch_time_s=block["epoch_time_s"], dice=np.frombuffer(dice).reshape(block.size, classes),
                    has_dice=block["dice_count"] >= 0, has_end=has_end, epoch_end=epoch_end,
                    line_start=block["line_start"], garbled_dice=garbled)


def _dice_list(line: bytes, begin: int) -> list[float] | None:
    """The items of a ``Pseudo dice [`` list starting at ``begin``; None where the line is garbled."""
    close = line.rfind(b"]", begin)
    if close < 0:
        return None
    items = line[begin:close].split(b",")
    values = []
    for item in items:
        item = item.strip(b" ")
        if len(item) > 11 and item.startswith(b"np.float") and item[8:10].isdigit() and item[10:11] == b"(" \
                and item.endswith(b")"):
            item = item[11:-1]
        if not item and len(items) == 1:
            return []  # "[]": no class
        if len(item) > _MAX_ITEM:
            return None
        try:
            values.append(float(item))
        except ValueError:
            return None
    return values


def _python_blocks(buf: bytes) -> V2Blocks:
    """:func:`extract_v2_blocks` line by line, for an install without the compiled pass."""
    epoch: list[int] = []
    line_start: list[int] = []
    scalars: list[list[float]] = []  # per block: lr, train_loss, val_loss, epoch_time_s
    dice: list[list[float] | None] = []
    epoch_end: list[np.datetime64 | None] = []  # None: no "Epoch time" line
    garbled = 0
    offset = 0
    for line in buf.split(b"\n")[:-1]:  # the caller passes whole lines only
        start, offset = offset, offset + len(line) + 1
        message = _MESSAGE_AT if line[_MESSAGE_AT - 2:_MESSAGE_AT] == b": " else line.find(b": ") + 2
        event = _EVENT.match(line, message) if message >= 2 else None
        if event is None:
            continue
        code = _CODES[event.group(1)]
        if code != START and not epoch:
            continue
        if code == DICE:
            values = _dice_list(line, event.end(1))
            if values is None:
                garbled += 1
            else:
                dice[-1] = values
            continue
        value = _to_float(event.group(2))
        if code == START:
            whole = math.isfinite(value) and 0 <= value < 2.0**63 and value == math.floor(value)
            epoch.append(int(value) if whole else -1)  # an epoch number beyond int64 is garbled
            line_start.append(start)
            scalars.append([math.nan] * 4)
            dice.append(None)
            epoch_end.append(None)
            continue
        scalars[-1][code - 1] = value
        if code == TIME:
            epoch_end[-1] = line_timestamp(line, 0, message)
    width = max((len(d) for d in dice if d is not None), default=0)
    matrix = np.full((len(dice), width), np.nan)
    for i, row in enumerate(dice):
        if row:
            matrix[i, :len(row)] = row
    columns = np.array(scalars, np.float64).reshape(-1, 4).T
    return V2Blocks(epoch=np.array(epoch, np.int64), lr=columns[0], train_loss=columns[1], val_loss=columns[2],
                    epoch_time_s=columns[3], dice=matrix, has_dice=np.array([d is not None for d in dice], bool),
                    has_end=np.array([e is not None for e in epoch_end], bool),
                    epoch_end=np.array([_NAT if e is None else e for e in epoch_end], "datetime64[us]"),
                    line_start=np.array(line_start, np.int64), garbled_dice=garbled)
