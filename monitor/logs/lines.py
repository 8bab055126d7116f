"""The same v2 log reading as :mod:`monitor.logs.v2`, line by line in plain Python, for small chunks.

A watched run grows by one epoch (~9 lines, ~500 bytes) at a time. The vectorised reader makes ~150 numpy
calls whatever the size of its input, ~0.5 ms; walking nine lines in Python costs a tenth of that. So the
parser sends chunks below :data:`SMALL_CHUNK_BYTES` here and everything bigger (a cold read) there. The
rules are identical, clause for clause (the tests feed both the same mangled logs and compare every
array); see :mod:`monitor.logs.v2` for why each rule is what it is.
"""

from __future__ import annotations

import math
import re

import numpy as np

from monitor.logs.v2 import (
    _KEYS,
    _MAX_SCALAR_WIDTH,
    _MESSAGE_AT,
    _NAT,
    _SCALARS,
    _TIMESTAMP_RE,
    _TOKEN,
    _TS_WIDTH,
    DICE,
    START,
    TIME,
    V2Blocks,
)

__all__ = ["SMALL_CHUNK_BYTES", "extract_v2_lines"]

SMALL_CHUNK_BYTES = 16384  # ~30 epochs: below this, plain Python is faster than numpy's per-call cost
_KEYS_BY_TEST_ORDER = sorted(_KEYS, key=lambda item: item[0] != TIME)  # "Epoch time: " before "Epoch "
_KEY_LENGTH = {code: len(key) for code, key in _KEYS}
_FULL_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
_WRAPPER = re.compile(rb"np\.float\d\d\((.*)\)", re.DOTALL)
_WRAPPER_LENGTH = len(b"np.float32(")


def _number(token: bytes) -> tuple[float, bool]:
    try:
        return float(token), True
    except ValueError:
        return math.nan, False


def _dice(text: bytes) -> list[float] | None:
    """The list before the last ``]``; None where unreadable (see ``logparse_v2._dice_lists``)."""
    if b"]" not in text:
        return None
    items = [item.strip(b" ") for item in text.rsplit(b"]", 1)[0].split(b",")]
    if items == [b""]:
        return []
    values = []
    for item in items:
        wrapped = _WRAPPER.fullmatch(item)
        if wrapped and len(item) > _WRAPPER_LENGTH:
            item = wrapped.group(1)
        value, readable = _number(item)
        if not readable or len(item) > _MAX_SCALAR_WIDTH:
            return None
        values.append(value)
    return values


def _stamp(line: bytes, message_at: int) -> np.datetime64:
    if message_at == _MESSAGE_AT and _FULL_STAMP.fullmatch(line[:_TS_WIDTH]):
        try:
            return np.datetime64(line[:_TS_WIDTH].decode("ascii"), "us")
        except ValueError:
            pass
    found = _TIMESTAMP_RE.search(line, 0, max(message_at - 2, 0))
    try:
        return np.datetime64(found.group(1).decode("ascii"), "us") if found else _NAT
    except ValueError:
        return _NAT


def extract_v2_lines(buf: bytes) -> V2Blocks:
    """Per-epoch columns of a run of whole v2 log lines (``buf`` ends with a newline)."""
    epochs: list[int] = []
    scalars: dict[str, list[float]] = {name: [] for name in _SCALARS.values()}
    dice: list[list[float] | None] = []
    ends: list[np.datetime64] = []
    ended: list[bool] = []
    line_starts: list[int] = []
    garbled = 0
    offset = 0
    for line in buf.split(b"\n")[:-1]:
        line_start, offset = offset, offset + len(line) + 1
        at = _TS_WIDTH if len(line) >= _MESSAGE_AT and line[_TS_WIDTH:_MESSAGE_AT] == b": " else line.find(b": ")
        if at < 0:
            continue
        message_at = at + 2
        code = next((code for code, key in _KEYS_BY_TEST_ORDER if line.startswith(key, message_at)), None)
        if code is None or (code != START and not epochs):
            continue
        value = line[message_at + _KEY_LENGTH[code]:]
        if code == START:
            number, _ = _number(_TOKEN.match(value).group(0))  # type: ignore[union-attr]
            whole = math.isfinite(number) and 0 <= number < 2**63 and number == math.floor(number)
            epochs.append(int(number) if whole else -1)
            for column in scalars.values():
                column.append(math.nan)
            dice.append(None)
            ends.append(_NAT)
            ended.append(False)
            line_starts.append(line_start)
        elif code == DICE:
            parsed = _dice(value)
            if parsed is None:
                garbled += 1
            else:
                dice[-1] = parsed
        else:
            scalars[_SCALARS[code]][-1], _ = _number(_TOKEN.match(value).group(0))  # type: ignore[union-attr]
            if code == TIME:
                ended[-1] = True
                ends[-1] = _stamp(line, message_at)
    n = len(epochs)
    width = max((len(d) for d in dice if d is not None), default=0)
    matrix = np.full((n, width), np.nan)
    for i, row in enumerate(dice):
        if row:
            matrix[i, : len(row)] = row
    return V2Blocks(epoch=np.array(epochs, dtype=np.int64),
                    lr=np.array(scalars["lr"], dtype=float), train_loss=np.array(scalars["train_loss"], dtype=float),
                    val_loss=np.array(scalars["val_loss"], dtype=float),
                    epoch_time_s=np.array(scalars["epoch_time_s"], dtype=float), dice=matrix,
                    has_dice=np.array([d is not None for d in dice], dtype=bool), has_end=np.array(ended, dtype=bool),
                    epoch_end=np.array(ends, dtype="datetime64[us]"), line_start=np.array(line_starts, dtype=np.int64),
                    garbled_dice=garbled)
