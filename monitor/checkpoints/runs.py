"""Fast path for the per-epoch curves: runs of scalars and floats are decoded up front, hidden from the unpickler.

Two implementations do this.  Where a C compiler was found at install time, ``monitor/checkpoints/_scalar_runs.c`` walks
the pickle once, opcode by opcode as the unpickler would, so it finds the runs exactly where they are; it also
renumbers the memo densely (the C unpickler's memo array is sized by the largest index, ~50 000 for 1000
epochs) and leaves out the tensor records of the weights and optimizer state, which the curves never need
(each becomes None).  ~0.25 ms for
1000 epochs.  Without it, the numpy implementation below finds the same runs by scanning for their opcodes
(~1 ms, which is why it leaves checkpoints under ~400 epochs to ``checkpoint_scalars``).  Both hand the
unpickler the same kind of stream and put the values back with :func:`expand_runs`; the tests run each one
against plain unpickling.  The rest of this docstring describes the numpy implementation; the C source
describes its own.

Why: a 1000-epoch nnU-Net checkpoint logs ~7000 numpy float scalars, each pickled (protocol 2) as 15 opcodes
with two calls, ``scalar(dtype, _codecs.encode('<latin-1 chars>', 'latin1'))``.  Even rewritten to one float
each (``checkpoint_scalars``) they cost the unpickler more than everything else in the file.  But nnU-Net
pickles them back to back, list item after list item, so they form a few long *runs*.  This module

1. finds every scalar whose 54 + payload bytes match the exact opcode template (after the first, every one
   reads ``GET scalar, GET dtype, GET encode, BINUNICODE payload, PUT, GET 'latin1', TUPLE2, PUT, REDUCE, PUT,
   TUPLE2, PUT, REDUCE, PUT`` with long memo indices), decodes all payloads at once, and
2. joins scalars separated by nothing or by one of the fixed list connectors a pickler writes between items
   (``APPENDS MARK`` every 1000 items; ``APPENDS EMPTY_LIST PUT MARK`` or ``APPEND EMPTY_LIST PUT`` between the
   rows of a list of lists) into runs, then
3. does the same for the lists of python floats that follow (learning rates, timestamps: ``BINFLOAT`` items
   9 bytes apart, found by walking the few opcodes between the lists), and
4. copies the pickle without the runs, each one replaced by a 16-byte ``BINBYTES`` (a random tag and its id):
   26 KB instead of 466 KB for 1000 epochs, and the original bytes stay as they were.

The unpickler then reads one small bytes object per run instead of thousands of opcodes, and :func:`expand_runs`
puts the decoded values back where the bytes objects landed (the curves of ``logging`` or ``plot_stuff``)
as float64 arrays, per-class Dice as a matrix.  Everything the unpickler still sees is checked exactly as
before; the hidden bytes are only verified scalars, floats and connectors, so no opcode that could name or
call anything is ever skipped.  And a run's bytes object can only land in a curve if its first byte was read
as an opcode, i.e. if the run started at an opcode boundary of the original pickle: from there its bytes
parse as nothing but the template, so what was hidden is exactly what was decoded.  A run found inside a
string's bytes, say, lands nowhere and makes :func:`expand_runs` decline.

Memo slots.  A run's PUTs are hidden, yet something later may GET one of its scalars (nnU-Net's
``_best_ema`` is an entry of ``ema_fg_dice``; its first EMA is the first mean Dice).  The bytes outside the
runs are scanned for anything that looks like a LONG_BINGET of a slot defined inside a run: a scalar's slot
is handed to the unpickler in advance (its memo), any other hidden slot (a row list, an intermediate tuple)
makes the fast path decline.  False hits in data bytes only add unused memo entries.

Anything that does not fit — short memo indices, a run outside the curves, a curve holding other objects —
makes :func:`collapse_scalar_runs` return None or :func:`expand_runs` return False, and the caller reads the
untouched bytes another way.  This module never unpickles anything.

Cost: about 1 ms for the ~10 000 values of a 1000-epoch checkpoint (one scan for BINUNICODE opcodes, four
gathers, ~100 numpy calls at 1-5 us each); the unpickler then needs ~0.2 ms for everything else (mostly the
tensor records, which the compiled pass leaves out).
Measured with ``bench/bench_checkpoint.py [--numpy]``; see ``monitor.checkpoints.reader``.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.checkpoints.scalars import (
    _ENCODE_GLOBAL,
    _LATIN1,
    _LITTLE,
    _SCALAR_GLOBALS,
    _float_dtype_slots,
    _memo_slot_after,
    _scalar_region_bytes,
)
from monitor.checkpoints.standins import _scalar_to_float

try:
    from monitor.checkpoints import _scalar_runs as _compiled
except ImportError:  # built at install time where a C compiler is found; the numpy path does the same work
    _compiled = None

__all__ = ["ScalarRuns", "collapse_scalar_runs", "expand_runs"]

#: Below this many bytes of numpy scalars (~400 epochs of nnU-Net's logging) the in-place rewrite of
#: ``checkpoint_scalars`` is faster than the numpy implementation, which costs ~0.3 ms more before the first
#: value (measured on a 2-vCPU VM, bench/bench_checkpoint.py; tests set it to 0).  The compiled pass needs no
#: threshold: loading the object takes 0.26 ms with it at 10 epochs, as with plain unpickling, and 0.31 ms at
#: 200 epochs against the rewrite's 0.75.
_MIN_BYTES = 192 * 1024
_GET, _PUT, _BINUNICODE = 0x6A, 0x72, 0x58  # LONG_BINGET, LONG_BINPUT, BINUNICODE
_MARKER = b"B\x10\x00\x00\x00"  # BINBYTES of 16 bytes: a per-read random tag and the run id
_LONG_SLOT = 256  # the pickler writes memo indices below this as one byte; only long ones are handled here

#: The 34 bytes after a scalar's payload: PUT s, GET latin1, TUPLE2, PUT s+1, REDUCE, PUT s+2, TUPLE2, PUT s+3,
#: REDUCE, PUT s+4 (the scalar itself): the offsets of its opcodes (the memo indices are at 1, 12, 18, 24, 30).
_TAIL_OPCODES = {0: _PUT, 5: _GET, 10: 0x86, 11: _PUT, 16: 0x52, 17: _PUT, 22: 0x86, 23: _PUT, 28: 0x52, 29: _PUT}
_TAIL_BYTES = 34
_PREFIX_BYTES = 15  # GET scalar, GET dtype, GET encode, then BINUNICODE at offset 15
_SCALAR_FIXED = _PREFIX_BYTES + 5 + _TAIL_BYTES  # bytes of a scalar besides its payload

#: What a pickler writes between two scalars that are items of the same list (nothing, which ``_join`` tests
#: first, or APPENDS MARK) or of consecutive rows of a list of lists (the row's list is memoised: PUT at the
#: offset given).  bytes -> (offset of a PUT's memo index or -1, whether a new row starts)
_CONNECTORS: dict[bytes, tuple[int, bool]] = {
    b"e(": (-1, False),
    b"e]r\0\0\0\0(": (3, True),  # APPENDS, EMPTY_LIST, PUT, MARK: rows of two or more
    b"a]r\0\0\0\0": (3, True),  # APPEND, EMPTY_LIST, PUT: rows of one
    b"ee(]r\0\0\0\0(": (5, True),  # and the outer list's APPENDS MARK every 1000 rows
    b"ae(]r\0\0\0\0": (5, True),
}


@dataclass(frozen=True)
class ScalarRuns:
    """What :func:`collapse_scalar_runs` hid, and how to put it back.

    ``values`` holds every hidden value in file order; run ``r`` covers ``values[first[r]:stop[r]]``.
    ``stream`` is the pickle with each run replaced by a 16-byte bytes object, ``tag`` + ``r`` (4 bytes,
    little-endian): the tag is random per read, so no bytes object of the file can pass for a run.
    ``row_end[i]`` says that a row of a list of lists ends after scalar ``i`` inside its run.  ``memo`` is
    what the unpickler must know in advance: the scalars that something outside the runs refers to.
    """

    values: np.ndarray
    first: np.ndarray
    stop: np.ndarray
    row_end: np.ndarray
    memo: dict[int, float]
    stream: bytes
    tag: bytes
    renumbered: bool = False


# --------------------------------------------------------------------------------------------------------------
# Finding and hiding the runs
# --------------------------------------------------------------------------------------------------------------


_scratch = threading.local()


def _positions_of(buf: np.ndarray, byte: int) -> np.ndarray:
    """``np.flatnonzero(buf == byte)`` through a per-thread mask that is reused: a fresh half-megabyte
    temporary per read costs more in page faults than the comparison itself."""
    mask = getattr(_scratch, "mask", None)
    if mask is None or len(mask) < len(buf):
        _scratch.mask = mask = np.empty(max(len(buf), 1 << 16), dtype=bool)
    np.equal(buf, byte, out=mask[: len(buf)])
    return np.flatnonzero(mask[: len(buf)])


def _rows(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """``buf[at[i] : at[i] + width]`` for every i, as one (len(at), width) array (one gather, no loop)."""
    windows = np.ndarray((len(buf) - width + 1, width), np.uint8, buf, 0, (1, 1))  # as_strided, minus its overhead
    return windows[at]


def _words(buf: np.ndarray, at: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` little-endian 8-byte words at ``at``, ``at + 8``... as one contiguous column each.

    Column by column, because numpy compares and masks a column ~5x faster than it reduces the rows of a
    boolean matrix.
    """
    words = _rows(buf, at, 8 * count).view("<u8")
    return [np.ascontiguousarray(words[:, k]) for k in range(count)]


