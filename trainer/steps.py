"""nnU-Net's next steps as planned jobs: train a missing fold, validate with ``--npz``, find the best configuration.

Each planner reads folder names and fold files, builds the exact argv and environment, and runs every
pre-flight check, like :func:`trainer.plan.plan_extend`; it changes nothing on disk. The argv is always a
list. :func:`trainer.submit.submit_step` records and launches a :class:`StepPlan` through the same registry
and backends as an extend.

* ``train_fold``: ``nnUNetv2_train DATASET CONFIG FOLD -tr TRAINER -p PLANS --npz``, with the trainer and
  plans of the configuration folder the fold is missing from.
* ``validate``: ``nnUNetv2_train ... --val --npz`` on a finished fold (``--val_best`` only when the run
  has ``checkpoint_final.pth``: nnU-Net loads it before the best checkpoint).
* ``find_best``: ``nnUNetv2_find_best_configuration DATASET -c ... -tr ... -p ... -f ...`` once every
  chosen fold is finished and validated with ``--npz``; it writes ``inference_information.json`` and
  ``inference_instructions.txt`` into the dataset's results folder (read by :mod:`trainer.best`).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from monitor.runs import locate_run, parse_run_path
from trainer.checks import (
    Check,
    check_disk_space,
    check_env,
    check_fold_ready,
    check_gpu,
    check_preprocessed,
    check_val_best,
    check_validation_npz,
    fold_files,
)
from trainer.gpus import GpuInfo, choose_gpu, query_gpus
from trainer.jobs import JobKind
from trainer.names import InvalidNameError, validate_name
from trainer.plan import DEVICES, PreflightError, location_checks
from trainer.selection import BACKEND_NAMES
from trainer.slurm_text import SlurmOptions
from trainer.variants import find_trainer, join_search_path, variants_folder

__all__ = [
    "DEFAULT_FOLDS",
    "StepPlan",
    "expected_folds",
    "nnunet_executable",
    "plan_find_best",
    "plan_train_fold",
    "plan_validate",
]

DEFAULT_FOLDS = ("0", "1", "2", "3", "4")
_DESCRIPTIONS = {
    JobKind.TRAIN_FOLD: "train a missing fold with the configuration's trainer and plans, saving --npz",
    JobKind.VALIDATE: "re-run a finished fold's validation, saving the softmax .npz files",
    JobKind.FIND_BEST: "nnUNetv2_find_best_configuration over finished, --npz-validated folds",
    JobKind.DEMO: "a synthetic nnU-Net training written into the demo tree (nothing is trained)",
}


@dataclass(frozen=True)
class StepPlan:
    """One next-step job, fully decided but not started. ``argv`` is empty when a check failed early.

    ``target`` is the folder the job writes into (the fold folder, or the dataset's results folder for
    ``find_best``): one active job per target folder, whatever its kind.
    """

    kind: JobKind
    dataset: str
    source: Path
    target: Path
    target_id: str
    trainers: tuple[str, ...]
    plans: tuple[str, ...]
    configurations: tuple[str, ...]
    folds: tuple[str, ...]
    backend: str
    device: str
    gpu: int | None
    argv: tuple[str, ...]
    env: dict[str, str]
    checks: tuple[Check, ...]
    epochs: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    @property
    def ok(self) -> bool:
        """True when no blocking check failed."""
        return bool(self.argv) and all(check.ok or not check.blocking for check in self.checks)

    @property
    def problems(self) -> list[str]:
        """Messages of the failed blocking checks."""
        return [check.message for check in self.checks if check.blocking and not check.ok]

    @property
    def description(self) -> str:
        """One line on what the job does (the sbatch script's comment, the dashboard's caption)."""
        return _DESCRIPTIONS[self.kind]

    def raise_for_problems(self) -> None:
        """Raise :class:`~trainer.plan.PreflightError` listing every blocking problem."""
        if not self.ok:
            lines = "\n".join(f"  - {problem}" for problem in self.problems or ["nothing to run"])
            raise PreflightError(f"cannot {self.kind.value.replace('_', ' ')} {self.target_id}:\n{lines}")

    def to_dict(self) -> dict[str, Any]:
        """What ``--dry-run --json`` prints: enough to run the same thing by hand."""
        return {
            "kind": self.kind.value, "dataset": self.dataset, "source": str(self.source),
            "target": str(self.target), "target_id": self.target_id, "trainers": list(self.trainers),
            "plans": list(self.plans), "configurations": list(self.configurations), "folds": list(self.folds),
            "backend": self.backend, "device": self.device, "gpu": self.gpu, "argv": list(self.argv),
            "env": dict(self.env), "options": dict(self.options),
            "slurm": self.slurm.to_dict() if self.backend == "slurm" else None,
            "checks": [check.to_dict() for check in self.checks], "ok": self.ok,
        }


def nnunet_executable(name: str) -> str | None:
    """An nnU-Net console script beside this Python (the same virtualenv), else the one on ``PATH``."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def _check_arguments(backend: str, device: str) -> None:
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKEND_NAMES)}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")


