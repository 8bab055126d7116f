"""The labels of a ``dataset.json``: one reading serves the run's class names (chart legends, reports) and the
validation's class keys, so a class is named the same in both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.runs import DatasetLabel, dataset_labels
from monitor.runs.metadata import read_metadata
from monitor.validation import label_names


@pytest.mark.parametrize(("labels", "expected"), [
    ({"background": 0, "tumor": 2, "kidney": 1}, [DatasetLabel("kidney", ("1",)), DatasetLabel("tumor", ("2",))]),
    ({"0": "background", "2": "tumor", "1": "liver"}, [DatasetLabel("liver", ("1",)), DatasetLabel("tumor", ("2",))]),
    ({"background": 0, "whole tumor": [1, 2, 3], "enhancing": [3]},
     [DatasetLabel("whole tumor", ("(1, 2, 3)",)), DatasetLabel("enhancing", ("3", "(3,)"))]),
    ({"background": 0, "odd": "1", "flag": True}, [DatasetLabel("odd", ()), DatasetLabel("flag", ())]),
])
def test_labels_in_nnunet_order_with_their_summary_keys(labels: dict[str, object],
                                                        expected: list[DatasetLabel]) -> None:
    assert dataset_labels({"labels": labels}) == expected


@pytest.mark.parametrize("data", [None, [], {"labels": ["a", "b"]}, {"name": "no labels"}])
def test_no_labels_where_the_file_has_none(data: object) -> None:
    assert dataset_labels(data) == []


def test_run_class_names_and_validation_class_keys_agree(tmp_path: Path) -> None:
    model = tmp_path / "Dataset005_Prostate" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    fold = model / "fold_0"
    fold.mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "TZ": [1, 2], "PZ": [2]}}))
    names = read_metadata(fold, "nnUNetTrainer").class_names
    keys = label_names(model)
    assert names == ["TZ", "PZ"]
    assert keys == {"(1, 2)": "TZ", "2": "PZ", "(2,)": "PZ"}
    assert set(keys.values()) == set(names)