def _tail_matches(words: list[np.ndarray], latin_slot: int) -> tuple[np.ndarray, np.ndarray]:
    """Which 40-byte windows (five word columns) start with a scalar's 34-byte tail; and each one's first
    memo index.  The opcodes and the 'latin1' GET are fixed; the five PUTs must take consecutive indices."""
    fixed = bytearray(40)
    for offset, byte in _TAIL_OPCODES.items():
        fixed[offset] = byte
    fixed[6:10] = latin_slot.to_bytes(4, "little")
    f0, f1, f2, f3 = (np.uint64(int.from_bytes(fixed[k : k + 8], "little")) for k in (0, 8, 16, 24))
    w0, w1, w2, w3, w4 = words
    u32 = np.uint64(0xFFFFFFFF)
    slot = (w0 >> np.uint64(8)) & u32  # bytes 1-4
    ok = (w0 & ~(u32 << np.uint64(8))) == f0
    ok &= slot < np.uint64(0xFFFFFFFC)  # s + 4 must be a 4-byte index too
    ok &= w1 == f1 | ((slot + np.uint64(1)) << np.uint64(32))  # bytes 12-15
    ok &= w2 == f2 | ((slot + np.uint64(2)) << np.uint64(16))  # bytes 18-21
    last = slot + np.uint64(4)  # bytes 30-33, across two words
    ok &= w3 == f3 | (slot + np.uint64(3)) | ((last & np.uint64(0xFFFF)) << np.uint64(48))
    ok &= (w4 & np.uint64(0xFFFF)) == last >> np.uint64(16)
    return ok, slot.astype(np.int64)


