"""Pre-flight checks: everything that would make a job fail later, said clearly before it starts.

Each check is a small function returning a :class:`Check`; a blocking check that fails stops ``submit``.
Non-blocking ones are warnings a user should read (a short extension, a results root that differs from
``$nnUNet_results``). They only read files and ask for GPUs, so ``--dry-run`` runs all of them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from monitor.runs import RunStatus, load_run
from monitor.validation import RunValidation, ValidationStatus, read_run_validation
from trainer.gpus import GpuInfo
from trainer.jobs import Job

__all__ = [
    "CHECK_TITLES",
    "NNUNET_ENV_VARS",
    "NPZ_WHY",
    "Check",
    "FoldFiles",
    "TargetCheck",
    "aside_folder",
    "check_disk_space",
    "check_env",
    "check_fold_ready",
    "check_gpu",
    "check_preprocessed",
    "check_target",
    "check_target_free",
    "check_val_best",
    "check_validation_npz",
    "fold_files",
]

NNUNET_ENV_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
_RUN_MARKERS = ("training_log_", "checkpoint_", "debug.json", "progress.png", "validation")
CHECK_TITLES = {
    "nnunet_version": "nnU-Net version of the run",
    "names": "Folder names",
    "nnunet_env": "nnU-Net folders configured",
    "trainer": "Trainer for the longer schedule",
    "target_free": "Folder for the new run",
    "preprocessed": "Preprocessed data and plans",
    "results_root": "Where the new run goes",
    "gpu": "GPU",
    "disk_space": "Free disk space",
    "epochs": "Schedule length",
    "nnunet_train": "nnU-Net installed",
    "prediction_env": "Predicting with the new run later",
    "demo_tree": "Writes into the demo tree only",
}
NPZ_WHY = ("nnUNetv2_find_best_configuration and nnUNetv2_ensemble need the softmax probabilities that "
           "--npz saves for every validation case; without them configurations cannot be ensembled and "
           "find_best_configuration fails")


@dataclass(frozen=True)
class Check:
    """One pre-flight check: its name, whether it passed, and a message that says what to do."""

    name: str
    ok: bool
    message: str
    blocking: bool = True

    @property
    def title(self) -> str:
        """The check's name in words, for people (``target_free`` → "Folder for the new run")."""
        return CHECK_TITLES.get(self.name, self.name.replace("_", " "))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for ``--dry-run --json`` and the dashboard."""
        return {"name": self.name, "title": self.title, "ok": self.ok, "message": self.message,
                "blocking": self.blocking}


def check_env(environ: Mapping[str, str]) -> Check:
    """nnU-Net needs its three folders in the environment of the training process."""
    missing = [name for name in NNUNET_ENV_VARS if not environ.get(name)]
    if missing:
        return Check("nnunet_env", False, f"set {', '.join(missing)} (nnU-Net's folders) before extending; "
                     "see nnU-Net's documentation/setting_up_paths.md")
    return Check("nnunet_env", True, "nnUNet_raw, nnUNet_preprocessed and nnUNet_results are set")


def check_preprocessed(preprocessed: Path, dataset: str, plans: str, configuration: str) -> Check:
    """The plans file knows the configuration and its preprocessed data folder is not empty."""
    folder = preprocessed / dataset
    plans_file = folder / f"{plans}.json"
    if not plans_file.is_file():
        return Check("preprocessed", False, f"no plans file {plans_file}: run nnUNetv2_plan_and_preprocess for "
                     f"{dataset} (with -pl/-overwrite_plans_name for {plans}) on this machine first")
    if not (folder / "dataset.json").is_file():
        return Check("preprocessed", False, f"{folder / 'dataset.json'} is missing: preprocessing is incomplete")
    try:
        configurations = json.loads(plans_file.read_text()).get("configurations", {})
    except (OSError, ValueError) as exc:
        return Check("preprocessed", False, f"cannot read {plans_file}: {exc}")
    if configuration not in configurations:
        return Check("preprocessed", False, f"{plans_file.name} has no configuration {configuration!r} "
                     f"(it has: {', '.join(sorted(configurations))})")
    data_identifier = configurations[configuration].get("data_identifier") or f"{plans}_{configuration}"
    data_folder = folder / data_identifier
    if not data_folder.is_dir() or not any(data_folder.iterdir()):
        return Check("preprocessed", False, f"preprocessed data {data_folder} is missing or empty: run "
                     f"nnUNetv2_preprocess -d {dataset} -c {configuration} -plans_name {plans}")
    return Check("preprocessed", True, f"plans and preprocessed data found in {folder}")


def check_target_free(new_run_dir: Path) -> Check:
    """The new run's folder must not already hold a run: nnU-Net would mix two trainings in it."""
    if new_run_dir.is_dir():
        found = sorted(entry.name for entry in new_run_dir.iterdir() if entry.name.startswith(_RUN_MARKERS))
        if found:
            return Check("target_free", False, f"{new_run_dir} already holds a run ({', '.join(found[:3])}); "
                         "choose a different number of epochs")
    return Check("target_free", True, f"{new_run_dir} is free")


