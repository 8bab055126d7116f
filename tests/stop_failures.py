"""Real training failures for the stop-cause tests: a trainer variant whose loss goes NaN, private copies of the
tiny nnU-Net tree (so corrupting preprocessed data touches no other test), and nnwatch jobs that run real
``nnUNetv2_train`` processes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from pathlib import Path

from nnunet_tiny import DATASET_NAME, TINY_TRAINER, TinyNnunet, install_test_trainer, train_command

from monitor.runs import parse_run_path
from trainer import ExtendPlan, Job, JobRegistry, submit

NAN_TRAINER = "nnUNetTrainer_nnwatchNaN"

# Installed next to the tiny trainer (nnU-Net finds trainers by class name in its own package).
_NAN_SOURCE = '''"""Test trainer written by nnwatch's test suite: from its second epoch on every loss is multiplied by
NaN, so the weights become NaN as in a real blow-up."""
import torch

from nnunetv2.training.nnUNetTrainer.variants.nnwatch_tests.nnUNetTrainer_nnwatchTiny import nnUNetTrainer_nnwatchTiny


class _NanFromSecondEpoch(torch.nn.Module):
    def __init__(self, loss, trainer):
        super().__init__()
        self.inner = loss
        self.trainer = trainer

    def forward(self, *args, **kwargs):
        value = self.inner(*args, **kwargs)
        return value * float("nan") if self.trainer.current_epoch >= 1 else value


class nnUNetTrainer_nnwatchNaN(nnUNetTrainer_nnwatchTiny):
    def initialize(self):
        super().initialize()
        self.loss = _NanFromSecondEpoch(self.loss, self)
'''


def install_nan_trainer() -> Path:
    """Write the NaN trainer beside the tiny one (idempotent)."""
    tiny_trainer = install_test_trainer()
    target = tiny_trainer.parent / f"{NAN_TRAINER}.py"
    if not target.exists() or target.read_text() != _NAN_SOURCE:
        target.write_text(_NAN_SOURCE)
    return target


def private_preprocessed(tiny: TinyNnunet, folder: Path) -> Path:
    """A copy of the tiny dataset's preprocessed folder that a test may damage."""
    shutil.copytree(tiny.preprocessed / DATASET_NAME, folder / DATASET_NAME)
    return folder


def job_env(tiny: TinyNnunet, preprocessed: Path, results: Path, epochs: int) -> dict[str, str]:
    env = {name: value for name, value in tiny.env.items()
           if name.startswith("nnUNet") or name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(nnUNet_preprocessed=str(preprocessed), nnUNet_results=str(results),
               NNWATCH_TINY_EPOCHS=str(epochs))
    return env


def fold_dir(results: Path, fold: int, trainer: str = TINY_TRAINER) -> Path:
    return results / DATASET_NAME / f"{trainer}__nnUNetPlans__2d" / f"fold_{fold}"


def training_job(registry: JobRegistry, env: dict[str, str], results: Path, fold: int, epochs: int) -> Job:
    """Start a real tiny ``nnUNetv2_train`` as an nnwatch local job (the runner records how it ends)."""
    run_dir = fold_dir(results, fold)
    location = parse_run_path(run_dir, run_dir.relative_to(results).as_posix())
    assert location is not None
    plan = ExtendPlan(parent=location, parent_epochs=None, epochs=epochs, backend="local", device="cpu", gpu=None,
                      new_trainer=TINY_TRAINER, new_run_dir=run_dir, new_run_id=location.run_id,
                      argv=tuple(train_command(fold)), env=env, checks=())
    return submit(plan, registry=registry, requested_by="tests")


def logged_epochs(run_dir: Path) -> str:
    """All training-log text of a run so far ('' before the first log)."""
    return "".join(path.read_text() for path in sorted(run_dir.glob("training_log_*.txt")))


def started_epoch(run_dir: Path, epoch: int) -> bool:
    """Has the run logged the start of ``epoch`` (nnU-Net writes ``Epoch N`` with a trailing space)?"""
    return re.search(rf": Epoch {epoch}\s*$", logged_epochs(run_dir), re.M) is not None


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                text = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of a process group (data-augmentation workers of a killed training)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