def _prefix_words(fn_slot: int, dtype_slot: int, enc_slot: int) -> tuple[int, int]:
    prefix = b"".join(b"j" + s.to_bytes(4, "little") for s in (fn_slot, dtype_slot, enc_slot)) + b"X"
    return int.from_bytes(prefix[:8], "little"), int.from_bytes(prefix[8:], "little")


def _named_slots(data: bytearray) -> tuple[int, int, int, int] | None:
    """Memo slots of numpy's scalar() and _codecs.encode, of the string 'latin1', and the offset after the
    scalar() global (no scalar can start before it); None unless all are long memo indices."""
    fn_slot, fn_end = _memo_slot_after(data, _SCALAR_GLOBALS[0])
    if fn_slot < 0:
        fn_slot, fn_end = _memo_slot_after(data, _SCALAR_GLOBALS[1])
    enc_slot = _memo_slot_after(data, _ENCODE_GLOBAL)[0]
    latin_slot = _memo_slot_after(data, _LATIN1)[0]
    if min(fn_slot, enc_slot, latin_slot) < _LONG_SLOT:
        return None
    return fn_slot, enc_slot, latin_slot, fn_end


def _float_dtypes(data: bytearray, xs: np.ndarray, length: np.ndarray, first_char: np.ndarray) -> dict[int, int]:
    """Memo slot -> itemsize of the little-endian float dtypes, from the BINUNICODE candidates ``xs``
    (their lengths and first characters): the dtype code strings ('f4') and the byte order string '<'."""
    return _verified_float_dtypes(data, xs[(length == 1) & (first_char == ord("<"))].tolist(),
                                  xs[(length == 2) & (first_char == ord("f"))].tolist())


