"""Read the training curves out of nnU-Net checkpoints without trusting them and without loading tensors.

``torch.load`` would execute whatever the pickle names (a copied checkpoint is untrusted input), read every
tensor and import torch, all too slow for a dashboard that polls running trainings.  This module is the public
entry point and turns the unpickled object tree into curves; below it are ``archive`` (finds ``data.pkl``),
``runs`` (the optional compiled pass over it), ``unpickler`` (the restricted unpickler), ``standins`` (the inert
objects it builds) and ``errors``.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.checkpoints.archive import _load_checkpoint_object
from monitor.checkpoints.errors import CheckpointError
from monitor.checkpoints.standins import _clip, _scalar_to_float, _StandIn

__all__ = ["CheckpointCurves", "CheckpointError", "read_checkpoint_curves"]

#: One logged curve as unpickled: a list or tuple of items, or an array the compiled pass rebuilt.
_Curve = Sequence[Any] | np.ndarray

#: The per-epoch lists nnU-Net v2's ``LocalLogger`` keeps (``checkpoint['logging']``).
_V2_CURVES = (
    "mean_fg_dice",
    "ema_fg_dice",
    "dice_per_class_or_region",
    "train_losses",
    "val_losses",
    "lrs",
    "epoch_start_timestamps",
    "epoch_end_timestamps",
)


@dataclass(frozen=True, eq=False)  # eq=False: array fields have no usable == / hash
class CheckpointCurves:
    """The per-epoch curves of one checkpoint.

    ``columns``: one array per column, one entry per epoch covered by all curves: ``epoch, lr, train_loss,
    val_loss, mean_fg_dice, ema_fg_dice, epoch_time_s`` (float64), ``dice`` (epochs × classes; not for v1) and
    ``epoch_end`` (``datetime64[ns]`` UTC).  v1 never stored lr, EMA Dice or times: NaN / NaT.  ``problems``
    says what was dropped or unconvertible, so nothing is lost silently.
    """

    path: Path
    kind: str  # "v2" or "v1"
    epochs: int
    current_epoch: int | None
    columns: dict[str, np.ndarray]
    problems: list[str] = field(default_factory=list)


# ---- turning the object tree into curves --------------------------------------------------------------------


def _why_not_number(value: Any) -> str:
    if isinstance(value, _StandIn):
        cls = type(value)
        return "torch tensors (not read)" if cls._sd_name.startswith("_rebuild") else repr(cls)
    if isinstance(value, np.ndarray):
        return f"arrays of shape {value.shape}"
    return type(value).__name__


def _float_curve(values: _Curve, label: str, problems: list[str]) -> np.ndarray:
    """Convert one logged list to float64 exactly (float32/float64 widen losslessly; None becomes NaN)."""
    try:  # one C loop for the usual floats / numpy scalars
        if type(values) is list:
            return np.fromiter(values, np.float64, len(values))
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 1 and arr.shape[0] == len(values):
            return arr
    except (TypeError, ValueError, OverflowError):
        pass
    out = np.full(len(values), np.nan)
    bad: dict[str, int] = {}
    for i, value in enumerate(values):
        number = _scalar_to_float(value)
        if number is None:
            reason = _why_not_number(value)
            bad[reason] = bad.get(reason, 0) + 1
        else:
            out[i] = number
    for reason, count in bad.items():
        problems.append(f"{label}: {count} value(s) are {reason}, shown as NaN")
    return out


def _dice_matrix(entries: _Curve, problems: list[str]) -> np.ndarray:
    """Per-class Dice, one row per epoch, NaN-padded if classes are missing in some epochs."""
    try:  # the usual case, equal-length lists of numbers: one C loop over them all
        if type(entries) is list and entries and set(map(type, entries)) == {list}:
            widths = set(map(len, entries))
            if len(widths) == 1:
                width = widths.pop()
                flat = np.fromiter(itertools.chain.from_iterable(entries), np.float64, len(entries) * width)
                return flat.reshape(len(entries), width)
        matrix = np.asarray(entries, dtype=np.float64)
        if matrix.ndim == 2 and matrix.shape[0] == len(entries):
            return matrix
    except (TypeError, ValueError, OverflowError):
        pass
    rows: list[np.ndarray] = []
    bad = 0
    for entry in entries:
        seq: Sequence[Any]
        if isinstance(entry, np.ndarray):
            seq = list(entry.reshape(-1))
        elif isinstance(entry, (list, tuple)):
            seq = entry
        else:
            seq = [entry]
        row_problems: list[str] = []
        rows.append(_float_curve(seq, "dice_per_class_or_region", row_problems))
        bad += bool(row_problems)
    if bad:
        problems.append(f"dice_per_class_or_region: {bad} epoch(s) contain non-numeric values, shown as NaN")
    width = max((len(r) for r in rows), default=0)
    matrix = np.full((len(rows), width), np.nan)
    ragged = 0
    for i, row in enumerate(rows):
        matrix[i, : len(row)] = row
        ragged += len(row) != width
    if ragged:
        problems.append(
            f"dice_per_class_or_region: {ragged} epoch(s) have fewer than {width} classes (NaN-padded)"
        )
    return matrix


#: Timestamps outside 1970..2200 cannot be nnU-Net's time.time() (and would overflow datetime64[ns]).
_MAX_TIMESTAMP_S = 7.3e9


def _utc_times(seconds: np.ndarray, problems: list[str]) -> np.ndarray:
    """``time.time()`` seconds → ``datetime64[ns]`` UTC, same ns as ``pd.to_datetime(unit="s")``; NaT if invalid."""
    valid = np.isfinite(seconds) & (seconds >= 0) & (seconds <= _MAX_TIMESTAMP_S)
    if int(valid.sum()) != int(np.isfinite(seconds).sum()):
        problems.append("epoch_end_timestamps: values outside 1970..2200 shown as NaT")
    v = np.where(valid, seconds, 0.0)
    whole = np.trunc(v)
    ns = whole.astype(np.int64) * 1_000_000_000 + (np.round(v - whole, 9) * 1e9).astype(np.int64)
    ns[~valid] = np.iinfo(np.int64).min  # NaT
    return ns.view("M8[ns]")


def _as_int(value: Any) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return None


def _truncate(curves: dict[str, _Curve], problems: list[str], what: str) -> int:
    """Length of the shortest curve; says which curves lose values (a checkpoint written mid-epoch)."""
    lengths = {name: len(values) for name, values in curves.items()}
    n = min(lengths.values(), default=0)
    longer = {name: length for name, length in lengths.items() if length > n}
    if longer:
        shortest = ", ".join(sorted(name for name, length in lengths.items() if length == n))
        extra = ", ".join(f"{name} ({length - n} more)" for name, length in sorted(longer.items()))
        problems.append(
            f"{what} have unequal lengths: using the {n} epoch(s) covered by the shortest ({shortest}); "
            f"dropped the last values of {extra}"
        )
    return n


def _build_columns(
    n: int,
    problems: list[str],
    *,
    lr: np.ndarray | None,
    train_loss: np.ndarray | None,
    val_loss: np.ndarray | None,
    mean_fg_dice: np.ndarray | None,
    ema_fg_dice: np.ndarray | None,
    dice: np.ndarray | None,
    start: np.ndarray | None,
    end: np.ndarray | None,
) -> dict[str, np.ndarray]:
    def col(values: np.ndarray | None) -> np.ndarray:
        return np.full(n, np.nan) if values is None else values[:n]

    end_s = col(end)
    columns = {
        "epoch": np.arange(n, dtype=np.int64),
        "lr": col(lr),
        "train_loss": col(train_loss),
        "val_loss": col(val_loss),
        "mean_fg_dice": col(mean_fg_dice),
        "ema_fg_dice": col(ema_fg_dice),
        "epoch_time_s": end_s - col(start),
        "epoch_end": _utc_times(end_s, problems),
    }
    if dice is not None:
        columns["dice"] = dice[:n]
    return columns


def _curves_v2(ckpt: Mapping[str, Any], path: Path) -> CheckpointCurves:
    logging = ckpt.get("logging")
    if not isinstance(logging, Mapping):
        raise CheckpointError("nnU-Net v2 checkpoint without a 'logging' dict (no curves stored)", path)
    problems: list[str] = []
    curves: dict[str, _Curve] = {}
    for name in _V2_CURVES:
        values = logging.get(name)
        if values is None:
            problems.append(f"logging has no '{name}'; its column is NaN")
        elif isinstance(values, (list, tuple)):
            curves[name] = values
        elif isinstance(values, np.ndarray):  # what the compiled pass leaves (or a trainer's own arrays)
            curves[name] = values if values.ndim else values.reshape(1)
        else:
            problems.append(f"logging['{name}'] is {_why_not_number(values)}, not a list; ignored")
    if not curves:
        raise CheckpointError("nnU-Net v2 checkpoint whose 'logging' holds none of nnU-Net's curves", path)
    n = _truncate(curves, problems, "logged curves")

    def floats(name: str) -> np.ndarray | None:
        return _float_curve(curves[name][:n], name, problems) if name in curves else None

    dice = _dice_matrix(curves["dice_per_class_or_region"][:n], problems) \
        if "dice_per_class_or_region" in curves else None
    columns = _build_columns(
        n,
        problems,
        lr=floats("lrs"),
        train_loss=floats("train_losses"),
        val_loss=floats("val_losses"),
        mean_fg_dice=floats("mean_fg_dice"),
        ema_fg_dice=floats("ema_fg_dice"),
        dice=dice,
        start=floats("epoch_start_timestamps"),
        end=floats("epoch_end_timestamps"),
    )
    current_epoch = _as_int(ckpt.get("current_epoch"))
    if current_epoch is not None and current_epoch != n and not problems:
        problems.append(f"current_epoch is {current_epoch} but the curves cover {n} epoch(s)")
    return CheckpointCurves(path=path, kind="v2", epochs=n, current_epoch=current_epoch, columns=columns,
                            problems=problems)


def _curves_v1(ckpt: Mapping[str, Any], path: Path) -> CheckpointCurves:
    plot_stuff = ckpt.get("plot_stuff")
    if not isinstance(plot_stuff, (list, tuple)) or len(plot_stuff) < 2:
        raise CheckpointError("nnU-Net v1 checkpoint without 'plot_stuff' (no curves stored)", path)
    problems: list[str] = []
    parts: list[_Curve] = []
    for i, values in enumerate(plot_stuff[:4]):
        if isinstance(values, np.ndarray):
            values = values.reshape(-1)
        parts.append(values if isinstance(values, (list, tuple, np.ndarray)) else [])
        if not isinstance(values, (list, tuple, np.ndarray)):
            problems.append(f"plot_stuff[{i}] is {_why_not_number(values)}, not a list; ignored")
    tr_losses, val_losses = parts[0], parts[1]
    metrics = parts[3] if len(parts) > 3 else []
    curves: dict[str, _Curve] = {"all_tr_losses": tr_losses, "all_val_losses": val_losses}
    if len(metrics):
        curves["all_val_eval_metrics"] = metrics
    else:
        problems.append("all_val_eval_metrics is empty (trainer logged no Dice estimate); mean_fg_dice is NaN")
    n = _truncate(curves, problems, "plot_stuff curves")
    columns = _build_columns(
        n,
        problems,
        lr=None,
        train_loss=_float_curve(tr_losses[:n], "all_tr_losses", problems),
        val_loss=_float_curve(val_losses[:n], "all_val_losses", problems),
        mean_fg_dice=_float_curve(metrics[:n], "all_val_eval_metrics", problems) if len(metrics) else None,
        ema_fg_dice=None,
        dice=None,
        start=None,
        end=None,
    )
    current_epoch = _as_int(ckpt.get("epoch"))
    # Old v1 final checkpoints store epoch = len(losses) + 1 (nnU-Net v1 documents and corrects this itself).
    if current_epoch is not None and current_epoch not in (n, n + 1) and not problems:
        problems.append(f"epoch is {current_epoch} but the curves cover {n} epoch(s)")
    return CheckpointCurves(path=path, kind="v1", epochs=n, current_epoch=current_epoch, columns=columns,
                            problems=problems)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC for one read: a full collection triggered by the thousands of new containers walks
    the whole heap and costs more than the read; reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_checkpoint_curves(path: str | os.PathLike[str]) -> CheckpointCurves:
    """Read the per-epoch training curves of an nnU-Net v2 or v1 checkpoint, safely (nothing the pickle names is
    executed) and cheaply (tensor data is never read).  :class:`CheckpointError` for any unreadable file."""
    path = Path(path)
    with _gc_paused():
        return _read_curves(path)


def _read_curves(path: Path) -> CheckpointCurves:
    obj = _load_checkpoint_object(path)
    try:
        return _curves_of(obj, path)
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        # a crafted file can put anything anywhere; say so instead of crashing the dashboard
        raise CheckpointError(f"unreadable curves ({_clip(f'{type(exc).__name__}: {exc}', 100)})", path) from None


def _curves_of(obj: Any, path: Path) -> CheckpointCurves:
    if not isinstance(obj, Mapping):
        kind = repr(type(obj)) if isinstance(obj, _StandIn) else type(obj).__name__
        raise CheckpointError(f"not an nnU-Net checkpoint (top-level object is {_clip(kind, 60)})", path)
    if "logging" in obj or "network_weights" in obj:
        return _curves_v2(obj, path)
    if "plot_stuff" in obj or "state_dict" in obj:
        return _curves_v1(obj, path)
    raise CheckpointError("not an nnU-Net checkpoint (no 'logging' or 'plot_stuff' entry)", path)
