"""nnU-Net's ``summary.json`` read in full: the foreground mean, every class's mean and every case's metrics.

Two formats exist. v2 (``nnunetv2.evaluation.evaluate_predictions.compute_metrics_on_folder``) writes
``foreground_mean`` (the plain mean over foreground labels or regions of the per-class means), ``mean`` (per label
or region, the NaN-ignoring mean over cases) and ``metric_per_case`` (``reference_file``, ``prediction_file`` and
``metrics`` per label with ``Dice``, ``IoU``, ``TP``, ``FP``, ``FN``, ``TN``, ``n_pred``, ``n_ref``); labels are
written as ``"1"``, regions as ``"(1, 2)"``. v1 (``nnunet.evaluation.evaluator.aggregate_scores``) writes
``results.all`` (per case: one entry per label, background ``"0"`` included, with ``Dice``, ``Jaccard`` …, plus
``test`` and ``reference`` paths) and ``results.mean``.

A class absent from both reference and prediction of a case gets a NaN Dice there; nnU-Net leaves such cases out
of that class's mean. A file that is not JSON (cut off while being written) or follows neither layout raises
:class:`SummaryError`; NaN where a number is expected is not an error but a flag on the summary.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CaseMetrics", "ClassMetrics", "SummaryError", "ValidationSummary", "case_name", "parse_summary",
           "read_summary"]

_MULTI_SUFFIXES = (".nii.gz", ".seg.nrrd")


class SummaryError(ValueError):
    """A ``summary.json`` that cannot be read: cut off, not JSON, or neither nnU-Net's v2 nor v1 layout."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{Path(path).name}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class ClassMetrics:
    """One label's (or region's) metrics: ``key`` as nnU-Net wrote it (``"1"``, ``"(1, 2)"``); IoU where written."""

    key: str
    dice: float
    iou: float | None = None


@dataclass(frozen=True)
class CaseMetrics:
    """One validation case: its file name (the case's identity across runs) and its foreground classes."""

    case: str  # the reference file's name, e.g. ``case_007.nii.gz``
    classes: tuple[ClassMetrics, ...]

    @property
    def name(self) -> str:
        """The case identifier without its file ending."""
        return case_name(self.case)

    def dice(self, key: str) -> float:
        """This case's Dice of class ``key`` (NaN when absent from both reference and prediction, or unknown)."""
        for metrics in self.classes:
            if metrics.key == key:
                return metrics.dice
        return math.nan

    @property
    def foreground_dice(self) -> float:
        """The mean Dice over the foreground classes with a value for this case (NaN when none has one)."""
        values = [m.dice for m in self.classes if math.isfinite(m.dice)]
        return float(np.mean(values)) if values else math.nan


@dataclass(frozen=True)
class ValidationSummary:
    """One ``summary.json``: the means as nnU-Net wrote them, every case, and flags for NaN or inconsistent values."""

    path: Path
    version: str  # "v2" or "v1"
    foreground_dice: float
    foreground_iou: float | None
    classes: tuple[ClassMetrics, ...]  # foreground classes, in nnU-Net's label order
    cases: tuple[CaseMetrics, ...]
    mtime: float | None = None
    flags: tuple[str, ...] = field(default=())

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.classes)

    @property
    def usable(self) -> bool:
        """True when the foreground mean Dice is a number (it is NaN when a class is absent from every case)."""
        return math.isfinite(self.foreground_dice)

    def class_dice(self, key: str) -> float:
        for metrics in self.classes:
            if metrics.key == key:
                return metrics.dice
        return math.nan

    def case_table(self) -> tuple[list[str], np.ndarray]:
        """Case file names and a (cases × classes) array of Dice, classes in :attr:`keys` order."""
        keys = self.keys
        values = np.array([[case.dice(key) for key in keys] for case in self.cases], dtype=float)
        return [case.case for case in self.cases], values.reshape(len(self.cases), len(keys))


def case_name(file_name: str) -> str:
    """``case_007.nii.gz`` → ``case_007``: the identifier nnU-Net derives from a file name."""
    for suffix in _MULTI_SUFFIXES:
        if file_name.endswith(suffix):
            return file_name[: -len(suffix)]
    return os.path.splitext(file_name)[0]


