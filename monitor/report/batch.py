"""``nnwatch report ROOT --all``: one PNG per run and per dataset/configuration/trainer, in parallel.

Rendering is CPU-bound, so forked workers (matplotlib already imported) each write their PNGs and return only
a status. Runs with nothing to draw are skipped and listed, not fatal.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from monitor.report.data import DatasetGroup, ReportError, group_runs, load_run_data
from monitor.report.style import ReportOptions, report_png
from monitor.runs.layout import RunLocation, discover_runs
from monitor.workers import worker_count

__all__ = ["BatchResult", "Job", "Progress", "dataset_file_name", "run_file_name", "safe_name", "write_all"]

Progress = Callable[[int, int, str], None]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 180  # bytes; file systems allow 255, leave room for ".png" and a collision suffix
# Below this many reports a worker pool's start-up is not worth it.
_PARALLEL_THRESHOLD = 4


def safe_name(parts: Sequence[str]) -> str:
    """Path parts joined with ``--``, anything but letters, digits, ``.``, ``_`` and ``-`` made ``_``; over-long
    names keep their start and end plus a short hash, so two long run ids stay distinct."""
    name = "--".join(_UNSAFE.sub("_", part).strip("._-") or "_" for part in parts)
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:100]}~{digest}~{name[-(_MAX_NAME - 110):]}"
    return name


def run_file_name(location: RunLocation) -> str:
    """``Dataset004_X--nnUNetTrainer__nnUNetPlans__3d_fullres--fold_0.png`` (from the run id)."""
    return safe_name(location.run_id.split("/")) + ".png"


def dataset_file_name(group: DatasetGroup) -> str:
    """``dataset--Dataset004_X--3d_fullres--nnUNetTrainer__nnUNetPlans.png``."""
    return safe_name(["dataset", group.dataset, group.configuration, f"{group.trainer}__{group.plans}"]) + ".png"


@dataclass(frozen=True)
class Job:
    """One report to write: a run or a fold group, and its file name."""

    file_name: str
    run: RunLocation | None = None
    group: DatasetGroup | None = None

    @property
    def label(self) -> str:
        return self.run.run_id if self.run is not None else self.group.key  # type: ignore[union-attr]


@dataclass
class BatchResult:
    """What ``--all`` did: files written, reports skipped with the reason, failures with the error."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def plan_jobs(root: Path, problems: list[str] | None = None) -> list[Job]:
    """Run reports first (sorted by run id), then one per fold group, with unique file names."""
    locations = discover_runs(root, problems)
    jobs = [Job(run_file_name(loc), run=loc) for loc in locations]
    jobs += [Job(dataset_file_name(group), group=group) for group in group_runs(locations)]
    used: set[str] = set()
    unique = []
    for job in jobs:
        name, n = job.file_name, 1
        while name.lower() in used:  # case-insensitive file systems (macOS, Windows shares) too
            n += 1
            name = job.file_name[:-4] + f"-{n}.png"
        used.add(name.lower())
        unique.append(Job(name, job.run, job.group))
    return unique


def _render(job: Job, root: str, out_dir: str, opts: ReportOptions) -> tuple[str, str, str]:
    """Write one report; ("written" | "skipped" | "failed", file or label, message). Runs in a worker."""
    from monitor.report.multi import build_dataset_figure, load_group
    from monitor.report.run import build_run_figure

    try:
        if job.run is not None:
            png = report_png(opts, build_run_figure, load_run_data(job.run.path, root=root))
        else:
            assert job.group is not None
            png = report_png(opts, build_dataset_figure, load_group(job.group, root))
        target = Path(out_dir) / job.file_name
        target.write_bytes(png)
        return "written", str(target), ""
    except (ReportError, FileNotFoundError) as exc:
        return "skipped", job.label, str(exc)
    except Exception as exc:  # one odd run must not cost the other 99 reports
        return "failed", job.label, f"{type(exc).__name__}: {exc}"


def _results(jobs: Sequence[Job], root: str, out_dir: str, opts: ReportOptions,
                   workers: int) -> Iterator[tuple[str, str, str]]:
    if workers <= 1 or len(jobs) < _PARALLEL_THRESHOLD:
        for job in jobs:
            yield _render(job, root, out_dir, opts)
        return
    import multiprocessing

    context = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_render, job, root, out_dir, opts) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def write_all(root: str | os.PathLike[str], out_dir: str | os.PathLike[str], opts: ReportOptions, *,
              progress: Progress | None = None, workers: int | None = None) -> BatchResult:
    """Plan, render and write every report under ``root``; ``progress(done, total, label)`` after each."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise ReportError(f"results root not found or not a folder: {root}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(root_path)
    if not jobs:
        raise ReportError(f"no runs under {root}")
    result = BatchResult()
    results = _results(jobs, str(root_path), str(out), opts, worker_count(workers or None))
    for done, (status, what, message) in enumerate(results, start=1):
        if status == "written":
            result.written.append(Path(what))
        elif status == "skipped":
            result.skipped.append((what, message))
        else:
            result.failed.append((what, message))
        if progress is not None:
            progress(done, len(jobs), Path(what).name if status == "written" else what)
    result.written.sort()
    return result
