"""The labels of a ``dataset.json``, read once for the run's class names (chart legends, reports) and for the
class keys of nnU-Net's validation ``summary.json``, so a class has one name everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DatasetLabel", "dataset_labels"]


@dataclass(frozen=True)
class DatasetLabel:
    """One foreground label (or region) of a ``dataset.json``: its name, and the keys under which nnU-Net's
    ``summary.json`` reports its class (``"1"``; a region ``"(1, 2)"``; a one-label region both ``"1"`` and
    ``"(1,)"``); none for a value nnU-Net cannot have written."""

    name: str
    keys: tuple[str, ...]


def dataset_labels(dataset_json: Any) -> list[DatasetLabel]:
    """The foreground labels (or regions) of a parsed ``dataset.json``, in nnU-Net's order: v2 maps name → value
    (labels in value order, regions in listed order), v1 value → name."""
    if not isinstance(dataset_json, dict):
        return []
    labels = dataset_json.get("labels")
    if not isinstance(labels, dict):
        return []
    if all(isinstance(key, str) and key.isdigit() for key in labels):  # v1 style {"0": "background"}
        ordered = sorted(((int(key), key, str(name)) for key, name in labels.items()), key=lambda item: item[0])
        return [DatasetLabel(name, (key,)) for value, key, name in ordered if value != 0]
    named = [(str(name), value) for name, value in labels.items() if name != "background" and value != 0]
    if not any(isinstance(value, list) for _, value in named):
        named.sort(key=lambda item: item[1] if isinstance(item[1], int) else 0)
    return [DatasetLabel(name, _summary_keys(value)) for name, value in named]


def _summary_keys(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ()
    if isinstance(value, int):
        return (str(value),)
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return (str(value[0]), str((value[0],))) if len(value) == 1 else (str(tuple(value)),)
    return ()
