"""Merge the epochs of a run's log sessions and checkpoints into one series.

Logs are ordered by the start time in their names; a *session* (a stretch of increasing epochs) replaces all
history from its first epoch on (a resume at 450 replaces 450 onward). Checkpoints add full-precision values,
and epochs a lost log no longer has, up to the first epoch where they disagree with the logs (stale from there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.logs.parser import EpochRows, stack_ragged

__all__ = ["Curves", "ema", "merge_sessions", "overlay_checkpoint", "stale_from", "stale_problem"]

# Logs print losses with 4 decimals; a value that differs by more than this came from another session.
_AGREEMENT_TOLERANCE = 2e-4


@dataclass
class Curves:
    """Merged per-epoch columns of one run, sorted by epoch, one row per completed epoch."""

    epoch: np.ndarray  # int64
    lr: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    dice: np.ndarray  # (n, K) float64; K may be 0 when only a mean is known (v1 checkpoints)
    mean_fg_dice: np.ndarray
    epoch_time_s: np.ndarray
    epoch_end: np.ndarray  # datetime64[us], UTC; NaT where unknown
    source: np.ndarray  # object: "log:<file>" / "<checkpoint file>"

    def __len__(self) -> int:
        return int(self.epoch.shape[0])

    @classmethod
    def empty(cls) -> Curves:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f.copy(), f.copy(), np.empty((0, 0)), f.copy(),
                   f.copy(), np.empty(0, dtype="datetime64[us]"), np.empty(0, dtype=object))

    def take(self, index: np.ndarray) -> Curves:
        return Curves(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    @property
    def ema_fg_dice(self) -> np.ndarray:
        return ema(self.mean_fg_dice)


def ema(values: np.ndarray) -> np.ndarray:
    """nnU-Net's EMA of the mean pseudo Dice: ``ema[e] = 0.9·ema[e−1] + 0.1·mean[e]``, seeded with mean[0].

    Recomputed over the merged series, since replaced epochs leave the logged EMA meaningless. Vectorised in
    blocks of 256: ``ema[k] = 0.9^(k+1)·(carry + 0.1·Σ_{j≤k} 0.9^-(j+1)·x[j])``, weights below 0.9^-256 ≈ 5e11
    so precision holds. A NaN propagates to every later value, as in nnU-Net.
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    if x.size == 0:
        return out
    out[0] = carry = x[0]
    block = 256
    for start in range(1, x.size, block):
        chunk = x[start:start + block]
        powers = _EMA_POWERS[: chunk.size]
        sums = carry + 0.1 * np.cumsum(chunk / powers)
        out[start:start + chunk.size] = powers * sums
        carry = out[start + chunk.size - 1]
    return out


_EMA_POWERS = 0.9 ** np.arange(1, 257, dtype=np.float64)