@dataclass(frozen=True)
class TargetCheck:
    """The new run's folder: the check, and where a stopped earlier attempt would be moved by starting over.

    ``aside`` is set only when the folder holds an attempt that is neither training nor finished (a
    cancelled or failed job, a crash): that attempt may be moved aside, never one that is live or done.
    """

    check: Check
    aside: Path | None = None


def aside_folder(new_run_dir: Path, now: datetime | None = None) -> Path:
    """A free sibling name for a stopped attempt: ``fold_0.stopped_20261207T031500Z`` (not a run folder
    name, so nnwatch and nnU-Net leave it alone)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    candidate = new_run_dir.with_name(f"{new_run_dir.name}.stopped_{stamp}")
    number = 2
    while candidate.exists():
        candidate = new_run_dir.with_name(f"{new_run_dir.name}.stopped_{stamp}_{number}")
        number += 1
    return candidate


def _progress(new_run_dir: Path) -> tuple[str, RunStatus | None]:
    """``709/2000 epochs, running`` and the status, read by monitor's run reader (None when unreadable)."""
    try:
        summary = load_run(new_run_dir).summary()
    except (OSError, ValueError):
        return "unreadable", None
    return f"{summary.epochs_completed}/{summary.planned_epochs or '?'} epochs, {summary.status}", summary.status


def check_target(new_run_dir: Path, *, jobs: Sequence[Job] = (), start_over: bool = False) -> TargetCheck:
    """What already sits in the new run's folder decides: a free folder passes; a live or finished
    extension blocks (follow it, or choose another schedule length); a stopped attempt blocks unless
    ``start_over``, which moves it aside to :attr:`TargetCheck.aside`. Nothing is ever deleted.

    ``jobs`` are the registry's jobs, reconciled: a job still queued or running makes the folder live even
    before its first epoch, and a cancelled or failed job makes it stopped even while its last log line is
    seconds old.
    """
    mine = [job for job in jobs if Path(job.new_run_path) == new_run_dir]  # newest first
    active = next((job for job in mine if job.state.active), None)
    plain = check_target_free(new_run_dir)
    if plain.ok and active is None:
        return TargetCheck(plain)
    progress, status = _progress(new_run_dir) if not plain.ok else ("no epoch yet", None)
    if active is not None:
        return TargetCheck(Check("target_free", False, f"an extension of this run is already training in "
                                 f"{new_run_dir} ({progress}; job {active.job_id} {active.state}): follow it on its "
                                 "run page, or choose a different number of epochs"))
    ended = mine[0] if mine else None
    if status == RunStatus.FINISHED:
        return TargetCheck(Check("target_free", False, f"this run was already extended to this schedule and the "
                                 f"extension finished ({progress}) in {new_run_dir}: open it, or choose a different "
                                 "number of epochs"))
    if status == RunStatus.RUNNING and ended is None:
        return TargetCheck(Check("target_free", False, f"an extension of this run, started outside nnwatch, is "
                                 f"training in {new_run_dir} ({progress}): follow it on its run page, or choose a "
                                 "different number of epochs"))
    aside = aside_folder(new_run_dir)
    how = f"; job {ended.job_id} {ended.state}" if ended is not None else ""
    if start_over:
        return TargetCheck(Check("target_free", True, f"the earlier attempt ({progress}{how}) will be moved aside "
                                 f"to {aside} before the new run starts; nothing is deleted"), aside)
    return TargetCheck(Check("target_free", False, f"an earlier attempt stopped in {new_run_dir} ({progress}{how}): "
                             f"start over to move it aside to {aside} (nothing is deleted), or choose a different "
                             "number of epochs"), aside)


