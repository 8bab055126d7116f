"""What an extend would run: the pure-ish spec that ``--dry-run`` prints and ``submit`` executes.

:func:`plan_extend` reads the parent run's folder names (through :func:`monitor.runs.layout.locate_run`), finds
the parent's trainer the way nnU-Net does, decides the variant trainer and the new run folder, builds the
``nnUNetv2_train`` argv and the environment it needs, and runs every pre-flight check. It changes nothing
on disk. The new run lands next to its parent (same results root, ``<Dataset>/<NewTrainer>__<Plans>__
<configuration>/fold_N``) and is trained from scratch: the argv never contains ``--c`` or
``-pretrained_weights``, so the poly learning rate starts at its initial value again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from monitor.runs.layout import RunLocation, locate_run
from trainer.checks import (
    Check,
    check_disk_space,
    check_env,
    check_gpu,
    check_preprocessed,
    check_target,
)
from trainer.gpus import GpuInfo, choose_gpu, query_gpus
from trainer.jobs import Job
from trainer.names import InvalidNameError, validate_name
from trainer.selection import BACKEND_NAMES
from trainer.slurm_text import SlurmOptions
from trainer.variants import VariantError, VariantSpec, join_search_path, resolve_variant

__all__ = ["DEVICES", "ExtendPlan", "PreflightError", "location_checks", "nnunet_train_executable", "plan_extend"]

DEVICES = ("cuda", "cpu")


class PreflightError(RuntimeError):
    """A plan whose blocking checks failed was submitted; the message lists every failed check."""


@dataclass(frozen=True)
class ExtendPlan:
    """An extend, fully decided but not started. ``argv`` is empty when a blocking check failed early."""

    parent: RunLocation
    parent_epochs: int | None
    epochs: int
    backend: str
    device: str
    gpu: int | None
    new_trainer: str
    new_run_dir: Path
    new_run_id: str
    argv: tuple[str, ...]
    env: dict[str, str]
    checks: tuple[Check, ...]
    variant: VariantSpec | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    aside: Path | None = None  # where a stopped earlier attempt in new_run_dir goes when starting over
    start_over: bool = False  # move that attempt aside before launching

    @property
    def can_start_over(self) -> bool:
        """The new run's folder holds a stopped attempt that starting over would move aside."""
        return self.aside is not None

    @property
    def ok(self) -> bool:
        """True when no blocking check failed."""
        return all(check.ok or not check.blocking for check in self.checks)

    @property
    def problems(self) -> list[str]:
        """Messages of the failed blocking checks."""
        return [check.message for check in self.checks if check.blocking and not check.ok]

    def raise_for_problems(self) -> None:
        """Raise :class:`PreflightError` listing every blocking problem."""
        if not self.ok:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            raise PreflightError(f"cannot extend {self.parent.run_id}:\n{lines}")

    def to_dict(self) -> dict[str, Any]:
        """What ``--dry-run --json`` prints: enough to run the same thing by hand."""
        return {
            "parent_run_id": self.parent.run_id,
            "parent_path": str(self.parent.path),
            "parent_epochs": self.parent_epochs,
            "epochs": self.epochs,
            "backend": self.backend,
            "device": self.device,
            "gpu": self.gpu,
            "new_trainer": self.new_trainer,
            "new_run_id": self.new_run_id,
            "new_run_dir": str(self.new_run_dir),
            "argv": list(self.argv),
            "env": dict(self.env),
            "variant_module": None if self.variant is None or self.variant.module_path is None
            else str(self.variant.module_path),
            "slurm": self.slurm.to_dict() if self.backend == "slurm" else None,
            "checks": [check.to_dict() for check in self.checks],
            "start_over": self.start_over,
            "aside": None if self.aside is None else str(self.aside),
            "ok": self.ok,
        }


