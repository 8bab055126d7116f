"""A run's index row in well-kept formats: the summary and the reader's scalar state as JSON, its arrays
(every log's parsed rows, every checkpoint's curves) as one Arrow IPC stream, LZ4-compressed.

The summary is written field by field from :class:`monitor.runs.RunSummary`'s dataclass fields and read back by
their type hints, so a new summary field needs no schema change (the version stamp names the fields, so an
older index is rebuilt rather than misread).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from monitor.logs import EpochRows
from monitor.runs import CheckpointState, Curves, ReaderState, RunSummary
from monitor.runs.cursor import CursorState
from monitor.runs.metadata import RunMetadata
from monitor.runs.status import StatusInputs

__all__ = ["CodecError", "decode_inputs", "decode_state", "decode_summary", "encode_inputs", "encode_state",
           "encode_summary"]

_NAT = np.iinfo(np.int64).min
_COLUMNS = ("epoch", "session", "lr", "train_loss", "val_loss", "mean_fg_dice", "epoch_time_s", "epoch_end")
# One run's rows are small: Arrow's thread pool costs more than it saves (and queues behind a busy machine).
_WRITE_OPTIONS = ipc.IpcWriteOptions(compression="lz4", use_threads=False)
_READ_OPTIONS = ipc.IpcReadOptions(use_threads=False)


class CodecError(ValueError):
    """A stored row cannot be read back (damaged, or written by other rules): the run is read from its files."""


# -- plain values by type hint ---------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _identity(value: Any) -> Any:
    return value


@cache
def _converter(hint: Any) -> Callable[[Any], Any]:
    """A function that turns JSON's form of a ``hint`` value back into it: enums, dataclasses, tuples and lists
    rebuilt, optionals honoured; built once per type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _converter(options[0]) if len(options) == 1 else _identity
        return lambda value: None if value is None else inner(value)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis] or [Any]
        if len(args) == 1:
            item = _converter(args[0])
            if item is _identity:
                return tuple if origin is tuple else list
            return lambda value: (tuple if origin is tuple else list)(item(v) for v in value)
        items = [_converter(a) for a in args]
        return lambda value: tuple(f(v) for f, v in zip(items, value))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda value: _build(hint, value)
    if hint is float:
        return lambda value: float(value) if isinstance(value, int) else value
    return _identity


@cache
def _fields(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def _build(cls: type, data: dict[str, Any]) -> Any:
    try:
        return cls(**{name: convert(data[name]) for name, convert in _fields(cls)})
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"stored {cls.__name__} does not match: {exc}") from exc


def encode_summary(summary: RunSummary) -> str:
    return json.dumps(_plain(summary))


def decode_summary(text: str) -> RunSummary:
    return typing.cast(RunSummary, _build(RunSummary, json.loads(text)))


def encode_inputs(inputs: StatusInputs) -> str:
    return json.dumps(_plain(inputs))


def decode_inputs(text: str) -> StatusInputs:
    return typing.cast(StatusInputs, _build(StatusInputs, json.loads(text)))


# -- reader state --------------------------------------------------------------------------------------
def _part_columns(rows: EpochRows | Curves) -> dict[str, np.ndarray]:
    n = len(rows)
    columns: dict[str, np.ndarray] = {}
    for name in _COLUMNS:
        array = getattr(rows, name, None)
        if array is None:
            array = np.zeros(n, np.int64) if name == "session" else np.full(n, np.nan)
        if name == "epoch_end":
            array = np.asarray(array, "datetime64[us]").view(np.int64)
        columns[name] = np.asarray(array)
    dice = np.asarray(rows.dice, np.float64)
    columns["dice"] = dice.reshape(n, -1) if n else dice.reshape(0, dice.shape[1] if dice.ndim == 2 else 0)
    return columns


