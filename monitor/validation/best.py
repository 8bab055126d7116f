"""The result of ``nnUNetv2_find_best_configuration``, read from the files nnU-Net writes.

nnU-Net writes two files into ``<nnUNet_results>/<Dataset>/``: ``inference_information.json`` (the folds,
the models considered, the cross-validation Dice of every model and ensemble, the chosen one with its
Dice before and after postprocessing, and the postprocessing file) and ``inference_instructions.txt``
(the ``nnUNetv2_predict``, ``nnUNetv2_ensemble`` and ``nnUNetv2_apply_postprocessing`` commands). Nothing
here is recomputed: what is shown is what nnU-Net decided. The JSON is parsed as data only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["INFORMATION_FILE", "INSTRUCTIONS_FILE", "BestConfiguration", "BestConfigurationError",
           "SelectedModel", "read_best_configuration"]

INFORMATION_FILE = "inference_information.json"
INSTRUCTIONS_FILE = "inference_instructions.txt"


class BestConfigurationError(ValueError):
    """``inference_information.json`` exists but cannot be read as nnU-Net writes it."""


@dataclass(frozen=True)
class SelectedModel:
    """One member of the chosen model or ensemble."""

    trainer: str
    plans: str
    configuration: str

    @property
    def identifier(self) -> str:
        """nnU-Net's folder name for it: ``<Trainer>__<Plans>__<configuration>``."""
        return f"{self.trainer}__{self.plans}__{self.configuration}"


@dataclass(frozen=True)
class BestConfiguration:
    """What find_best_configuration chose, and the cross-validation Dice it chose from."""

    dataset_dir: Path
    folds: tuple[str, ...]
    selected: tuple[SelectedModel, ...]
    all_results: dict[str, float]
    dice_before_postprocessing: float
    dice_after_postprocessing: float | None
    postprocessing_file: str
    plans_file: str
    ensembling_allowed: bool
    instructions: str | None
    written_at: str

    @property
    def is_ensemble(self) -> bool:
        return len(self.selected) > 1

    @property
    def best_identifier(self) -> str:
        """The winning entry of ``all_results`` (an ``ensemble___...`` name for an ensemble)."""
        matches = [name for name, dice in self.all_results.items() if dice == self.dice_before_postprocessing]
        wanted = [name for name in matches if name.startswith("ensemble___") == self.is_ensemble]
        return (wanted or matches or [" + ".join(m.identifier for m in self.selected)])[0]

    @property
    def commands(self) -> list[str]:
        """The commands of ``inference_instructions.txt``, in order (predict, ensemble, postprocess)."""
        if not self.instructions:
            return []
        return [line.strip() for line in self.instructions.splitlines() if line.strip().startswith("nnUNetv2_")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``nnwatch find-best --show --json``."""
        return {
            "dataset_dir": str(self.dataset_dir), "folds": list(self.folds), "is_ensemble": self.is_ensemble,
            "best": self.best_identifier,
            "selected": [{"trainer": m.trainer, "plans": m.plans, "configuration": m.configuration}
                         for m in self.selected],
            "all_results": dict(self.all_results),
            "dice_before_postprocessing": self.dice_before_postprocessing,
            "dice_after_postprocessing": self.dice_after_postprocessing,
            "postprocessing_file": self.postprocessing_file, "plans_file": self.plans_file,
            "ensembling_allowed": self.ensembling_allowed, "commands": self.commands,
            "written_at": self.written_at,
        }


def _dice(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise BestConfigurationError(f"{what} is {value!r}, not a finite Dice")
    return float(value)


def read_best_configuration(dataset_dir: str | Path) -> BestConfiguration | None:
    """The find_best_configuration result in ``dataset_dir``; ``None`` when it has not been run there.

    Raises :class:`BestConfigurationError` naming what is wrong when the file is truncated or not
    shaped as nnU-Net writes it.
    """
    folder = Path(dataset_dir)
    path = folder / INFORMATION_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BestConfigurationError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
        best = data["best_model_or_ensemble"]
        selected = tuple(SelectedModel(str(m["trainer"]), str(m["plans_identifier"]), str(m["configuration"]))
                         for m in best["selected_model_or_models"])
        results = {str(name): _dice(value, f"the Dice of {name}") for name, value in data["all_results"].items()}
        before = _dice(best["result_on_crossval_pre_pp"], "the chosen model's Dice")
        after_raw = best.get("result_on_crossval_post_pp")
        after = None if after_raw is None else _dice(after_raw, "the Dice after postprocessing")
        folds = tuple(str(fold) for fold in data["folds"])
        postprocessing, plans = str(best["postprocessing_file"]), str(best["some_plans_file"])
    except BestConfigurationError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise BestConfigurationError(f"{path} is not a complete find_best_configuration result "
                                     f"({type(exc).__name__}: {exc})") from exc
    if not selected:
        raise BestConfigurationError(f"{path} names no selected model")
    try:
        instructions: str | None = (folder / INSTRUCTIONS_FILE).read_text()
    except OSError:
        instructions = None
    written = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return BestConfiguration(dataset_dir=folder, folds=folds, selected=selected, all_results=results,
                             dice_before_postprocessing=before, dice_after_postprocessing=after,
                             postprocessing_file=postprocessing, plans_file=plans,
                             ensembling_allowed=bool(data.get("ensembling_allowed", True)),
                             instructions=instructions, written_at=written)
