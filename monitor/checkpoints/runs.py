"""The Python side of the compiled pass over ``data.pkl`` (``_scalar_runs.c``).

nnU-Net logs its curves as thousands of numpy float scalars (a dozen opcodes and two calls each) next to
tensor records the curves never need.  The pass rewrites the pickle so that each run of floats becomes one
tagged bytes object (values decoded into one array) and tensor records become None; every global still
reaches the restricted unpickler.  This module unpickles the result, checks that the dtypes the hidden
scalars named are the little-endian floats the pass decoded them as, and puts the values back.  Whenever
anything does not fit, or the compiled module was not built, the untouched ``data.pkl`` is unpickled instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
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
            obj, dtypes = _unpickle_buffer(runs.stream, path)
        except CheckpointError as exc:
            if str(exc).startswith("refused"):
                raise
        else:
            if _little_endian_floats(dtypes, runs.sizes) and expand_runs(obj, runs):
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
    ``row_end[i]``: a row of a list of lists ends after value ``i``.
    ``sizes``: the itemsize the pass decoded each dtype in the stream's ``(object, dtypes)`` pair as.
    """

    values: np.ndarray
    first: np.ndarray
    stop: np.ndarray
    row_end: np.ndarray
    stream: bytes
    tag: bytes
    sizes: bytes


def collapse_scalar_runs(data: bytes | bytearray) -> ScalarRuns | None:
    """Run the compiled pass over ``data`` (never written); None without the compiled module or when the pass
    declines."""
    if _collapse is None:
        return None
    tag = secrets.token_bytes(12)
    found = _collapse(data, tag)
    if found is None:
        return None
    stream, values, bounds, row_end, sizes = found
    first, stop = np.frombuffer(bounds, dtype=np.int64).reshape(-1, 2).T
    return ScalarRuns(values=np.frombuffer(values, dtype=np.float64), first=first, stop=stop,
                      row_end=np.frombuffer(row_end, dtype=bool), stream=stream, tag=tag, sizes=sizes)


def _little_endian_floats(dtypes: Any, sizes: bytes) -> bool:
    """Whether the hidden scalars' dtypes, as unpickled, are what the pass decoded them as (not an integer)."""
    return isinstance(dtypes, tuple) and len(dtypes) == len(sizes) and all(
        isinstance(dtype, np.dtype) and dtype == np.dtype(f"<f{size}") for dtype, size in zip(dtypes, sizes))


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