def encode_state(state: ReaderState) -> tuple[str, bytes]:
    """(JSON of everything scalar, Arrow IPC of every row array); parts are logs first, then checkpoints."""
    parts = [cursor.rows for cursor in state.logs] + [c.curves for c in state.checkpoints if c.curves is not None]
    columns = [_part_columns(part) for part in parts]
    width = max((c["dice"].shape[1] for c in columns), default=0)
    table: dict[str, Any] = {name: np.concatenate([c[name] for c in columns]) if columns else np.empty(0)
                             for name in _COLUMNS}
    dice = np.vstack([np.hstack([c["dice"], np.full((len(c["epoch"]), width - c["dice"].shape[1]), np.nan)])
                      for c in columns]) if columns else np.empty((0, 0))
    for k in range(width):
        table[f"dice_{k + 1}"] = dice[:, k]
    batch = pa.table(table)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, batch.schema, options=_WRITE_OPTIONS) as writer:
        writer.write_table(batch)
    meta = {
        "files": list(state.files),
        "logs": [{f.name: _plain(getattr(c, f.name)) for f in dataclasses.fields(c) if f.name != "rows"}
                 | {"rows": len(c.rows), "width": int(c.rows.dice.shape[1])} for c in state.logs],
        "checkpoints": [{"name": c.name, "size": c.size, "mtime": c.mtime, "problem": c.problem,
                         "rows": None if c.curves is None else len(c.curves),
                         "width": 0 if c.curves is None else int(c.curves.dice.shape[1])} for c in state.checkpoints],
        "metadata": None if state.metadata is None else _plain(state.metadata),
        "metadata_signature": [None if s is None else list(s) for s in state.metadata_signature],
    }
    return json.dumps(meta), sink.getvalue().to_pybytes()


def decode_state(text: str, blob: bytes) -> ReaderState:
    """The :class:`ReaderState` :func:`encode_state` wrote; :class:`CodecError` when it cannot be read."""
    try:
        meta = json.loads(text)
        table = ipc.open_stream(pa.py_buffer(blob), options=_READ_OPTIONS).read_all()
        arrays = {name: table.column(name).to_numpy() for name in table.column_names}
        width = sum(1 for name in table.column_names if name.startswith("dice_"))
        dice = np.column_stack([arrays[f"dice_{k + 1}"] for k in range(width)]) if width else \
            np.empty((table.num_rows, 0))
        start = 0

        def take(n: int, k: int) -> dict[str, np.ndarray]:
            nonlocal start
            part = {name: arrays[name][start:start + n].copy() for name in _COLUMNS}
            part["epoch_end"] = part["epoch_end"].astype(np.int64).view("datetime64[us]")
            part["dice"] = dice[start:start + n, :k].copy()
            start += n
            return part

        logs = []
        for item in meta["logs"]:
            part = take(item["rows"], item["width"])
            rows = EpochRows(epoch=part["epoch"].astype(np.int64), session=part["session"].astype(np.int64),
                             lr=part["lr"], train_loss=part["train_loss"], val_loss=part["val_loss"],
                             dice=part["dice"], epoch_time_s=part["epoch_time_s"], epoch_end=part["epoch_end"])
            fields = {k: v for k, v in item.items() if k not in ("rows", "width")}
            fields["problems"] = tuple(fields["problems"])
            logs.append(CursorState(rows=rows, **fields))
        checkpoints = []
        for item in meta["checkpoints"]:
            curves = None
            if item["rows"] is not None:
                part = take(item["rows"], item["width"])
                curves = Curves(epoch=part["epoch"].astype(np.int64), lr=part["lr"], train_loss=part["train_loss"],
                                val_loss=part["val_loss"], dice=part["dice"], mean_fg_dice=part["mean_fg_dice"],
                                epoch_time_s=part["epoch_time_s"], epoch_end=part["epoch_end"],
                                source=np.full(item["rows"], item["name"], dtype=object))
            checkpoints.append(CheckpointState(item["name"], item["size"], item["mtime"], curves, item["problem"]))
        metadata = None if meta["metadata"] is None else _build(RunMetadata, meta["metadata"])
        signature = tuple(None if s is None else (int(s[0]), float(s[1])) for s in meta["metadata_signature"])
        return ReaderState(tuple(meta["files"]), tuple(logs), tuple(checkpoints), metadata, signature)
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, pa.ArrowException) as exc:
        raise CodecError(f"stored reader state cannot be read: {exc}") from exc