def _verified_float_dtypes(data: bytearray, littles: list[int], codes: list[int]) -> dict[int, int]:
    """Memo slot -> itemsize of the little-endian float dtypes, from the offsets of the BINUNICODE candidates
    for the byte order string '<' (``littles``) and for the dtype codes ('f4', ``codes``)."""
    little = _memo_slot_after(data, _LITTLE, littles)[0]
    return {slot: size for slot, size in _float_dtype_slots(data, codes, little).items() if slot >= _LONG_SLOT}


def _decode_payloads(buf: np.ndarray, at: np.ndarray, length: np.ndarray, itemsize: np.ndarray) -> np.ndarray | None:
    """The float values of scalar payloads (latin-1 text stored as UTF-8), or None if one is not exactly
    ``itemsize`` characters.  All payloads are gathered and decoded in one go."""
    offsets = np.cumsum(length) - length
    total = int(offsets[-1] + length[-1])
    payloads = buf[np.repeat(at - offsets, length) + np.arange(total)]
    # each non-ASCII character is a lead byte and one continuation byte: count the leads of each payload
    leads = np.concatenate(([0], np.cumsum(payloads >= 0xC0, dtype=np.int32)))
    if np.any(length - (leads[offsets + length] - leads[offsets]) != itemsize):
        return None
    if np.any(payloads[offsets + length - 1] >= 0xC0):  # a character cut in two, completed by the next payload
        return None
    try:
        raw = np.frombuffer(payloads.tobytes().decode("utf-8").encode("latin-1"), dtype=np.uint8)
    except UnicodeError:
        return None
    if int(itemsize.min()) == int(itemsize.max()):
        return raw.view(f"<f{int(itemsize[0])}").astype(np.float64)
    values = np.empty(len(at))
    starts = np.cumsum(itemsize) - itemsize
    for size in (2, 4, 8):
        sel = itemsize == size
        if sel.any():
            values[sel] = np.ndarray((len(raw) - size + 1,), f"<f{size}", raw, strides=(1,))[starts[sel]]
    return values


