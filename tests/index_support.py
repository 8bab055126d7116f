"""Helpers for the index tests: synthetic runs, the three ways a log changes, and fresh reads to compare with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from monitor.run_table import scan_rows
from monitor.synth import CurveSpec, FakeRun, RunSpec, make_run_dir, write_run


def new_run(root: Path, n: int, epochs: int, *, seed: int = 0) -> FakeRun:
    """Fold ``n`` of a synthetic model folder with ``epochs`` completed epochs (its log claims a past date)."""
    folder = make_run_dir(root, f"Dataset{100 + n % 3:03d}_Prop", "nnUNetTrainer", "nnUNetPlans", "2d", n,
                          labels=("a", "b"))
    run = FakeRun(folder, planned_epochs=200, spec=CurveSpec((0.9, 0.8), timescale=0.1, seed=seed + n))
    run.start_session()
    run.history(epochs)
    return run


def mixed_tree(root: Path, n_runs: int) -> dict[str, str]:
    """``n_runs`` runs, finished, running and crashed in turn, every fifth one over-fitting (Dice declining);
    returns each run id's intended state."""
    states = ("finished", "running", "crashed")
    intended = {}
    for n in range(n_runs):
        state = states[n % len(states)]
        curve = CurveSpec((0.85, 0.7), timescale=0.6 if n % 4 == 1 else 0.05, decline_per_100=0.3 * (n % 5 == 0),
                          seed=n)
        spec = RunSpec(f"Dataset{100 + n % 4:03d}_Mix", "nnUNetTrainer", ("2d", "3d_fullres")[n // 4 % 2], n // 8,
                       planned_epochs=150, curve=curve, epochs_done=None if state == "finished" else 90 + n % 50,
                       state=state)
        intended[write_run(root, spec).folder.relative_to(root).as_posix()] = state
    return intended


def replace_log(run: FakeRun, keep_epochs: int) -> None:
    """The log rewritten by another file (a new inode) holding its first ``keep_epochs`` epochs only."""
    assert run.log_path is not None
    text = run.log_path.read_text()
    marker = f": Epoch {keep_epochs}\n"
    cut = text.find(marker)
    cut = text.rfind("\n", 0, cut) + 1 if cut >= 0 else len(text)
    tmp = run.log_path.with_suffix(".tmp")
    tmp.write_text(text[:cut])
    os.replace(tmp, run.log_path)
    run.next_epoch = min(run.next_epoch, keep_epochs)


def truncate_log(run: FakeRun, fraction: float) -> None:
    """The same file cut short in place (possibly mid-line)."""
    assert run.log_path is not None
    size = run.log_path.stat().st_size
    os.truncate(run.log_path, int(size * fraction))


def plain(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, sort_keys=True, default=str)


def fresh_rows(root: Path, *, verdicts: bool = True) -> list[dict[str, Any]]:
    settle(root)
    rows, _ = scan_rows(root, workers=1, verdicts=verdicts)
    return rows


def settle(root: Path, when: float = 1.7e9) -> None:
    """Every file's mtime set to ``when`` (long ago): the runs' status no longer moves with the clock, so two
    reads seconds apart give the same rows."""
    for path in root.rglob("*"):
        os.utime(path, (when, when))
