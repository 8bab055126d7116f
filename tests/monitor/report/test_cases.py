"""The compare report's case-by-case footer lines."""

from __future__ import annotations

from pathlib import Path

from monitor.report.cases import case_by_case_lines
from monitor.synth import CurveSpec, RunSpec, write_run


def test_lines_for_a_validated_pair_and_for_a_running_extension(tmp_path: Path) -> None:
    parent = write_run(tmp_path, RunSpec("Dataset004_Hippo", "nnUNetTrainer", "2d", 0, 60, CurveSpec(seed=1)),
                       labels=("anterior", "posterior")).folder
    child = write_run(tmp_path, RunSpec("Dataset004_Hippo", "nnUNetTrainer_120epochs", "2d", 0, 120,
                                        CurveSpec(seed=2)), labels=("anterior", "posterior")).folder
    head, classes = case_by_case_lines(parent, child)
    assert head.startswith("Case by case (real validation, paired bootstrap): 120 epochs: ")
    assert "over 8 cases in 1 fold" in head
    assert classes.startswith("Per class: anterior ") and " · posterior " in classes
    running = write_run(tmp_path, RunSpec("Dataset004_Hippo", "nnUNetTrainerDA5", "2d", 0, 60, CurveSpec(seed=3),
                                          state="running", epochs_done=30)).folder
    (line,) = case_by_case_lines(parent, running)
    assert line.startswith("Case by case: Only pseudo Dice to compare")