def collapse_scalar_runs(data: bytearray) -> ScalarRuns | None:
    """Find, decode and cut out the runs of float scalars and floats in ``data`` (a ``data.pkl``); see the
    module docstring.  ``data`` is never written.  None when there is nothing to do or anything does not fit.
    """
    if _compiled is not None:
        return _collapse_compiled(data)
    n = len(data)
    if _scalar_region_bytes(data) < _MIN_BYTES:
        return None
    named = _named_slots(data)
    if named is None:
        return None
    fn_slot, enc_slot, latin_slot, lo = named
    buf = np.frombuffer(data, dtype=np.uint8)

    # 1. candidates: a BINUNICODE opcode after the three GETs of some float dtype, then the tail template
    lo = max(lo, _PREFIX_BYTES)
    xs = _positions_of(buf[lo : n - 64], _BINUNICODE) + lo
    if not len(xs):
        return None
    word0, word1, word2 = _words(buf, xs - _PREFIX_BYTES, 3)  # the three GETs + BINUNICODE, length, payload
    length = (word2 & np.uint64(0xFFFFFFFF)).astype(np.int64)
    dtypes = _float_dtypes(data, xs, length, (word2 >> np.uint64(32)) & np.uint64(0xFF))
    itemsize = np.zeros(len(xs), dtype=np.int64)
    for dtype_slot, size in dtypes.items():
        prefix0, prefix1 = _prefix_words(fn_slot, dtype_slot, enc_slot)
        itemsize[(word0 == np.uint64(prefix0)) & (word1 == np.uint64(prefix1))] = size
    ok = (itemsize > 0) & (length >= itemsize) & (length <= 2 * itemsize)
    xs, length, itemsize = xs[ok], length[ok], itemsize[ok]
    if not len(xs):
        return None
    ok, first_slot = _tail_matches(_words(buf, xs + 5 + length, 5), latin_slot)
    xs, length, itemsize, first_slot = xs[ok], length[ok], itemsize[ok], first_slot[ok]
    last_slot = first_slot + 4
    if not len(xs):
        return None
    values = _decode_payloads(buf, xs + 5, length, itemsize)
    if values is None:
        return None
    starts = xs - _PREFIX_BYTES
    ends = starts + _SCALAR_FIXED + length
    if np.any(starts[1:] < ends[:-1]):  # overlapping matches: not a pickle a pickler wrote
        return None

    # 2. runs: neighbours joined by a connector, with consecutive memo indices (nothing else hides in between)
    first, stop, row_end = _join(buf, starts, ends, first_slot, last_slot)
    run_start, run_end = starts[first], ends[stop - 1]

    # 3. lists of python floats after the scalar runs (nnU-Net's learning rates and timestamps)
    slot_lo, slot_hi = first_slot[first], last_slot[stop - 1]
    floats = _float_runs(data, buf, run_end.tolist(), [*run_start[1:].tolist(), n - 1])
    if floats:
        float_start, float_end, float_values = zip(*floats)
        sizes = np.array([len(v) for v in float_values])
        first = np.concatenate((first, len(values) + np.cumsum(sizes) - sizes))
        stop = np.concatenate((stop, len(values) + np.cumsum(sizes)))
        values = np.concatenate((values, *float_values))
        row_end = np.concatenate((row_end, np.zeros(len(values) - len(row_end), dtype=bool)))
        run_start = np.concatenate((run_start, float_start))
        run_end = np.concatenate((run_end, float_end))

    # 4. memo indices defined inside a scalar run that the rest of the file refers to
    order = np.argsort(run_start)
    memo = _referenced_scalars(buf, run_start[order], run_end[order], slot_lo, slot_hi, last_slot,
                               values[: len(last_slot)])
    if memo is None:
        return None

    # 5. the pickle without the runs: each one becomes BINBYTES <tag, run id>
    tag = secrets.token_bytes(12)
    view = memoryview(data)
    parts: list[Any] = []
    at = 0
    for run in order.tolist():
        begin, end = int(run_start[run]), int(run_end[run])
        parts += [view[at:begin], _MARKER + tag + run.to_bytes(4, "little")]
        at = end
    parts.append(view[at:])
    stream = b"".join(parts)
    view.release()
    return ScalarRuns(values=values, first=first, stop=stop, row_end=row_end, memo=memo, stream=stream, tag=tag)