def check_gpu(gpus: list[GpuInfo], wanted: int | None) -> Check:
    """A local CUDA job needs a GPU; an explicitly requested index must exist."""
    if not gpus:
        return Check("gpu", False, "no NVIDIA GPU found (NVML / nvidia-smi): train on the CPU instead (device "
                     "cpu, very slow) or submit to SLURM (backend slurm)")
    indexes = [gpu.index for gpu in gpus]
    if wanted is not None and wanted not in indexes:
        return Check("gpu", False, f"GPU {wanted} does not exist (this machine has {indexes})")
    chosen = next(gpu for gpu in gpus if gpu.index == wanted) if wanted is not None else None
    if chosen is None:
        chosen = max(gpus, key=lambda gpu: (gpu.free_mib, -gpu.index))
    return Check("gpu", True, f"GPU {chosen.index} ({chosen.free_mib} MiB free)")


def check_disk_space(folder: Path, min_free_gb: float) -> Check:
    """Checkpoints and validation outputs need room; a full disk kills a run after hours."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1024**3
    if free_gb < min_free_gb:
        return Check("disk_space", False, f"only {free_gb:.1f} GB free on {probe} (need {min_free_gb:g} GB)")
    return Check("disk_space", True, f"{free_gb:.1f} GB free on {probe}")


@dataclass(frozen=True)
class FoldFiles:
    """What a fold folder's files say about the next step: trained, validated, validated with ``--npz``.

    The validation facts are :mod:`monitor.validation`'s (the one reader of nnU-Net's validation folder):
    ``validation_cases`` counts the segmentations nnU-Net's validation wrote, ``npz_count`` the softmax files
    ``--npz`` added next to them.
    """

    path: Path
    has_run: bool
    checkpoint_final: bool
    checkpoint_best: bool
    validation: RunValidation

    @property
    def validation_summary(self) -> bool:
        return self.validation.status is not ValidationStatus.MISSING

    @property
    def validation_cases(self) -> int:
        return max(self.validation.cases, self.validation.prediction_files)

    @property
    def npz_count(self) -> int:
        return self.validation.npz_files

    @property
    def npz_complete(self) -> bool:
        """Every validation case has its softmax ``.npz``."""
        return self.validation.npz_complete


def fold_files(run_dir: Path) -> FoldFiles:
    """Read the fold-file facts of one nnU-Net v2 fold folder (a missing folder has none of them)."""
    try:
        names = {entry.name for entry in run_dir.iterdir()}
    except OSError:
        names = set()
    return FoldFiles(path=run_dir, has_run=any(name.startswith(_RUN_MARKERS) for name in names),
                     checkpoint_final="checkpoint_final.pth" in names, checkpoint_best="checkpoint_best.pth" in names,
                     validation=read_run_validation(run_dir, nnunet_version="v2"))


def check_validation_npz(files: FoldFiles) -> Check:
    """Whether a finished fold still needs ``--val --npz`` (a warning when it would only redo it)."""
    if files.npz_complete:
        return Check("npz", False, f"{files.path.name} already has {files.npz_count} validation .npz files: "
                     "validating again overwrites them", blocking=False)
    missing = "has no validation .npz files" if files.npz_count == 0 else (
        f"has .npz files for {files.npz_count} of {files.validation_cases} validation cases")
    return Check("npz", True, f"{files.path.name} {missing}: --val --npz writes them ({NPZ_WHY})")


def check_val_best(files: FoldFiles) -> Check:
    """``--val_best`` only on a finished run: nnU-Net loads checkpoint_final.pth before the best one."""
    if not files.checkpoint_final:
        return Check("val_best", False, "--val_best is not offered on a run without checkpoint_final.pth: "
                     "nnUNetv2_train --val loads the final checkpoint before it switches to checkpoint_best.pth "
                     "and stops with 'the training is not finished yet' (nnU-Net issue #3056); finish the "
                     "training first (nnUNetv2_train ... --c)")
    if not files.checkpoint_best:
        return Check("val_best", False, f"{files.path.name} has no checkpoint_best.pth to validate with")
    return Check("val_best", False, "--val_best writes into the same validation/ folder and replaces the "
                 "validation of the final checkpoint", blocking=False)


def check_fold_ready(files: FoldFiles, label: str) -> Check:
    """A fold find_best_configuration can use: trained to the end and validated with ``--npz``."""
    if not files.has_run:
        return Check("folds", False, f"{label}: not trained (nnwatch train-fold)")
    if not files.checkpoint_final:
        return Check("folds", False, f"{label}: training not finished (no checkpoint_final.pth)")
    if not files.validation_summary:
        return Check("folds", False, f"{label}: not validated (nnwatch validate)")
    if not files.npz_complete:
        return Check("folds", False, f"{label}: validated without --npz (nnwatch validate): {NPZ_WHY}")
    return Check("folds", True, f"{label}: finished, validated with {files.npz_count} .npz files")
