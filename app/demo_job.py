"""The demo's real job: a tiny process that is started, tracked and cancelled like every nnwatch job.

On the demo (``nnwatch serve`` with no results tree) nothing can be trained, yet the Jobs page should show what a
job is. :func:`plan_demo_job` plans a job of kind ``demo`` that goes through the same registry, local backend,
checks and audit trail as an extend (:func:`trainer.submit_step`): a detached process launched with an argv list,
``python -m app.demo_job``, that writes a synthetic nnU-Net v2 training (:mod:`monitor.synth`) into one fold
folder of the demo tree, :data:`DEMO_JOB_RUN`, one epoch per second. The overview shows it running, its curve
grows, and a cancel stops it within a second. Starting it again trains that fold again from epoch 0 in a new
log, as ``nnUNetv2_train`` without ``--c`` does.

It can only ever write into a demo tree: the plan's blocking check and the process itself both refuse a results
root that :func:`app.demo.is_demo_root` does not recognise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from app.demo import is_demo_root
from monitor.synth import CurveSpec, FakeRun, make_run_dir

if TYPE_CHECKING:  # the job's own process needs none of trainer/: it starts faster without it
    from trainer import StepPlan

__all__ = ["DEMO_JOB_EPOCHS", "DEMO_JOB_EPOCH_S", "DEMO_JOB_RUN", "main", "plan_demo_job", "train"]

_DATASET, _TRAINER, _PLANS, _CONFIGURATION, _FOLD = "Dataset103_LiveDemo", "nnUNetTrainer", "nnUNetPlans", "2d", "0"
DEMO_JOB_RUN = f"{_DATASET}/{_TRAINER}__{_PLANS}__{_CONFIGURATION}/fold_{_FOLD}"
DEMO_JOB_EPOCHS = 300
DEMO_JOB_EPOCH_S = 1.0
_LABELS = ("organ", "lesion")
_CURVE = CurveSpec((0.88, 0.74), timescale=0.25, noise=0.012, seed=103)
_MAX_EPOCHS = 10_000
_EPOCH_S_RANGE = (0.01, 60.0)


def _check_numbers(epochs: int, epoch_s: float) -> None:
    if not 1 <= epochs <= _MAX_EPOCHS:
        raise ValueError(f"a demo job has 1 to {_MAX_EPOCHS} epochs, not {epochs}")
    if not _EPOCH_S_RANGE[0] <= epoch_s <= _EPOCH_S_RANGE[1]:
        raise ValueError(f"a demo epoch lasts {_EPOCH_S_RANGE[0]:g} to {_EPOCH_S_RANGE[1]:g} s, not {epoch_s:g}")


def _code_path(environ: Mapping[str, str]) -> str:
    """``PYTHONPATH`` that makes the job run this very copy of nnwatch, whatever folder it starts in."""
    here = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join([here, *[part for part in environ.get("PYTHONPATH", "").split(os.pathsep) if part]])


def plan_demo_job(root: str | Path, *, epochs: int = DEMO_JOB_EPOCHS, epoch_s: float = DEMO_JOB_EPOCH_S,
                  environ: Mapping[str, str] | None = None) -> StepPlan:
    """The demo job for the demo tree ``root``; changes nothing. Its one blocking check fails (and its argv is
    empty) unless ``root`` is a demo tree; bad numbers raise ``ValueError``."""
    from trainer import Check, JobKind, StepPlan

    _check_numbers(epochs, epoch_s)
    root = Path(root).absolute()
    demo = is_demo_root(root)
    if demo:
        message = f"{root} is the bundled demo tree; the job writes {DEMO_JOB_RUN} there and nothing else"
    else:
        message = f"{root} is not a demo tree written by nnwatch: a demo job never writes into a real results tree"
    argv = (sys.executable, "-m", "app.demo_job", "--root", str(root), "--epochs", str(epochs),
            "--epoch-seconds", f"{epoch_s:g}") if demo else ()
    return StepPlan(kind=JobKind.DEMO, dataset=_DATASET, source=root, target=root / DEMO_JOB_RUN,
                    target_id=DEMO_JOB_RUN, trainers=(_TRAINER,), plans=(_PLANS,), configurations=(_CONFIGURATION,),
                    folds=(_FOLD,), backend="local", device="cpu", gpu=None, argv=argv,
                    env={"PYTHONPATH": _code_path(os.environ if environ is None else environ)},
                    checks=(Check("demo_tree", demo, message),), epochs=epochs, options={"epoch_s": epoch_s})


def train(root: Path, *, epochs: int, epoch_s: float, stop: threading.Event) -> int:
    """Write the synthetic training into the demo tree, one epoch every ``epoch_s`` seconds, until the schedule
    ends (0) or ``stop`` is set (143, as a SIGTERM'd process). The log and the job's output say it is synthetic."""
    if not is_demo_root(root):
        print(f"nnwatch demo job: refusing {root}: not a demo tree written by nnwatch", file=sys.stderr, flush=True)
        return 2
    try:
        folder = make_run_dir(root, _DATASET, _TRAINER, _PLANS, _CONFIGURATION, _FOLD, _LABELS)
        run = FakeRun(folder, epochs, epoch_s, _CURVE, clock=datetime.now())
        run.start_session()
        print(f"nnwatch demo job: a synthetic nnU-Net training (nothing is trained), {epochs} epochs, one every "
              f"{epoch_s:g} s, into {folder}", flush=True)
        for epoch in range(epochs):
            run.clock = datetime.now()
            run.begin_epoch()
            if stop.wait(epoch_s):
                print(f"nnwatch demo job: stopped during epoch {epoch} of {epochs}", flush=True)
                return 128 + signal.SIGTERM
            run.clock = datetime.now() - timedelta(seconds=epoch_s)  # the epoch's end lines carry "now"
            run.end_epoch()
            print(f"{datetime.now():%Y-%m-%d %H:%M:%S}: epoch {epoch}, pseudo Dice {run.dice(epoch)}", flush=True)
        run.finish(final_dice=round(min(0.99, sum(run.dice(epochs - 1)) / len(_LABELS) + 0.03), 4))
    except OSError as exc:  # the demo tree was rewritten by a new server start, or the disk is full
        print(f"nnwatch demo job: cannot write the demo run any more ({exc}); stopping", flush=True)
        return 1
    print("nnwatch demo job: training done", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.demo_job --root DEMO_TREE``: the demo job's process (SIGTERM or SIGINT stop it at once)."""
    parser = argparse.ArgumentParser(prog="python -m app.demo_job", description="The bundled demo's job: write a "
                                     "synthetic nnU-Net training into the demo tree, epoch by epoch.")
    parser.add_argument("--root", required=True, type=Path,
                        help="the demo's nnUNet_results folder (any other folder is refused)")
    parser.add_argument("--epochs", type=int, default=DEMO_JOB_EPOCHS, help="epochs to write (default: 300)")
    parser.add_argument("--epoch-seconds", type=float, default=DEMO_JOB_EPOCH_S,
                        help="seconds per epoch (default: 1)")
    args = parser.parse_args(argv)
    try:
        _check_numbers(args.epochs, args.epoch_seconds)
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    return train(args.root.absolute(), epochs=args.epochs, epoch_s=args.epoch_seconds, stop=stop)


if __name__ == "__main__":
    raise SystemExit(main())
