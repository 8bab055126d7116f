"""nnU-Net v2 log text → per-epoch columns, by these rules:

* Each line is ``str(datetime.now()) + ": " + message``; the message starts after the first ``": "``.
* ``Epoch N`` opens a block; ``Current learning rate: ``, ``train_loss ``, ``val_loss ``, ``Pseudo dice [`` and
  ``Epoch time: `` (the end) fill the current block, the later of two counting; earlier lines belong to none.
* A number is the token after the key, up to whitespace, NUL, ``,`` or ``]``, as ``float()`` reads it (else NaN).
  A Dice list ends at the line's last ``]``; its ``,``-split items are stripped of spaces and ``np.float32(…)``;
  ``[]`` is no class; an item that is not a number or is over 32 bytes garbles the line.

The compiled pass (``_v2log.c``) and, without it, the numpy reader below apply them, held bit-identical by the
tests.  The numpy reader never loops over lines in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from monitor.logs.textnum import parse_decimals

_compiled: ModuleType | None
try:
    from monitor.logs import _v2log as _compiled
except ImportError:  # no C compiler at install time: the numpy reader does the same work
    _compiled = None

__all__ = ["V2Blocks", "extract_v2_blocks", "line_timestamp"]

# Codes sorted so that every single-number message comes before DICE.
START, LR, TRAIN, VAL, TIME, DICE = range(6)
_N_CODES = 6
# Order matters: "Epoch time: " also starts with "Epoch ", so it is tested after, and overrides it.
_KEYS: tuple[tuple[int, bytes], ...] = (
    (START, b"Epoch "),
    (TIME, b"Epoch time: "),
    (LR, b"Current learning rate: "),
    (TRAIN, b"train_loss "),
    (VAL, b"val_loss "),
    (DICE, b"Pseudo dice ["),
)
_KEY_LENGTH = np.array([len(dict(_KEYS)[code]) for code in range(_N_CODES)], np.int64)
_SCALARS = {LR: "lr", TRAIN: "train_loss", VAL: "val_loss", TIME: "epoch_time_s"}  # in code order
_TS_WIDTH = 26  # "YYYY-MM-DD HH:MM:SS.ffffff", what datetime's str() prints unless microseconds are 0
_MESSAGE_AT = _TS_WIDTH + 2
_TS_SEPARATORS = np.frombuffer(b"0000-00-00 00:00:00.000000", np.uint8).copy()
_TS_DIGIT = np.equal(_TS_SEPARATORS, ord("0"))
_TS_SEPARATORS[_TS_DIGIT] = 0xFF  # never equal to a byte of the text where a digit belongs
_MAX_SCALAR_WIDTH = 32  # longer tokens are rare: a scalar's is cut out on its own, a Dice item's garbles its list
_TOKEN = re.compile(rb"[^\s,\]\x00]*")
_TIMESTAMP_RE = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\s*$")
_NAT = np.datetime64("NaT", "us")
_WRAPPER_LENGTH = len(b"np.float32(")
_NP_FLOAT = np.uint64(int.from_bytes(b"np.float", "little"))
_WHITESPACE = np.zeros(256, bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True
_WHITESPACE_OR_END = _WHITESPACE.copy()
_WHITESPACE_OR_END[[0, ord(","), ord("]")]] = True


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


def _message_starts(buf: bytes, raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Offset just after the first ``": "`` of each line, or -1 where the line has none."""
    at = starts + _TS_WIDTH
    fits = at + 2 <= ends
    probe = np.minimum(at, raw.size - 2)
    fits &= (raw[probe] == ord(":")) & (raw[probe + 1] == ord(" "))
    message = np.where(fits, at + 2, -1)
    for line in np.flatnonzero(~fits).tolist():  # a timestamp without microseconds, or other text
        found = buf.find(b": ", int(starts[line]), int(ends[line]))
        if found >= 0:
            message[line] = found + 2
    return message