def _number(value: Any) -> float:
    """A metric value as a float; NaN for NaN, null or anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _optional(value: Any) -> float | None:
    return None if value is None else _number(value)


def _label_sort_key(key: str) -> tuple[int, tuple[int, ...], str]:
    """Labels by value, regions by their first member: nnU-Net's order, not the JSON's sorted string order."""
    text = key.strip()
    try:
        return (0, (int(text),), text)
    except ValueError:
        pass
    parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
    try:
        return (1, tuple(int(p) for p in parts), text)
    except ValueError:
        return (2, (), text)


def _is_background(key: str) -> bool:
    return key.strip() in ("0", "background")


def _metrics(entry: Any, iou_name: str) -> tuple[float, float | None]:
    if not isinstance(entry, Mapping):
        return math.nan, None
    return _number(entry.get("Dice")), _optional(entry.get(iou_name)) if iou_name in entry else None


def _file_name(value: Any, fallback: str) -> str:
    return Path(str(value)).name if isinstance(value, str) and value else fallback


def _parse_v2(data: Mapping[str, Any], path: Path) -> tuple[float, float | None, list[ClassMetrics], list[CaseMetrics]]:
    mean = data.get("mean")
    foreground = data.get("foreground_mean")
    per_case = data.get("metric_per_case")
    if not isinstance(mean, Mapping) or not isinstance(foreground, Mapping) or not isinstance(per_case, list):
        raise SummaryError(path, "nnU-Net v2 layout expected (foreground_mean, mean, metric_per_case) but a part "
                                 "is missing or of the wrong type")
    keys = sorted((str(k) for k in mean if not _is_background(str(k))), key=_label_sort_key)
    classes = [ClassMetrics(key, *_metrics(mean[key], "IoU")) for key in keys]
    cases = []
    for index, entry in enumerate(per_case):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("metrics"), Mapping):
            raise SummaryError(path, f"metric_per_case[{index}] has no metrics")
        metrics = {str(k): v for k, v in entry["metrics"].items()}
        name = _file_name(entry.get("reference_file"), _file_name(entry.get("prediction_file"), f"case {index}"))
        cases.append(CaseMetrics(name, tuple(ClassMetrics(key, *_metrics(metrics.get(key), "IoU")) for key in keys)))
    iou = foreground.get("IoU")
    return _number(foreground.get("Dice")), None if iou is None else _number(iou), classes, cases


def _parse_v1(results: Mapping[str, Any], path: Path) -> tuple[float, float | None, list[ClassMetrics],
                                                              list[CaseMetrics]]:
    mean, per_case = results.get("mean"), results.get("all")
    if not isinstance(mean, Mapping) or not isinstance(per_case, list):
        raise SummaryError(path, "nnU-Net v1 layout expected (results.mean, results.all) but a part is missing")
    keys = sorted((str(k) for k in mean if not _is_background(str(k))), key=_label_sort_key)
    classes = [ClassMetrics(key, *_metrics(mean[key], "Jaccard")) for key in keys]
    cases = []
    for index, entry in enumerate(per_case):
        if not isinstance(entry, Mapping):
            raise SummaryError(path, f"results.all[{index}] is not an object")
        name = _file_name(entry.get("reference"), _file_name(entry.get("test"), f"case {index}"))
        cases.append(CaseMetrics(name, tuple(ClassMetrics(key, *_metrics(entry.get(key), "Jaccard")) for key in keys)))
    # v1 writes no foreground mean; nnU-Net v1 reports the plain mean of the foreground class means.
    dice = [c.dice for c in classes]
    ious = [c.iou for c in classes]
    fg_iou = float(np.mean([i for i in ious if i is not None])) if ious and all(i is not None for i in ious) else None
    return (float(np.mean(dice)) if dice else math.nan), fg_iou, classes, cases


def _flags(foreground: float, classes: Sequence[ClassMetrics], cases: Sequence[CaseMetrics]) -> list[str]:
    flags = []
    if not math.isfinite(foreground):
        flags.append("the foreground mean Dice is NaN: at least one class has no Dice in any case")
    for position, metrics in enumerate(classes):
        values = np.array([case.classes[position].dice for case in cases], dtype=float)
        missing = int(np.isnan(values).sum())
        if not math.isfinite(metrics.dice):
            flags.append(f"class {metrics.key}: the mean Dice is NaN")
        elif missing:
            flags.append(f"class {metrics.key}: Dice is NaN in {missing} of {len(cases)} cases (absent from "
                         "reference and prediction there; nnU-Net leaves those cases out of the class mean)")
        if len(values) and np.isfinite(values).any() and math.isfinite(metrics.dice):
            recomputed = float(np.nanmean(values))
            if abs(recomputed - metrics.dice) > 1e-6:
                flags.append(f"class {metrics.key}: the mean Dice {metrics.dice:.4f} does not match the mean of "
                             f"its cases {recomputed:.4f} (edited, or written by another tool?)")
    return flags


def parse_summary(data: Any, path: Path | str = "summary.json", mtime: float | None = None) -> ValidationSummary:
    """Interpret already-loaded ``summary.json`` content (v2 or v1); :class:`SummaryError` when it is neither."""
    path = Path(path)
    if not isinstance(data, Mapping):
        raise SummaryError(path, f"a JSON object expected, found {type(data).__name__}")
    if "foreground_mean" in data or "metric_per_case" in data:
        version = "v2"
        foreground, fg_iou, classes, cases = _parse_v2(data, path)
    elif isinstance(data.get("results"), Mapping):
        version = "v1"
        foreground, fg_iou, classes, cases = _parse_v1(data["results"], path)
    else:
        raise SummaryError(path, "neither nnU-Net v2's layout (foreground_mean, mean, metric_per_case) nor v1's "
                                 "(results.all, results.mean)")
    if not classes:
        raise SummaryError(path, "no foreground class in the summary's means")
    return ValidationSummary(path=path, version=version, foreground_dice=foreground, foreground_iou=fg_iou,
                             classes=tuple(classes), cases=tuple(cases), mtime=mtime,
                             flags=tuple(_flags(foreground, classes, cases)))


def read_summary(path: str | os.PathLike[str]) -> ValidationSummary:
    """Read one ``summary.json``. Raises :class:`FileNotFoundError` when absent and :class:`SummaryError` when it
    is cut off, not JSON or of an unknown layout."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read()
            mtime = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SummaryError(path, f"unreadable ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise SummaryError(path, "empty file (validation still being written, or it was interrupted)")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SummaryError(path, f"not valid JSON, probably cut off while being written ({str(exc)[:80]})") from exc
    return parse_summary(data, path, mtime)