def _nanmean_rows(dice: np.ndarray) -> np.ndarray:
    if dice.shape[1] == 0:
        return np.full(dice.shape[0], np.nan)
    valid = ~np.isnan(dice)
    counts = valid.sum(axis=1)
    sums = np.where(valid, dice, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _local_to_utc(stamps: np.ndarray) -> np.ndarray:
    """Log timestamps are the training machine's local wall-clock; read them in this machine's zone."""
    valid = ~np.isnat(stamps)
    if not valid.any():
        return stamps
    # One zone offset per run (taken at its last epoch) is exact except across a DST switch.
    import time as _time

    last = int(stamps[valid][-1].astype("datetime64[s]").astype(np.int64))
    offset = _time.localtime(last - _time.timezone).tm_gmtoff
    return stamps - np.timedelta64(int(offset), "s") if offset else stamps


def _rows_to_curves(rows: EpochRows, source: str) -> Curves:
    return Curves(
        epoch=rows.epoch,
        lr=rows.lr,
        train_loss=rows.train_loss,
        val_loss=rows.val_loss,
        dice=rows.dice,
        mean_fg_dice=_nanmean_rows(rows.dice),
        epoch_time_s=rows.epoch_time_s,
        epoch_end=_local_to_utc(rows.epoch_end),
        source=np.full(len(rows), source, dtype=object),
    )


def _concat(parts: list[Curves]) -> Curves:
    return Curves(
        epoch=np.concatenate([p.epoch for p in parts]),
        lr=np.concatenate([p.lr for p in parts]),
        train_loss=np.concatenate([p.train_loss for p in parts]),
        val_loss=np.concatenate([p.val_loss for p in parts]),
        dice=stack_ragged([p.dice for p in parts]),
        mean_fg_dice=np.concatenate([p.mean_fg_dice for p in parts]),
        epoch_time_s=np.concatenate([p.epoch_time_s for p in parts]),
        epoch_end=np.concatenate([p.epoch_end for p in parts]),
        source=np.concatenate([p.source for p in parts]),
    )


def merge_sessions(files: list[tuple[str, EpochRows]]) -> Curves:
    """Apply the session rule to log files given in start-time order; return sorted merged curves."""
    kept: Curves | None = None
    for name, rows in files:
        if not len(rows):
            continue
        curves = _rows_to_curves(rows, f"log:{name}")
        breaks = np.flatnonzero(np.diff(rows.session)) + 1
        for part_index in np.split(np.arange(len(rows)), breaks):
            part = curves.take(part_index) if len(breaks) else curves
            # The session replaces everything from its first epoch on.
            kept = part if kept is None else _concat([kept.take(np.flatnonzero(kept.epoch < part.epoch[0])), part])
    return kept if kept is not None else Curves.empty()


def stale_from(curves: Curves, ckpt: Curves) -> int | None:
    """The first epoch, in the checkpoint's order, whose losses differ from the logged ones (None: they agree):
    a later session replaced the checkpoint's epochs from there on."""
    if len(curves) == 0 or len(ckpt) == 0:
        return None
    at = np.minimum(np.searchsorted(curves.epoch, ckpt.epoch), len(curves) - 1)  # curves.epoch: sorted, unique
    shared = curves.epoch[at] == ckpt.epoch
    differs = np.zeros(len(ckpt), dtype=bool)
    for logged, saved in ((curves.train_loss[at], ckpt.train_loss), (curves.val_loss[at], ckpt.val_loss)):
        with np.errstate(invalid="ignore"):
            differs |= np.isfinite(logged) & np.isfinite(saved) & (np.abs(logged - saved) > _AGREEMENT_TOLERANCE)
    stale = np.flatnonzero(shared & differs)
    return int(ckpt.epoch[stale[0]]) if stale.size else None


def stale_problem(name: str, epoch: int) -> str:
    return f"{name}: epochs from {epoch} on were replaced by a later session; ignored there"


def overlay_checkpoint(curves: Curves, ckpt: Curves, name: str) -> tuple[Curves, str | None]:
    """Let a checkpoint's full-precision values win where it agrees with the logs (and say where it is stale)."""
    if len(ckpt) == 0:
        return curves, None
    stale = stale_from(curves, ckpt)
    usable = ckpt if stale is None else ckpt.take(np.flatnonzero(ckpt.epoch < stale))
    problem = None if stale is None else stale_problem(name, stale)
    if len(usable) == 0:
        return curves, problem
    merged = _concat([curves, usable])
    # Stable sort by epoch with the checkpoint row after the log row, then keep the best of each pair.
    order = np.lexsort((np.r_[np.zeros(len(curves)), np.ones(len(usable))], merged.epoch))
    merged = merged.take(order)
    last_of_epoch = np.r_[merged.epoch[1:] != merged.epoch[:-1], True]
    first_of_epoch = np.r_[True, merged.epoch[1:] != merged.epoch[:-1]]
    result = merged.take(np.flatnonzero(last_of_epoch))
    # Where both had the epoch, fill what the checkpoint lacks (per-class dice in v1, lr) from the log.
    both = np.flatnonzero(last_of_epoch & ~first_of_epoch)
    log_rows = both - 1
    out_index = np.searchsorted(result.epoch, merged.epoch[both])
    for column in ("lr", "train_loss", "val_loss", "epoch_time_s", "mean_fg_dice"):
        target = getattr(result, column)
        source = getattr(merged, column)
        missing = np.isnan(target[out_index])
        target[out_index[missing]] = source[log_rows[missing]]
    if result.dice.shape[1]:
        ck_dice = result.dice[out_index]
        lacking = np.isnan(ck_dice).all(axis=1)
        result.dice[out_index[lacking]] = merged.dice[log_rows[lacking]]
    missing_time = np.isnat(result.epoch_end[out_index])
    result.epoch_end[out_index[missing_time]] = merged.epoch_end[log_rows[missing_time]]
    has_classes = ~np.isnan(result.dice).all(axis=1) if result.dice.shape[1] else np.zeros(len(result), bool)
    result.mean_fg_dice[has_classes] = _nanmean_rows(result.dice[has_classes])
    return result, problem
