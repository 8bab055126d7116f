"""The Python side of the compiled pass over ``data.pkl`` (``_scalar_runs.c``).

nnU-Net logs its curves as thousands of numpy float scalars (a dozen opcodes and two calls each) next to
tensor records the curves never need.  The pass rewrites the pickle so that each run of floats becomes one
tagged bytes object (values decoded into one array) and tensor records become None; every global still
reaches the restricted unpickler.  This module verifies what the pass cannot (the dtypes its scalars used),
unpickles the result and puts the values back.  Whenever anything does not fit, or the compiled module was
not built, the untouched ``data.pkl`` is unpickled instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.checkpoints.errors import CheckpointError
from monitor.checkpoints.standins import _scalar_to_float
from monitor.checkpoints.unpickler import _unpickle_buffer

_collapse: Callable[[bytes | bytearray, bytes], Any] | None
_memo_bound: Callable[[bytes | bytearray], int] | None
try:
    from monitor.checkpoints._scalar_runs import collapse as _collapse
    from monitor.checkpoints._scalar_runs import memo_bound as _memo_bound
except ImportError:  # built where a C compiler is found at install time (see pyproject.toml)
    _collapse = _memo_bound = None

__all__ = ["ScalarRuns", "check_memo_indices", "collapse_scalar_runs", "expand_runs", "load_data_pkl"]


def load_data_pkl(data: bytes | bytearray, path: Path) -> Any:
    """The object tree of a zip's ``data.pkl``: through the compiled pass where it applies, else plainly.
    A refusal is final (every global the short pickle names is one of ``data``'s); other failures fall back."""
    runs = collapse_scalar_runs(data)
    if runs is not None:
        try:
            obj = _unpickle_buffer(runs.stream, path, runs.memo)
        except CheckpointError as exc:
            if str(exc).startswith("refused"):
                raise
        else:
            if expand_runs(obj, runs):
                return obj
    check_memo_indices(data, path)
    return _unpickle_buffer(data, path)


def check_memo_indices(data: bytes | bytearray, path: Path) -> None:
    """Refuse a pickle naming a memo index beyond its own size: CPython's unpickler sizes its memo array by
    the largest index, so one corrupt LONG_BINPUT byte would allocate gigabytes.  Skipped without the C module.
    """
    if _memo_bound is not None and _memo_bound(data) >= len(data):
        raise CheckpointError("corrupt checkpoint data (a memo index larger than the pickle itself)", path)


@dataclass(frozen=True)
class ScalarRuns:
    """What the compiled pass hid, and how to put it back.

    Run ``r`` covers ``values[first[r]:stop[r]]`` and appears in ``stream`` as the bytes ``tag + r`` (4 bytes,
    little-endian); the tag is random per read, so no bytes object of the file can pass for a run.
    ``row_end[i]``: a row of a list of lists ends after value ``i``.  ``memo``: hidden scalars the stream GETs.
    """

    values: np.ndarray
    first: np.ndarray
    stop: np.ndarray
    row_end: np.ndarray
    memo: dict[int, float]
    stream: bytes
    tag: bytes


def collapse_scalar_runs(data: bytes | bytearray) -> ScalarRuns | None:
    """Run the compiled pass over ``data`` (never written); None without the compiled module, when the pass
    declines, or when a scalar it decoded has a dtype that is not a little-endian float of its size."""
    if _collapse is None:
        return None
    tag = secrets.token_bytes(12)
    found = _collapse(data, tag)
    if found is None:
        return None
    stream, values, bounds, row_end, memo, dtypes, codes, littles = found
    floats = _float_dtype_slots(data, codes, _memo_slot_after(data, _LITTLE, littles)[0])
    if any(floats.get(slot) != size for slot, size in dtypes.items()):
        return None  # a scalar of another dtype (an integer, say): read plainly
    first, stop = np.frombuffer(bounds, dtype=np.int64).reshape(-1, 2).T
    return ScalarRuns(values=np.frombuffer(values, dtype=np.float64), first=first, stop=stop,
                      row_end=np.frombuffer(row_end, dtype=bool), memo=memo, stream=stream, tag=tag)


# ---- verifying the dtypes the pass reports -------------------------------------------------------------------

_GET_LONG, _GET_SHORT, _PUT_LONG, _PUT_SHORT, _REDUCE = 0x6A, 0x68, 0x72, 0x71, 0x52
_DTYPE_GLOBAL = b"cnumpy\ndtype\n"
_LITTLE = b"X\x01\x00\x00\x00<"
_DTYPE_STATE_TAIL = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # (3, '<', None, None, None, -1, -1, 0)
_LONG_SLOT = 256  # the pass only hides scalars whose memo indices are written as four bytes


def _skip_put(data: bytes | bytearray, at: int) -> int:
    """Offset after a memo PUT at ``at``, or -1."""
    if 0 <= at < len(data):
        if data[at] == _PUT_LONG:
            return at + 5
        if data[at] == _PUT_SHORT:
            return at + 2
    return -1


def _put_slot(data: bytes | bytearray, at: int) -> int:
    if at >= 0 and at + 5 <= len(data) and data[at] == _PUT_LONG:
        return int.from_bytes(data[at + 1 : at + 5], "little")
    if at >= 0 and at + 2 <= len(data) and data[at] == _PUT_SHORT:
        return data[at + 1]
    return -1


def _memo_slot_after(
    data: bytes | bytearray, needle: bytes, candidates: Sequence[int] | None = None
) -> tuple[int, int]:
    """Memo slot PUT right after the first ``needle`` (at one of ``candidates`` if given) and the offset
    after that PUT; (-1, -1) if absent (a pickler writes each global once, then GETs it)."""
    positions = candidates if candidates is not None else [data.find(needle)]
    for pos in positions:
        if pos >= 0 and data.startswith(needle, pos):
            at = pos + len(needle)
            slot = _put_slot(data, at)
            if slot >= 0:
                return slot, _skip_put(data, at)
    return -1, -1


def _pushes_slot(data: bytes | bytearray, pos: int, slot: int, def_end: int) -> bool:
    """Whether the opcode ending at ``pos`` pushes memo ``slot`` (a GET of it, or its defining op + PUT)."""
    if pos == def_end:
        return True
    if pos >= 5 and data[pos - 5] == _GET_LONG and int.from_bytes(data[pos - 4 : pos], "little") == slot:
        return True
    return pos >= 2 and data[pos - 2] == _GET_SHORT and data[pos - 1] == slot


def _float_dtype_slots(data: bytes | bytearray, candidates: Sequence[int], little: int) -> dict[int, int]:
    """Memo slot -> itemsize of each ``numpy.dtype('f2'|'f4'|'f8', False, True)`` with byte order '<'
    (memo slot ``little``); ``candidates`` are offsets of ``X\\x02\\0\\0\\0f``."""
    cls_slot, cls_end = _memo_slot_after(data, _DTYPE_GLOBAL)
    found: dict[int, int] = {}
    for pos in candidates:
        code = data[pos + 6 : pos + 7]
        at = _skip_put(data, pos + 7)
        if code not in (b"2", b"4", b"8") or at < 0 or not _pushes_slot(data, pos, cls_slot, cls_end):
            continue
        if not data.startswith(b"\x89\x88\x87", at):  # NEWFALSE NEWTRUE TUPLE3: ('f8', False, True)
            continue
        at = _skip_put(data, at + 3)
        if at < 0 or data[at] != _REDUCE:
            continue
        slot = _put_slot(data, at + 1)
        at = _skip_put(data, at + 1)
        if at < 0 or not data.startswith(b"(K\x03", at):
            continue
        at += 3
        if data.startswith(_LITTLE, at):
            at = _skip_put(data, at + len(_LITTLE))
        elif _pushes_slot(data, at + 5, little, -1) and data[at] == _GET_LONG:
            at += 5
        elif _pushes_slot(data, at + 2, little, -1) and data[at] == _GET_SHORT:
            at += 2
        else:
            continue
        if at > 0 and data.startswith(_DTYPE_STATE_TAIL, at):
            at = _skip_put(data, at + len(_DTYPE_STATE_TAIL))
            if at > 0 and data[at : at + 1] == b"b" and slot >= _LONG_SLOT:
                found[slot] = int(code)
    return found


# ---- putting the values back --------------------------------------------------------------------------------


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

    Curves of ``obj['logging']`` (v2) become float64 arrays, per-class Dice a matrix (a list of rows if ragged);
    ``obj['plot_stuff']`` (v1) a tuple of arrays.  A run may span whole rows, so a list of rows is expanded as
    one.  False if a run is anywhere else or a curve is not shaped like one: then the file is read plainly.
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
