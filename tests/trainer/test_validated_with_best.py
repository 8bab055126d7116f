"""What the job registry knows about the checkpoint behind a validation: only the job that wrote the file speaks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from trainer import Job, JobKind, JobState, validated_with_best

RUN = "/results/D/T__P__2d/fold_0"


def _job(job_id: str, kind: JobKind, start: str, end: str | None, *, state: JobState = JobState.SUCCEEDED,
         val_best: bool = False, path: str = RUN) -> Job:
    return Job(job_id=job_id, state=state, parent_run_id="D/T__P__2d/fold_0", parent_path=path, new_run_id="x",
               new_run_path=path, new_trainer="T", epochs=0, backend="local", device="cpu", requested_by="alice",
               created_at=start, argv=("nnUNetv2_train",), env={}, job_dir="/jobs", log_path="/jobs/log",
               options={"val_best": val_best} if kind is JobKind.VALIDATE else {}, started_at=start,
               finished_at=end, kind=kind)


def _at(text: str) -> float:
    return datetime.fromisoformat(f"2026-12-07T{text}+00:00").timestamp()


def _t(text: str) -> str:
    return f"2026-12-07T{text}+00:00"


def test_the_job_that_wrote_the_summary_decides() -> None:
    train = _job("a", JobKind.TRAIN_FOLD, _t("01:00:00"), _t("02:00:00"))
    best = _job("b", JobKind.VALIDATE, _t("03:00:00"), _t("03:10:00"), val_best=True)
    final = _job("c", JobKind.VALIDATE, _t("04:00:00"), _t("04:10:00"))
    jobs = [train, best, final]
    assert validated_with_best(jobs, RUN, _at("01:59:59")) is False  # the training's own final validation
    assert validated_with_best(jobs, RUN, _at("03:09:30")) is True
    assert validated_with_best(jobs, RUN, _at("04:10:01")) is False  # whole seconds in the registry: slack
    assert validated_with_best(jobs, Path(RUN), _at("03:05:00")) is True


def test_nothing_is_known_without_a_job_that_wrote_the_file() -> None:
    best = _job("b", JobKind.VALIDATE, _t("03:00:00"), _t("03:10:00"), val_best=True)
    assert validated_with_best([best], RUN, _at("05:00:00")) is None  # validated again later, from a terminal
    assert validated_with_best([best], RUN, None) is None  # no summary.json
    assert validated_with_best([best], "/results/D/T__P__2d/fold_1", _at("03:05:00")) is None
    failed = _job("f", JobKind.VALIDATE, _t("03:00:00"), _t("03:10:00"), val_best=True, state=JobState.FAILED)
    running = _job("r", JobKind.VALIDATE, _t("03:00:00"), None, val_best=True, state=JobState.RUNNING)
    dataset = _job("d", JobKind.FIND_BEST, _t("03:00:00"), _t("03:10:00"))
    assert validated_with_best([failed, running, dataset], RUN, _at("03:05:00")) is None
