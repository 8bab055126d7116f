"""Helpers of the validation tests: nnU-Net summary.json content with chosen per-case Dice."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def v2_summary(cases: Mapping[str, Sequence[float]], keys: Sequence[str] = ("1", "2")) -> dict[str, Any]:
    """What nnU-Net v2's ``compute_metrics_on_folder`` writes for these per-case Dice (IoU derived)."""
    per_case = []
    for name, dice in cases.items():
        metrics = {key: {"Dice": d, "IoU": d / (2 - d) if math.isfinite(d) else math.nan, "TP": 1, "FP": 0,
                         "FN": 0, "TN": 5, "n_pred": 1, "n_ref": 1} for key, d in zip(keys, dice)}
        per_case.append({"metrics": metrics, "prediction_file": f"/results/validation/{name}.nii.gz",
                         "reference_file": f"/preprocessed/gt_segmentations/{name}.nii.gz"})
    means = {}
    for k, key in enumerate(keys):
        values = np.array([dice[k] for dice in cases.values()], dtype=float)
        ious = values / (2 - values)
        means[key] = {"Dice": float(np.nanmean(values)) if np.isfinite(values).any() else math.nan,
                      "IoU": float(np.nanmean(ious)) if np.isfinite(ious).any() else math.nan}
    foreground = {m: float(np.mean([means[key][m] for key in keys])) for m in ("Dice", "IoU")}
    return {"foreground_mean": foreground, "mean": means, "metric_per_case": per_case}


def write_summary(run_dir: Path, content: dict[str, Any] | str, folder: str = "validation") -> Path:
    target = run_dir / folder
    target.mkdir(parents=True, exist_ok=True)
    path = target / "summary.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=4, sort_keys=True))
    return path