def _slurm_for(backend: str, device: str, slurm: SlurmOptions | None) -> SlurmOptions:
    slurm = slurm or SlurmOptions()
    if backend == "slurm" and device == "cpu" and slurm.gres:
        return SlurmOptions(slurm.partition, slurm.time, "", slurm.account, slurm.extra)
    return slurm


def _base_env(environ: Mapping[str, str], results_root: Path) -> dict[str, str]:
    env = {name: value for name, value in environ.items() if name.startswith("nnUNet_")}
    env["nnUNet_results"] = str(results_root)
    return env


def _trainer_check(trainer: str, environ: Mapping[str, str], env: dict[str, str]) -> Check:
    """nnU-Net must find the trainer by name (read from the sources; the import is confirmed at submit); an
    nnwatch variant outside its package adds its folder."""
    search = dict(environ)
    folder, in_package = variants_folder(environ)
    if not in_package:
        search["nnUNet_extTrainer"] = join_search_path(str(folder), search.get("nnUNet_extTrainer"))
    found = find_trainer(trainer, search)
    if found is None:
        return Check("trainer", False, f"nnU-Net cannot find trainer {trainer!r} (its nnunetv2/training/"
                     f"nnUNetTrainer package and nnUNet_extTrainer={environ.get('nnUNet_extTrainer', '')!r})")
    if found.search_path is not None:
        env["nnUNet_extTrainer"] = join_search_path(found.search_path, env.get("nnUNet_extTrainer"))
    return Check("trainer", True, f"{trainer} ({found.module})")


def _machine_checks(backend: str, device: str, gpu: int | None, slurm: SlurmOptions, gpus: list[GpuInfo] | None,
                    env: dict[str, str]) -> tuple[list[Check], int | None]:
    checks = []
    if backend == "local" and device == "cuda":
        found = query_gpus() if gpus is None else gpus
        checks.append(check_gpu(found, gpu))
        if gpu is None and found:
            gpu = choose_gpu(found)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if backend == "slurm" and device == "cuda" and not slurm.gres:
        checks.append(Check("gpu", False, "--device cuda on SLURM without --slurm-gres: the job may get no GPU",
                            blocking=False))
    return checks, gpu


def _executable(name: str, checks: list[Check]) -> str:
    found = nnunet_executable(name)
    if found is None:
        checks.append(Check("executable", False, f"{name} not found next to this Python or on PATH"))
    return found or name


def _planned_epochs(model_dir: Path) -> int:
    """The trainer's epochs from any sibling fold's ``debug.json`` (0 when none says)."""
    for debug in sorted(model_dir.glob("fold_*/debug.json")):
        try:
            return int(json.loads(debug.read_text()).get("num_epochs"))
        except (OSError, ValueError, TypeError):
            continue
    return 0


def _split_count(preprocessed: str | None, dataset: str) -> int | None:
    """How many folds ``splits_final.json`` defines (None before the first training created it)."""
    if not preprocessed:
        return None
    try:
        splits = json.loads((Path(preprocessed) / dataset / "splits_final.json").read_text())
    except (OSError, ValueError):
        return None
    return len(splits) if isinstance(splits, list) else None