def _windows(raw: np.ndarray, begin: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """Bytes ``begin[i] .. end[i]`` laid out column-major (width × n), zero past each end."""
    position = begin[None, :] + np.arange(width)[:, None]
    return np.where(position < end[None, :], raw[np.minimum(position, raw.size - 1)], np.uint8(0))


def _word_view(buf: bytes) -> np.ndarray:
    """Element ``i`` is the little-endian 8-byte word that starts at byte ``i``: a view with a stride of one
    byte over a copy padded with zeros, so that a key's last word can be read at the end of the text."""
    return np.ndarray((len(buf) + 16,), "<u8", buf + bytes(24), strides=(1,))


# Each key as three little-endian words (the longest is 23 bytes) and the masks of its bytes in them.
_KEY_WORDS = [(code, np.frombuffer(key.ljust(24, b"\0"), "<u8"),
               np.frombuffer((b"\xff" * len(key)).ljust(24, b"\0"), "<u8")) for code, key in _KEYS]
_FIRST_BYTES = np.zeros(256, bool)
_FIRST_BYTES[[key[0] for _, key in _KEYS]] = True


def _events(buf: bytes, raw: np.ndarray, message: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lines holding one of the six messages (file order) and their codes, matched on the whole key
    (a key holds no newline, so it cannot match past the end of its line)."""
    lines = np.flatnonzero(message >= 0)
    lines = lines[_FIRST_BYTES[raw[message[lines]]]]
    codes = np.full(lines.size, -1, np.int8)
    words = _word_view(buf)
    offsets = message[lines]
    first_word = words[offsets]
    for code, value, mask in _KEY_WORDS:
        hits = np.flatnonzero((first_word & mask[0]) == value[0])
        for word in (1, 2):
            if mask[word]:
                hits = hits[(words[offsets[hits] + 8 * word] & mask[word]) == value[word]]
        codes[hits] = code
    found = codes >= 0
    return lines[found], codes[found]


def _scalar_values(buf: bytes, raw: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The number at the start of each value (up to whitespace, ',' or ']'); NaN where garbled."""
    if not begin.size:
        return np.empty(0)
    width = int(min(max(int((end - begin).max()), 1), _MAX_SCALAR_WIDTH))
    columns = _windows(raw, begin, end, width)
    stop = _WHITESPACE_OR_END[columns]
    lengths = np.where(stop.any(axis=0), stop.argmax(axis=0), width)
    values, _ = parse_decimals(columns[: int(lengths.max())], lengths)
    for i in np.flatnonzero((lengths == width) & (end - begin > width)).tolist():
        token = _TOKEN.match(buf, int(begin[i]), int(end[i]))
        values[i] = _to_float(token.group(0) if token else b"")
    return values


def _to_float(text: bytes) -> float:
    try:
        return float(text)
    except ValueError:
        return np.nan


def _strip(buf: bytes, raw: np.ndarray, begin: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """List items without surrounding spaces (one leading space vectorised, other spaces item by item) and
    without numpy 2's ``np.float32(…)`` wrapper."""
    begin = begin + ((begin < end) & (raw[begin] == ord(" ")))
    end = end.copy()
    for i in np.flatnonzero((begin < end) & ((raw[begin] == ord(" ")) | (raw[np.maximum(end - 1, 0)] == ord(" ")))):
        text = buf[begin[i]:end[i]]
        begin[i] += len(text) - len(text.lstrip(b" "))
        end[i] -= len(text) - len(text.rstrip(b" "))
    candidates = np.flatnonzero((end - begin > _WRAPPER_LENGTH) & (raw[begin] == ord("n")))
    if candidates.size:
        start = begin[candidates]
        hit = (_word_view(buf)[start] == _NP_FLOAT) & (raw[start + _WRAPPER_LENGTH - 1] == ord("("))
        hit &= raw[end[candidates] - 1] == ord(")")
        hit &= (raw[start + 8] - np.uint8(ord("0")) <= 9) & (raw[start + 9] - np.uint8(ord("0")) <= 9)
        begin[candidates[hit]] += _WRAPPER_LENGTH
        end[candidates[hit]] -= 1
    return begin, end


def _dice_lists(buf: bytes, raw: np.ndarray, begin: np.ndarray,
                end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pseudo-Dice lists → (n × K) matrix, a mask of the lines that parsed and their (possibly unequal) lengths."""
    n = begin.size
    if n == 0:
        return np.empty((0, 0)), np.empty(0, bool), np.empty(0, np.int64)
    brackets = np.flatnonzero(raw == ord("]"))
    close = brackets[np.maximum(np.searchsorted(brackets, end) - 1, 0)] if brackets.size else np.full(n, -1)
    ok = close >= begin  # the last "]" before the end of the line lies on it
    close = np.where(ok, close, begin)
    commas = np.append(np.flatnonzero(raw == ord(",")), raw.size)  # a sentinel past the end: never empty
    first_comma = np.searchsorted(commas, begin)
    counts = np.where(ok, np.searchsorted(commas, close) - first_comma + 1, 0)
    row_of = np.repeat(np.arange(n), counts)
    item = np.arange(row_of.size) - np.repeat(np.cumsum(counts) - counts, counts)
    last = item == counts[row_of] - 1
    comma_index = first_comma[row_of] + item
    item_begin = np.where(item == 0, begin[row_of], commas[np.clip(comma_index - 1, 0, None)] + 1)
    item_end = np.where(last, close[row_of], commas[np.minimum(comma_index, commas.size - 1)])
    item_begin, item_end = _strip(buf, raw, item_begin, item_end)
    # "[]" (no classes) is an empty list, not one unreadable item.
    empty_list = (counts[row_of] == 1) & (item_begin == item_end)
    counts[row_of[empty_list]] = 0
    row_of, item, item_begin, item_end = (a[~empty_list] for a in (row_of, item, item_begin, item_end))
    values, readable = np.empty(0), np.ones(0, bool)
    if row_of.size:
        width = int(min(max(int((item_end - item_begin).max()), 1), _MAX_SCALAR_WIDTH))
        lengths = item_end - item_begin
        values, readable = parse_decimals(_windows(raw, item_begin, item_end, width), np.minimum(lengths, width))
        readable &= lengths <= width
        values[~readable] = np.nan
    matrix = np.full((n, int(item.max(initial=-1)) + 1), np.nan)
    matrix[row_of, item] = values
    ok[row_of[~readable]] = False
    return matrix, ok, np.where(ok, counts, 0)


def line_timestamp(buf: bytes, line_start: int, message_start: int) -> np.datetime64:
    """The ``YYYY-MM-DD HH:MM:SS[.f]`` that ends a line's text before its message, NaT where there is none or
    where it only looks like one (a garbled "2024-25-01")."""
    found = _TIMESTAMP_RE.search(buf, line_start, max(message_start - 2, line_start))
    try:
        return np.datetime64(found.group(1).decode("ascii"), "us") if found else _NAT
    except ValueError:
        return _NAT


def _timestamps(buf: bytes, raw: np.ndarray, starts: np.ndarray, message: np.ndarray) -> np.ndarray:
    """The timestamp prefix of the given lines; a fixed-width slice parsed by numpy in the usual case."""
    out = np.full(starts.size, _NAT)
    fits = message - starts == _MESSAGE_AT
    if fits.any():
        window = raw[starts[fits][:, None] + np.arange(_TS_WIDTH)]
        # Digits and separators where str(datetime) puts them, and nothing numpy would read as a time zone.
        shaped = ((window == _TS_SEPARATORS) | (_TS_DIGIT & (window - np.uint8(ord("0")) <= 9))).all(axis=1)
        fits[fits] = shaped
        texts = window[shaped].view(f"S{_TS_WIDTH}").ravel()
        try:
            out[fits] = texts.astype("datetime64[us]")
        except ValueError:  # a date out of range ("2024-25-01"): each line on its own below
            fits[:] = False
    for i in np.flatnonzero(~fits).tolist():
        out[i] = line_timestamp(buf, int(starts[i]), int(message[i]))
    return out


def extract_v2_blocks(buf: bytes) -> V2Blocks:
    """Per-epoch columns of whole v2 log lines (``buf`` ends with a newline), by the compiled pass if built."""
    return _compiled_blocks(buf) if _compiled is not None else _numpy_blocks(buf)


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


def _numpy_blocks(buf: bytes) -> V2Blocks:
    """:func:`extract_v2_blocks` with numpy over the bytes, no Python work per line."""
    raw = np.frombuffer(buf, np.uint8)
    ends = np.flatnonzero(raw == 10)  # the caller passes whole lines only
    starts = np.concatenate([[0], ends[:-1] + 1]) if ends.size else ends
    message = _message_starts(buf, raw, starts, ends)
    lines, codes = _events(buf, raw, message)
    block = np.cumsum(codes == START) - 1
    in_block = block >= 0  # values before the first "Epoch N" line of the chunk belong to no epoch
    lines, codes, block = lines[in_block], codes[in_block], block[in_block]
    n_blocks = int(block[-1]) + 1 if block.size else 0
    begin = message[lines] + _KEY_LENGTH[codes]
    by_code = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_code], np.arange(_N_CODES + 1))

    def of(code: int) -> np.ndarray:
        return by_code[bounds[code]:bounds[code + 1]]

    scalar_events = by_code[: bounds[DICE]]  # every code before DICE is a single number
    numbers = _scalar_values(buf, raw, begin[scalar_events], ends[lines[scalar_events]])
    epoch = np.full(n_blocks, -1, np.int64)
    found = numbers[: bounds[LR]]
    whole = np.isfinite(found) & (found >= 0) & (found == np.floor(found)) & (found < 2.0**63)  # fits int64
    epoch[block[of(START)][whole]] = found[whole].astype(np.int64)
    columns = {}
    for code, name in _SCALARS.items():
        column = np.full(n_blocks, np.nan)
        column[block[of(code)]] = numbers[bounds[code]:bounds[code + 1]]
        columns[name] = column

    dice_events = of(DICE)
    dice_values, dice_ok, dice_counts = _dice_lists(buf, raw, begin[dice_events], ends[lines[dice_events]])
    kept = block[dice_events[dice_ok]]  # of two lists in one epoch the later one counts
    has_dice = np.zeros(n_blocks, bool)
    has_dice[kept] = True
    n_classes = np.zeros(n_blocks, np.int64)
    n_classes[kept] = dice_counts[dice_ok]
    dice = np.full((n_blocks, int(n_classes.max(initial=0))), np.nan)
    dice[kept] = dice_values[dice_ok][:, : dice.shape[1]]

    time_events = of(TIME)
    has_end = np.zeros(n_blocks, bool)
    has_end[block[time_events]] = True
    epoch_end = np.full(n_blocks, _NAT)
    epoch_end[block[time_events]] = _timestamps(buf, raw, starts[lines[time_events]],
                                                message[lines[time_events]])
    return V2Blocks(epoch=epoch, lr=columns["lr"], train_loss=columns["train_loss"],
                    val_loss=columns["val_loss"], epoch_time_s=columns["epoch_time_s"], dice=dice,
                    has_dice=has_dice, has_end=has_end, epoch_end=epoch_end,
                    line_start=starts[lines[of(START)]], garbled_dice=int((~dice_ok).sum()))