def nnunet_train_executable() -> str | None:
    """``nnUNetv2_train`` beside this Python (the same virtualenv), else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "nnUNetv2_train"
    return str(beside) if beside.is_file() else shutil.which("nnUNetv2_train")


def _parent_epochs(run_dir: Path) -> int | None:
    """The parent's planned epochs from nnU-Net's ``debug.json`` (absent for very old runs)."""
    try:
        value = json.loads((run_dir / "debug.json").read_text()).get("num_epochs")
        return int(value) if value is not None else None
    except (OSError, ValueError, TypeError):
        return None


def location_checks(location: RunLocation, action: str = "extend") -> list[Check]:
    """An nnU-Net v2 fold folder whose names nnU-Net would create; ``action`` names the job in the message."""
    if location.nnunet_version == "v1":
        return [Check("nnunet_version", False, f"{location.run_id} is an nnU-Net v1 run: nnunetv2 cannot "
                      f"{action} it (different trainers, plans and preprocessing); retrain it with nnunetv2 "
                      "(nnUNetv2_convert_old_nnUNet_dataset, then plan and preprocess)")]
    if location.nnunet_version != "v2":
        return [Check("nnunet_version", False, f"{location.path} is not an nnU-Net v2 fold folder "
                      "(<Dataset>/<Trainer>__<Plans>__<configuration>/fold_N)")]
    checks = [Check("nnunet_version", True, "nnU-Net v2 run")]
    for kind in ("dataset", "trainer", "plans", "configuration", "fold"):
        try:
            validate_name(kind, getattr(location, kind))
        except InvalidNameError as exc:
            checks.append(Check("names", False, str(exc)))
    return checks


def _new_run_id(parent: RunLocation, model_dir: str) -> str:
    prefix = parent.run_id.split("/")[:-3]
    return "/".join([*prefix, parent.dataset, model_dir, parent.path.name])


def plan_extend(
    run_dir: str | os.PathLike[str],
    *,
    epochs: int = 2000,
    backend: str = "local",
    device: str = "cuda",
    gpu: int | None = None,
    slurm: SlurmOptions | None = None,
    root: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    min_free_gb: float = 5.0,
    gpus: list[GpuInfo] | None = None,
    jobs: Sequence[Job] = (),
    start_over: bool = False,
) -> ExtendPlan:
    """Decide how to retrain ``run_dir`` for ``epochs`` epochs from scratch; run every check; start nothing.

    ``environ`` defaults to this process's environment (``nnUNet_*``); ``gpus`` to what NVML/nvidia-smi
    report. ``jobs`` (the registry's, reconciled) tell a live extension in the new folder from a stopped
    attempt; ``start_over`` moves such an attempt aside at submit (see :func:`trainer.checks.check_target`).
    Raises ``ValueError`` for arguments that are wrong in themselves (a backend name, a
    non-positive epoch count) and ``FileNotFoundError`` when ``run_dir`` does not exist; everything about
    the run and the machine is reported as checks.
    """
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKEND_NAMES)}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    environ = dict(os.environ if environ is None else environ)
    slurm = slurm or SlurmOptions()
    if backend == "slurm" and device == "cpu" and slurm.gres:
        slurm = SlurmOptions(slurm.partition, slurm.time, "", slurm.account, slurm.extra)
    parent = locate_run(run_dir, root)
    parent_epochs = _parent_epochs(parent.path)
    checks = location_checks(parent)
    empty = ExtendPlan(parent=parent, parent_epochs=parent_epochs, epochs=epochs, backend=backend, device=device,
                       gpu=gpu, new_trainer="", new_run_dir=parent.path, new_run_id="", argv=(), env={},
                       checks=tuple(checks), slurm=slurm)
    if not all(check.ok for check in checks):
        return empty

    checks.append(check_env(environ))
    try:
        variant = resolve_variant(parent.trainer, epochs, environ)
    except VariantError as exc:
        return replace(empty, checks=(*checks, Check("trainer", False, str(exc))))
    checks.append(Check("trainer", True, f"{variant.name}: " + (
        "ships with nnU-Net" if variant.builtin and variant.in_nnunet_package else
        "already available" if variant.builtin else f"will be generated in {variant.module_path}")))

    results_root = parent.path.parents[2]
    model_dir = f"{variant.name}__{parent.plans}__{parent.configuration}"
    new_run_dir = results_root / parent.dataset / model_dir / parent.path.name
    target = check_target(new_run_dir, jobs=jobs, start_over=start_over)
    checks.append(target.check)
    if environ.get("nnUNet_preprocessed"):
        checks.append(check_preprocessed(Path(environ["nnUNet_preprocessed"]), parent.dataset, parent.plans,
                                         parent.configuration))
    configured_results = environ.get("nnUNet_results")
    if configured_results and Path(configured_results).absolute() != results_root:
        checks.append(Check("results_root", False, f"the new run goes next to its parent in {results_root}, "
                            f"not in $nnUNet_results={configured_results}", blocking=False))
    if backend == "local" and device == "cuda":
        found = query_gpus() if gpus is None else gpus
        checks.append(check_gpu(found, gpu))
        if gpu is None and found:
            gpu = choose_gpu(found)
    if backend == "slurm" and device == "cuda" and not slurm.gres:
        checks.append(Check("gpu", False, "device cuda on SLURM without a GRES request (e.g. gpu:1): the job may "
                            "get no GPU",
                            blocking=False))
    checks.append(check_disk_space(new_run_dir, min_free_gb))
    if parent_epochs is not None and epochs <= parent_epochs:
        checks.append(Check("epochs", False, f"the parent was planned for {parent_epochs} epochs; {epochs} is "
                            "not longer", blocking=False))
    executable = nnunet_train_executable()
    if executable is None:
        checks.append(Check("nnunet_train", False, "nnUNetv2_train not found next to this Python or on PATH"))

    env = {name: value for name, value in environ.items() if name.startswith("nnUNet_")}
    env["nnUNet_results"] = str(results_root)
    if variant.ext_trainer_dir is not None:
        env["nnUNet_extTrainer"] = join_search_path(variant.ext_trainer_dir, env.get("nnUNet_extTrainer"))
        checks.append(Check("prediction_env", False, f"export nnUNet_extTrainer={env['nnUNet_extTrainer']} "
                            f"before nnUNetv2_predict with this run", blocking=False))
    if backend == "local" and device == "cuda" and gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    argv = (executable or "nnUNetv2_train", parent.dataset, parent.configuration, parent.fold,
            "-tr", variant.name, "-p", parent.plans, "-device", device)
    return ExtendPlan(
        parent=parent, parent_epochs=parent_epochs, epochs=epochs, backend=backend, device=device, gpu=gpu,
        new_trainer=variant.name, new_run_dir=new_run_dir, new_run_id=_new_run_id(parent, model_dir),
        argv=argv, env=env, checks=tuple(checks), variant=variant, slurm=slurm, aside=target.aside,
        start_over=start_over and target.aside is not None,
    )