def _collapse_compiled(data: bytearray) -> ScalarRuns | None:
    """What :func:`collapse_scalar_runs` does, in one exact pass over the pickle (``_scalar_runs.c``),
    which also renumbers the memo densely and leaves out the tensor records.  The pass reports which dtype
    memo slots its scalars used; they are verified here, by the same code as for the numpy implementation,
    to be little-endian float dtypes of the size each payload had."""
    assert _compiled is not None
    tag = secrets.token_bytes(12)
    found = _compiled.collapse(data, tag)
    if found is None:
        return None
    stream, values, bounds, row_end, memo, dtypes, codes, littles = found
    floats = _verified_float_dtypes(data, littles, codes)
    if any(floats.get(slot) != size for slot, size in dtypes.items()):
        return None  # a scalar of another dtype (an integer, say): left to the other paths
    first, stop = np.frombuffer(bounds, dtype=np.int64).reshape(-1, 2).T
    return ScalarRuns(values=np.frombuffer(values, dtype=np.float64), first=first, stop=stop,
                      row_end=np.frombuffer(row_end, dtype=bool), memo=memo, stream=stream, tag=tag,
                      renumbered=True)


def _join(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, first_slot: np.ndarray, last_slot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group the scalars into runs: (first, stop) scalar index of each run, and where rows end inside one."""
    gap = starts[1:] - ends[:-1]
    joined = (gap == 0) & (first_slot[1:] == last_slot[:-1] + 1)
    row_end = np.zeros(len(starts), dtype=bool)
    linked = np.flatnonzero((gap > 0) & (gap <= 10))
    if len(linked):
        gaps = gap[linked]
        low, high = _words(buf, ends[linked], 2)  # the connector's bytes, whatever its length
        before, after = last_slot[linked], first_slot[linked + 1]
        for connector, (slot_at, new_row) in _CONNECTORS.items():
            sel = gaps == len(connector)
            if not sel.any():
                continue
            fixed = bytearray(connector.ljust(16, b"\0"))
            mask = bytearray(b"\xff" * len(connector) + b"\0" * (16 - len(connector)))
            if slot_at >= 0:
                mask[slot_at : slot_at + 4] = b"\0\0\0\0"
            hit = sel & _masked_equal(low, fixed[:8], mask[:8]) & _masked_equal(high, fixed[8:], mask[8:])
            if slot_at >= 0:  # the row list's PUT takes the index between the two scalars'
                word = (low >> np.uint64(8 * slot_at)) | (high << np.uint64(64 - 8 * slot_at))
                hit &= ((word & np.uint64(0xFFFFFFFF)).astype(np.int64) == before + 1) & (after == before + 2)
            else:
                hit &= after == before + 1
            joined[linked[hit]] = True
            row_end[linked[hit]] = new_row
    breaks = np.flatnonzero(~joined) + 1
    return np.concatenate(([0], breaks)), np.concatenate((breaks, [len(starts)])), row_end


def _masked_equal(word: np.ndarray, fixed: bytes | bytearray, mask: bytes | bytearray) -> np.ndarray:
    return (word & np.uint64(int.from_bytes(mask, "little"))) == np.uint64(int.from_bytes(fixed, "little"))


#: Opcodes the float-list walker steps over, with their length (BINUNICODE adds its string).
_STEPS = {ord(op): size for op, size in (("e", 1), ("(", 1), ("]", 1), ("}", 1), ("a", 1), ("N", 1), ("r", 5),
                                         ("q", 2), ("j", 5), ("h", 2), ("K", 2), ("M", 3), ("J", 5), ("X", 5),
                                         ("G", 9))}
_BINFLOAT = 0x47


def _float_runs(
    data: bytearray, buf: np.ndarray, froms: list[int], limits: list[int]
) -> list[tuple[int, int, np.ndarray]]:
    """(start, end, values) of the runs of BINFLOAT list items that follow each scalar run.

    From the end of each scalar run (an opcode boundary) the opcodes are walked one by one up to the next
    run — a handful per list: APPENDS, the key, PUT, EMPTY_LIST, PUT, MARK — and each list batch of floats
    (``G`` + 8 bytes, items 9 bytes apart, ``APPENDS MARK`` every 1000) is taken in one numpy step.  The
    walk stops at the end of the dict (SETITEMS) or at any opcode it does not know.
    """
    runs: list[tuple[int, int, np.ndarray]] = []
    for pos, limit in zip(froms, limits):
        after_mark = False
        while pos < limit:
            op = data[pos]
            if op == _BINFLOAT and after_mark:
                begin, parts = pos, []
                while True:
                    items = buf[pos : limit - 8 : 9] == _BINFLOAT
                    other = np.flatnonzero(~items)
                    count = int(other[0]) if len(other) else len(items)
                    parts.append(np.ndarray((count,), ">f8", buf, pos + 1, (9,)).astype(np.float64))
                    pos += 9 * count
                    if pos + 3 <= limit and data[pos : pos + 3] == b"e(G":
                        pos += 2  # APPENDS MARK: the next batch of the same list
                        continue
                    break
                if pos == begin:  # no whole item before the limit: not a list of floats
                    break
                runs.append((begin, pos, np.concatenate(parts)))
                after_mark = False
                continue
            step = _STEPS.get(op)
            if step is None:
                break
            if op == _BINUNICODE:
                step += int.from_bytes(data[pos + 1 : pos + 5], "little")
            after_mark = op == ord("(")
            pos += step
    return runs


def _referenced_scalars(
    buf: np.ndarray,
    blob_start: np.ndarray,
    blob_end: np.ndarray,
    slot_lo: np.ndarray,
    slot_hi: np.ndarray,
    scalar_slot: np.ndarray,
    scalar_values: np.ndarray,
) -> dict[int, float] | None:
    """Memo entries (as floats) for every hidden scalar that a LONG_BINGET outside the hidden bytes may fetch.

    ``blob_start``/``blob_end``: every hidden stretch, in file order; ``slot_lo``/``slot_hi``: the memo
    indices each scalar run defines; ``scalar_slot``: each scalar's own index.  Every 0x6A byte after the
    first hidden stretch and outside all of them is taken for a GET (false hits only add unused entries).
    None if one refers to a hidden index that is not a scalar (a row list: the fast path declines).
    """
    n = len(buf)
    gets: list[np.ndarray] = []
    for begin, end in zip(blob_end.tolist(), [*blob_start[1:].tolist(), n - 4]):
        at = np.flatnonzero(buf[begin:end] == _GET) + begin + 1
        if len(at):
            gets.append(at)
    if not gets:
        return {}
    at = np.concatenate(gets)
    slot = (buf[at].astype(np.int64) | buf[at + 1].astype(np.int64) << 8 | buf[at + 2].astype(np.int64) << 16
            | buf[at + 3].astype(np.int64) << 24)
    run = np.searchsorted(slot_lo, slot, side="right") - 1
    hidden = (run >= 0) & (slot <= slot_hi[np.maximum(run, 0)])
    if not hidden.any():
        return {}
    slot = np.unique(slot[hidden])
    index = np.minimum(np.searchsorted(scalar_slot, slot), len(scalar_slot) - 1)
    if np.any(scalar_slot[index] != slot):
        return None
    return dict(zip(slot.tolist(), scalar_values[index].tolist()))


# --------------------------------------------------------------------------------------------------------------
# Putting the values back
# --------------------------------------------------------------------------------------------------------------


class _Expander:
    """Replaces the tagged bytes objects inside curve lists by the runs' decoded values; counts each run once."""

    def __init__(self, runs: ScalarRuns) -> None:
        self.runs = runs
        self.first: list[int] = runs.first.tolist()
        self.stop: list[int] = runs.stop.tolist()
        self.tag = runs.tag
        self.used = [False] * len(self.first)

    def run_of(self, item: Any) -> int:
        """The run id a bytes object stands for, or -1."""
        if type(item) is not bytes or len(item) != 16 or not item.startswith(self.tag):
            return -1
        run = int.from_bytes(item[12:], "little")
        if run >= len(self.used) or self.used[run]:
            return -1
        self.used[run] = True
        return run

    def flat(self, items: list[Any]) -> np.ndarray | None:
        """A list of numbers and runs as float64; None if a run holds rows or an item is not a number."""
        parts: list[np.ndarray] = []
        loose: list[float] = []
        for item in items:
            run = self.run_of(item)
            if run >= 0:
                first, stop = self.first[run], self.stop[run]
                if self.runs.row_end[first : stop - 1].any():
                    return None
                if loose:
                    parts.append(np.array(loose))
                    loose = []
                parts.append(self.runs.values[first:stop])
                continue
            number = _scalar_to_float(item)
            if number is None:
                return None
            loose.append(number)
        if loose:
            parts.append(np.array(loose))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0)

    def nested(self, rows: list[Any]) -> np.ndarray | list[np.ndarray] | None:
        """A list of rows (lists of numbers and runs whose hidden rows continue the list) as a matrix."""
        parts: list[np.ndarray] = []
        lengths: list[Any] = []  # ints and arrays of row lengths, in order
        current = 0
        for row in rows:
            if isinstance(row, np.ndarray) and row.dtype.kind in "fiub":
                parts.append(row.reshape(-1).astype(np.float64))
                lengths.append(row.size)
                continue
            if type(row) is not list:
                return None
            for item in row:
                run = self.run_of(item)
                if run < 0:
                    number = _scalar_to_float(item)
                    if number is None:
                        return None
                    parts.append(np.array([number]))
                    current += 1
                    continue
                first, stop = self.first[run], self.stop[run]
                parts.append(self.runs.values[first:stop])
                ends = np.flatnonzero(self.runs.row_end[first : stop - 1]) + 1
                if len(ends):
                    lengths += [current + int(ends[0]), np.diff(ends)]
                    current = stop - first - int(ends[-1])
                else:
                    current += stop - first
            lengths.append(current)
            current = 0
        flat = np.concatenate(parts) if parts else np.zeros(0)
        sizes = np.concatenate([np.atleast_1d(n) for n in lengths]) if lengths else np.zeros(0, dtype=np.int64)
        if not len(sizes) or (sizes == sizes[0]).all():
            return flat.reshape(len(sizes), int(sizes[0]) if len(sizes) else 0)
        return np.split(flat, np.cumsum(sizes)[:-1])