def expected_folds(dataset: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The folds of the dataset's cross-validation: ``splits_final.json``'s, else nnU-Net's default five."""
    environ = os.environ if environ is None else environ
    count = _split_count(environ.get("nnUNet_preprocessed"), dataset)
    return DEFAULT_FOLDS if count is None else tuple(str(fold) for fold in range(count))


def _fold_check(fold: str, preprocessed: str | None, dataset: str) -> Check:
    count = _split_count(preprocessed, dataset)
    limit = count if count is not None else len(DEFAULT_FOLDS)
    if fold != "all" and int(fold) >= limit:
        where = "splits_final.json defines" if count is not None else "nnU-Net's default split has"
        return Check("fold", False, f"fold {fold} does not exist: {where} folds 0-{limit - 1}")
    return Check("fold", True, f"fold {fold} of {limit}" if fold != "all" else "fold 'all' (all training cases)")


def _run_id(path: Path, root: str | os.PathLike[str] | None, depth: int) -> str:
    if root is not None:
        try:
            return path.absolute().relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            pass
    return "/".join(path.absolute().parts[-depth:])


def plan_train_fold(
    model_dir: str | os.PathLike[str], fold: str | int, *, backend: str = "local", device: str = "cuda",
    gpu: int | None = None, slurm: SlurmOptions | None = None, root: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None, min_free_gb: float = 5.0, gpus: list[GpuInfo] | None = None,
) -> StepPlan:
    """Plan training fold ``fold`` of the configuration folder ``model_dir`` (its trainer and plans, ``--npz``).

    Raises ``FileNotFoundError`` when ``model_dir`` does not exist and ``ValueError`` for a bad backend,
    device or fold name; everything about the run and the machine is reported as checks.
    """
    _check_arguments(backend, device)
    fold = validate_name("fold", str(fold))
    folder = Path(model_dir).absolute()
    if not folder.is_dir():
        raise FileNotFoundError(f"configuration folder not found: {model_dir}")
    environ = dict(os.environ if environ is None else environ)
    slurm = _slurm_for(backend, device, slurm)
    target = folder / f"fold_{fold}"
    target_id = _run_id(target, root, 3)
    location = parse_run_path(target, target_id)
    empty = StepPlan(kind=JobKind.TRAIN_FOLD, dataset=folder.parent.name, source=folder, target=target,
                     target_id=target_id, trainers=(), plans=(), configurations=(), folds=(fold,), backend=backend,
                     device=device, gpu=gpu, argv=(), env={}, checks=(), slurm=slurm)
    if location is None:
        return replace(empty, checks=(Check("nnunet_version", False, f"{folder} is not an nnU-Net v2 "
                                             "configuration folder (<Dataset>/<Trainer>__<Plans>__<configuration>)"),))
    checks = location_checks(location, "train")
    empty = replace(empty, dataset=location.dataset, trainers=(location.trainer,), plans=(location.plans,),
                     configurations=(location.configuration,))
    if not all(check.ok for check in checks):
        return replace(empty, checks=tuple(checks))
    env = _base_env(environ, folder.parent.parent)
    checks.append(check_env(environ))
    checks.append(_fold_check(fold, environ.get("nnUNet_preprocessed"), location.dataset))
    files = fold_files(target)
    if files.has_run:
        checks.append(Check("target_free", False, f"{target} already holds a run: train-fold only trains missing "
                            "folds (continue an unfinished one with nnUNetv2_train ... --c)"))
    else:
        checks.append(Check("target_free", True, f"{target.name} is not trained yet"))
    checks.append(_trainer_check(location.trainer, environ, env))
    if environ.get("nnUNet_preprocessed"):
        checks.append(check_preprocessed(Path(environ["nnUNet_preprocessed"]), location.dataset, location.plans,
                                         location.configuration))
    machine, gpu = _machine_checks(backend, device, gpu, slurm, gpus, env)
    checks += machine
    checks.append(check_disk_space(folder, min_free_gb))
    executable = _executable("nnUNetv2_train", checks)
    argv = (executable, location.dataset, location.configuration, fold, "-tr", location.trainer, "-p",
            location.plans, "--npz", "-device", device)
    return replace(empty, gpu=gpu, argv=argv, env=env, checks=tuple(checks), epochs=_planned_epochs(folder))


def plan_validate(
    run_dir: str | os.PathLike[str], *, val_best: bool = False, backend: str = "local", device: str = "cuda",
    gpu: int | None = None, slurm: SlurmOptions | None = None, root: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None, min_free_gb: float = 1.0, gpus: list[GpuInfo] | None = None,
) -> StepPlan:
    """Plan ``nnUNetv2_train ... --val --npz`` (``--val_best`` on request) for the finished run ``run_dir``."""
    _check_arguments(backend, device)
    environ = dict(os.environ if environ is None else environ)
    slurm = _slurm_for(backend, device, slurm)
    location = locate_run(run_dir, root)
    empty = StepPlan(kind=JobKind.VALIDATE, dataset=location.dataset, source=location.path, target=location.path,
                     target_id=location.run_id, trainers=(location.trainer,), plans=(location.plans,),
                     configurations=(location.configuration,), folds=(location.fold,), backend=backend,
                     device=device, gpu=gpu, argv=(), env={}, checks=(), slurm=slurm,
                     options={"val_best": val_best})
    checks = location_checks(location, "validate")
    if not all(check.ok for check in checks):
        return replace(empty, checks=tuple(checks))
    files = fold_files(location.path)
    if not files.checkpoint_final:
        checks.append(Check("finished", False, "no checkpoint_final.pth: nnUNetv2_train --val validates finished "
                            "runs only (it stops with 'the training is not finished yet'); let the training end "
                            "or continue it with --c"))
    else:
        checks.append(Check("finished", True, "checkpoint_final.pth present"))
    if val_best:
        checks.append(check_val_best(files))
    checks.append(check_validation_npz(files))
    env = _base_env(environ, location.path.parents[2])
    checks.append(check_env(environ))
    checks.append(_trainer_check(location.trainer, environ, env))
    if environ.get("nnUNet_preprocessed"):
        checks.append(check_preprocessed(Path(environ["nnUNet_preprocessed"]), location.dataset, location.plans,
                                         location.configuration))
    machine, gpu = _machine_checks(backend, device, gpu, slurm, gpus, env)
    checks += machine
    checks.append(check_disk_space(location.path, min_free_gb))
    executable = _executable("nnUNetv2_train", checks)
    argv = (executable, location.dataset, location.configuration, location.fold, "-tr", location.trainer, "-p",
            location.plans, "--val", "--npz", *(("--val_best",) if val_best else ()), "-device", device)
    return replace(empty, gpu=gpu, argv=argv, env=env, checks=tuple(checks),
                    epochs=_planned_epochs(location.path.parent))


def _unique(values: Sequence[str], kind: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(validate_name(kind, str(value)) for value in values))
    if not out:
        raise ValueError(f"choose at least one {kind}")
    return out


def plan_find_best(
    dataset_dir: str | os.PathLike[str], *, configurations: Sequence[str], trainers: Sequence[str],
    plans: Sequence[str] = ("nnUNetPlans",), folds: Sequence[str | int] = DEFAULT_FOLDS,
    disable_ensembling: bool = False, backend: str = "local", slurm: SlurmOptions | None = None,
    root: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None,
) -> StepPlan:
    """Plan ``nnUNetv2_find_best_configuration`` for the dataset's results folder ``dataset_dir``.

    Every fold of every chosen (trainer, plans, configuration) must be finished and validated with
    ``--npz``; each one that is not is a blocking check naming the job that fixes it.
    """
    _check_arguments(backend, "cpu")
    folder = Path(dataset_dir).absolute()
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset results folder not found: {dataset_dir}")
    configurations, trainers = _unique(configurations, "configuration"), _unique(trainers, "trainer")
    plans, fold_names = _unique(plans, "plans"), _unique([str(f) for f in folds], "fold")
    if "all" in fold_names:
        raise ValueError("find_best_configuration cross-validates numbered folds, not fold 'all'")
    fold_names = tuple(sorted(fold_names, key=int))
    environ = dict(os.environ if environ is None else environ)
    slurm = _slurm_for(backend, "cpu", slurm)
    plan = StepPlan(kind=JobKind.FIND_BEST, dataset=folder.name, source=folder, target=folder,
                    target_id=_run_id(folder, root, 1), trainers=trainers, plans=plans,
                    configurations=configurations, folds=fold_names, backend=backend, device="cpu", gpu=None,
                    argv=(), env={}, checks=(), slurm=slurm, options={"disable_ensembling": disable_ensembling})
    try:
        validate_name("dataset", folder.name)
    except InvalidNameError as exc:
        return replace(plan, checks=(Check("names", False, str(exc)),))
    checks = [check_env(environ)]
    preprocessed = environ.get("nnUNet_preprocessed")
    for trainer, plan_name, configuration in itertools.product(trainers, plans, configurations):
        model = f"{trainer}__{plan_name}__{configuration}"
        if not (folder / model).is_dir():
            checks.append(Check("folds", False, f"{model}: not trained at all (no folder {folder / model})"))
            continue
        fold_checks = [check_fold_ready(fold_files(folder / model / f"fold_{fold}"), f"fold {fold}")
                       for fold in fold_names]
        bad = [check.message for check in fold_checks if not check.ok]
        checks.append(Check("folds", not bad, f"{model}: " + ("; ".join(bad) if bad else
                            f"folds {', '.join(fold_names)} finished and validated with --npz")))
        if preprocessed:
            checks.append(check_preprocessed(Path(preprocessed), folder.name, plan_name, configuration))
    if preprocessed:
        gt = Path(preprocessed) / folder.name / "gt_segmentations"
        checks.append(Check("ground_truth", gt.is_dir(), f"{gt} " + ("found" if gt.is_dir() else
                            "is missing: find_best_configuration scores against it (rerun preprocessing)")))
        count = _split_count(preprocessed, folder.name)
        if count is not None and len(fold_names) < count:
            checks.append(Check("fold_count", False, f"only folds {', '.join(fold_names)} of {count}: the result "
                                "covers part of the cross-validation", blocking=False))
    existing = folder / "inference_information.json"
    if existing.is_file():
        checks.append(Check("result", False, f"replaces the result already in {existing}", blocking=False))
    executable = _executable("nnUNetv2_find_best_configuration", checks)
    argv = (executable, folder.name, "-c", *configurations, "-tr", *trainers, "-p", *plans, "-f", *fold_names,
            *(("--disable_ensembling",) if disable_ensembling else ()))
    return replace(plan, argv=argv, env=_base_env(environ, folder.parent), checks=tuple(checks))
