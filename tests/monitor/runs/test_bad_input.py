"""Messy trees: every kind of bad input gives a problem string, and the rest of the tree keeps working."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
from logwriters import v2_log, v2_run, write

from monitor import discover_runs, load_run, scan


def good_run(root: Path, fold: str = "0") -> Path:
    run = v2_run(root, fold=fold)
    write(run / "training_log_2024_1_1_00_00_00.txt", v2_log(range(20), done=True))
    return run


def tree_fingerprint(root: Path) -> dict[str, tuple[str, float]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime)
    return out


def test_truncated_last_line_and_non_utf8_bytes(tmp_path: Path) -> None:
    run = v2_run(tmp_path)
    text = v2_log(range(5)).encode() + "2024-05-01 12:00:00.1: caf\xe9 ".encode("latin-1") + b"\xff\xfe\n"
    write(run / "training_log_2024_1_1_00_00_00.txt", text + b"2024-05-01 12:00:01.000000: Epoch 5 \n2024-05-01 12:0")
    frame = load_run(run).frame()
    assert frame["epoch"].tolist() == list(range(5))


def test_binary_garbage_and_a_50_mb_line(tmp_path: Path) -> None:
    run = v2_run(tmp_path)
    garbage = os.urandom(200_000)
    long_line = b"2024-05-01 12:00:00.000000: " + b"x" * (50 * 1024 * 1024) + b"\n"
    write(run / "training_log_2024_1_1_00_00_00.txt",
          v2_log(range(3)).encode() + garbage + b"\n" + long_line + v2_log(range(3, 6)).encode())
    reader = load_run(run)
    assert reader.frame()["epoch"].tolist() == list(range(6))
    assert any("NUL" in p for p in reader.problems()) or b"\0" not in garbage


def test_half_written_zero_byte_and_random_checkpoints_are_problems_not_crashes(tmp_path: Path) -> None:
    run = good_run(tmp_path)
    (run / "checkpoint_final.pth").write_bytes(b"")
    (run / "checkpoint_latest.pth").write_bytes(b"PK\x03\x04" + os.urandom(5000))
    (run / "checkpoint_best.pth").write_bytes(os.urandom(3000))
    reader = load_run(run)
    assert reader.frame()["epoch"].tolist() == list(range(20))
    problems = " | ".join(reader.problems())
    for name in ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth"):
        assert name in problems


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_in_a_tree_runs_nothing(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    root = tmp_path / "results"
    run = good_run(root)
    marker = tmp_path / "pwned"
    torch.save({"logging": {}, "evil": _RunsACommand(marker)}, run / "checkpoint_final.pth")
    table = scan(root)
    reader = load_run(run)
    assert not marker.exists()
    assert any("os.system" in p for p in reader.problems())
    assert table["epochs_completed"].tolist() == [20]


def test_raw_pickle_renamed_as_checkpoint_is_refused(tmp_path: Path) -> None:
    run = good_run(tmp_path)
    marker = tmp_path / "pwned2"
    (run / "checkpoint_best.pth").write_bytes(pickle.dumps(_RunsACommand(marker)))
    reader = load_run(run)
    assert not marker.exists()
    assert any("checkpoint_best.pth" in p for p in reader.problems())


def test_symlink_loops_stray_files_and_deleted_folders(tmp_path: Path) -> None:
    root = tmp_path / "results"
    good_run(root, "0")
    good_run(root, "1")
    (root / "loop").mkdir()
    (root / "loop" / "back").symlink_to(root, target_is_directory=True)
    (root / "notes.txt").write_text("stray")
    (root / "Dataset001_Test" / "stray.bin").write_bytes(os.urandom(100))
    empty_fold = root / "Dataset001_Test" / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_4"
    empty_fold.mkdir()
    table = scan(root)
    assert sorted(table["run_id"]) == [
        f"Dataset001_Test/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_{f}" for f in (0, 1, 4)]
    empty = table.set_index("run_id").loc[empty_fold.relative_to(root).as_posix()]
    assert empty["epochs_completed"] == 0 and "no training log" in " ".join(empty["problems"])


def test_unreadable_folder_is_reported_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "results"
    good_run(root, "0")
    blocked = good_run(root, "1").parent.parent.parent / "Dataset002_Blocked"
    blocked.mkdir()
    real_scandir = os.scandir

    def scandir(path):  # root ignores permission bits, so refuse the way a stale NFS handle would
        if Path(path) == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    problems: list[str] = []
    runs = discover_runs(root, problems)
    assert [r.fold for r in runs] == ["0", "1"]
    assert any("Dataset002_Blocked" in p and "cannot read" in p for p in problems)


def test_scanning_never_writes_into_the_results_tree(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    root = tmp_path / "results"
    run = good_run(root)
    torch.save({"logging": {"mean_fg_dice": [0.5]}, "current_epoch": 1}, run / "checkpoint_final.pth")
    before = tree_fingerprint(root)
    entries_before = sorted(p.name for p in root.rglob("*"))
    scan(root)
    load_run(run).frame()
    assert tree_fingerprint(root) == before
    assert sorted(p.name for p in root.rglob("*")) == entries_before