def _holds_run(items: list[Any]) -> bool:
    types = set(map(type, items))
    return bytes in types or (list in types and any(bytes in map(type, row) for row in items if type(row) is list))


def expand_runs(obj: Any, runs: ScalarRuns) -> bool:
    """Put the hidden values back into the unpickled checkpoint ``obj`` (in place).

    The curves of ``obj['logging']`` (nnU-Net v2) that held runs become float64 arrays, per-class Dice a
    matrix (a list of rows if their lengths differ); ``obj['plot_stuff']`` (v1) becomes a tuple of arrays.
    A run may hide whole rows (the pickler writes consecutive lists of a list or tuple back to back), which
    is why a list of rows, and v1's tuple of curves, are expanded as one.  False if a run is anywhere else,
    or a curve holding one does not have the shape of a curve: the caller then reads the untouched pickle
    another way.
    """
    if not isinstance(obj, dict):
        return False
    expander = _Expander(runs)
    logging = obj.get("logging")
    if isinstance(logging, dict):
        for key, items in logging.items():
            if type(items) is not list or not _holds_run(items):
                continue
            nested = list in map(type, items)
            expanded = expander.nested(items) if nested else expander.flat(items)
            if expanded is None:
                return False
            logging[key] = expanded
    elif isinstance(obj.get("plot_stuff"), (list, tuple)) and _holds_run(list(obj["plot_stuff"])):
        rows = expander.nested(list(obj["plot_stuff"]))
        if rows is None:
            return False
        obj["plot_stuff"] = tuple(rows)
    return all(expander.used)
