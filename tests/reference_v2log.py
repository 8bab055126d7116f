"""A deliberately plain, line-by-line reading of nnU-Net v2 logs: the specification both v2 readers (the
compiled pass and the line reader of monitor/logs/v2.py) are tested against, line for line, on mangled logs.

Same rules, written the obvious way:
* a line's message starts at byte 28 when bytes 26–27 are ``": "`` (after ``str(datetime)``), else after
  its first ``": "``; a message is one of six keys (``Epoch time: `` is
  tested before ``Epoch ``); values before the first ``Epoch N`` of the text belong to no epoch;
* a number is the text after the key up to whitespace, NUL, ``,`` or ``]``, read by ``float()``;
* a pseudo-Dice list ends at the line's last ``]``; its items, stripped of spaces and of numpy 2's
  ``np.floatNN(…)``, are each read by ``float()``; one unreadable (or over 32 bytes) item spoils the line;
  a single empty item is an empty list;
* an epoch's end is the timestamp of its epoch-time line: ``str(datetime)``'s 26 characters, else the
  ``YYYY-MM-DD HH:MM:SS[.f]`` that ends the text before the message, else unknown;
* within an epoch the last value of each key wins; an epoch is complete with an epoch time, a readable
  pseudo-Dice list and a whole, non-negative epoch number below 2**63 (what an int64 holds).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

KEYS = (("time", b"Epoch time: "), ("start", b"Epoch "), ("lr", b"Current learning rate: "),
        ("train_loss", b"train_loss "), ("val_loss", b"val_loss "), ("dice", b"Pseudo dice ["))
TOKEN = re.compile(rb"[^\s,\]\x00]*")
WRAPPER = re.compile(rb"np\.float\d\d\((.*)\)", re.DOTALL)
STAMP = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\s*$")
FULL_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


@dataclass
class Epoch:
    number: int = -1
    values: dict[str, float] = field(default_factory=dict)
    dice: list[float] | None = None
    ended: bool = False
    end: np.datetime64 = field(default_factory=lambda: np.datetime64("NaT", "us"))
    line_start: int = 0


def _number(text: bytes) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _dice(text: bytes) -> list[float] | None:
    if b"]" not in text:
        return None
    items = [item.strip(b" ") for item in text.rsplit(b"]", 1)[0].split(b",")]
    if items == [b""]:
        return []
    out = []
    for item in items:
        wrapped = WRAPPER.fullmatch(item)
        if wrapped and len(item) > 11:
            item = wrapped.group(1)
        if len(item) > 32:
            return None
        try:
            out.append(float(item))
        except ValueError:
            return None
    return out


def _stamp(line: bytes, message_at: int) -> np.datetime64:
    if message_at == 28 and FULL_STAMP.fullmatch(line[:26]):
        try:
            return np.datetime64(line[:26].decode("ascii"), "us")
        except (ValueError, UnicodeDecodeError):
            pass
    found = STAMP.search(line[: max(message_at - 2, 0)])
    try:
        return np.datetime64(found.group(1).decode("ascii"), "us")
    except (AttributeError, ValueError):
        return np.datetime64("NaT", "us")


def read_epochs(buf: bytes) -> tuple[list[Epoch], int]:
    """Every ``Epoch N`` block of whole lines, and how many pseudo-Dice lines were unreadable."""
    epochs: list[Epoch] = []
    garbled = 0
    offset = 0
    for line in buf.split(b"\n")[:-1]:
        line_start, offset = offset, offset + len(line) + 1
        at = 26 if len(line) >= 28 and line[26:28] == b": " else line.find(b": ")
        if at < 0:
            continue
        message = line[at + 2:]
        kind, key = next(((k, key) for k, key in KEYS if message.startswith(key)), (None, b""))
        if kind is None or (kind != "start" and not epochs):
            continue
        value = message[len(key):]
        if kind == "start":
            number = _number(TOKEN.match(value).group(0))
            whole = math.isfinite(number) and 0 <= number < 2**63 and number == math.floor(number)
            epochs.append(Epoch(number=int(number) if whole else -1, line_start=line_start))
        elif kind == "dice":
            dice = _dice(value)
            if dice is None:
                garbled += 1
            else:
                epochs[-1].dice = dice
        else:
            epochs[-1].values[kind] = _number(TOKEN.match(value).group(0))
            if kind == "time":
                epochs[-1].ended = True
                epochs[-1].end = _stamp(line, at + 2)
    return epochs, garbled
