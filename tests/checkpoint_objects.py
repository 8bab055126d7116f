"""What the checkpoint tests compare: the curves as a DataFrame, and the unpickled object tree as plain data
(two ways of reading a checkpoint, with the compiled pass and plainly, must agree beyond the curves: memo
references, stand-ins, every kind of value)."""

from __future__ import annotations

import datetime as _dt
import pathlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.checkpoints import CheckpointCurves
from monitor.checkpoints.archive import _load_checkpoint_object
from monitor.checkpoints.standins import _short_repr, _StandIn, _StandInMeta, _StoragePlaceholder

_ATOMIC_TYPES = frozenset({type(None), bool, int, float, str, bytes, complex, _dt.date, _dt.datetime, _dt.time,
                           _dt.timedelta, _dt.timezone})


def curves_frame(curves: CheckpointCurves) -> pd.DataFrame:
    """The curves as a DataFrame: ``dice_1..dice_K`` columns, tz-aware ``epoch_end``."""
    columns = dict(curves.columns)
    dice = columns.pop("dice", np.empty((curves.epochs, 0)))
    data = {name: columns[name] for name in ("epoch", "lr", "train_loss", "val_loss", "mean_fg_dice", "ema_fg_dice")}
    data.update({f"dice_{k + 1}": dice[:, k] for k in range(dice.shape[1])})
    data["epoch_time_s"] = columns["epoch_time_s"]
    data["epoch_end"] = pd.DatetimeIndex(columns["epoch_end"]).tz_localize("UTC")
    return pd.DataFrame(data)


#: The curves (which the reader turns into columns) and the tensors (which the compiled pass leaves out).
_LEFT_OUT = {"logging", "plot_stuff", "network_weights", "optimizer_state", "state_dict", "optimizer_state_dict"}


def checkpoint_objects(path: Path) -> dict[str, Any]:
    """Everything in the checkpoint but its curves and tensors, as plain data."""
    obj = _load_checkpoint_object(path)
    return {key: plain(value) for key, value in obj.items() if key not in _LEFT_OUT}


def plain(obj: Any) -> Any:
    """Containers and numbers kept, numpy unwrapped, stand-ins and storages as their bounded descriptions.

    Cycles become "<recursive reference>", nesting is cut at 64 levels, and a shared container is converted
    once (and stays shared).
    """
    active: set[int] = set()
    done: dict[int, Any] = {}

    def convert(item: Any, depth: int) -> Any:
        kind = type(item)
        if kind is float and item != item:
            return "nan"  # so that trees with NaN compare equal
        if kind in _ATOMIC_TYPES:
            return item
        if isinstance(item, np.generic):
            return convert(item.item(), depth)
        if isinstance(item, (pathlib.PurePath, np.dtype)):
            return str(item)
        if isinstance(item, (_StandIn, _StoragePlaceholder, _StandInMeta)):
            return _short_repr(item, 300)
        if id(item) in active:
            return "<recursive reference>"
        if id(item) in done:
            return done[id(item)]
        if depth >= 64:
            return "<too deeply nested>"
        active.add(id(item))
        try:
            if isinstance(item, (list, tuple)):
                items = [convert(v, depth + 1) for v in item]
                out: Any = items if isinstance(item, list) else tuple(items)
            elif isinstance(item, Mapping):
                out = {convert(k, depth + 1): convert(v, depth + 1) for k, v in item.items()}
            elif isinstance(item, np.ndarray):
                out = [convert(v, depth + 1) for v in item.ravel().tolist()] if item.dtype.hasobject else item.tolist()
            elif isinstance(item, (set, frozenset)):
                out = sorted((convert(v, depth + 1) for v in item), key=repr)
            else:
                out = _short_repr(item)
        finally:
            active.discard(id(item))
        done[id(item)] = out
        return out

    return convert(obj, 0)
