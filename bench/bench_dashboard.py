"""How long the dashboard's pages take to render on the server over a 750-run results tree (AppTest).

The target is a page over 750 runs in at most 1 s of server time. AppTest runs the real entrypoint (router,
sidebar, page, fragments) in-process, so its wall time is the server's script time without the browser
and network. Measured:

* cold: the first overview of a fresh server (monitor's watcher reads every run once, then every run
  is analysed once);
* warm: the overview, a run page, the compare page and the jobs page once the store is built (median of
  ``--repeat`` runs), which is what every later visitor and every live refresh costs;
* live tick: the overview right after the watcher picked up new epochs appended to ``--live`` running
  logs (only those runs are re-analysed).

Usage::

    .venv/bin/python bench/bench_dashboard.py [--runs 750] [--epochs 1000] [--repeat 7] [--tree DIR]

The tree is generated once into ``bench/out/dashboard_tree_<runs>x<epochs>`` (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.synth import CurveSpec, FakeRun, RunSpec, write_run  # noqa: E402

MAIN = str(REPO / "app" / "dashboard" / "main.py")
CONFIGS = ("2d", "3d_fullres", "3d_lowres")


def build_tree(root: Path, n_runs: int, epochs: int) -> list[tuple[str, RunSpec]]:
    """``n_runs`` fold folders: datasets × 3 configurations × 5 folds, 2 % running, 5 % crashed."""
    specs: list[tuple[str, RunSpec]] = []
    now = time.time()
    for index in range(n_runs):
        group, fold = divmod(index, 5)
        dataset_no, config_no = divmod(group, len(CONFIGS))
        dataset = f"Dataset{300 + dataset_no:03d}_Bench{dataset_no}"
        state = "running" if index % 50 == 7 else "crashed" if index % 20 == 3 else "finished"
        curve = CurveSpec((0.8, 0.7), timescale=(0.05, 0.2, 0.6)[index % 3], noise=0.01,
                          decline_per_100=0.02 if index % 11 == 0 else 0.0, epoch_time_s=90.0, seed=index)
        done = epochs if state == "finished" else int(epochs * (0.3 + 0.5 * (index % 7) / 7))
        spec = RunSpec(dataset, "nnUNetTrainer", CONFIGS[config_no], fold, epochs, curve, epochs_done=done,
                       state=state, ended_ago_s=86400.0 * (1 + index % 30))
        run_dir = root / dataset / f"nnUNetTrainer__nnUNetPlans__{CONFIGS[config_no]}" / f"fold_{fold}"
        if not run_dir.exists():
            write_run(root, spec, now=now, labels=("organ", "lesion"))
        specs.append((run_dir.relative_to(root).as_posix(), spec))
    return specs


def _timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=750)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--live", type=int, default=10, help="running logs to append an epoch to")
    parser.add_argument("--tree", type=Path, default=None)
    args = parser.parse_args()

    tree = args.tree or REPO / "bench" / "out" / f"dashboard_tree_{args.runs}x{args.epochs}"
    root = tree / "nnUNet_results"
    started = time.perf_counter()
    specs = build_tree(root, args.runs, args.epochs)
    print(f"tree: {len(specs)} runs × {args.epochs} epochs at {root} ({time.perf_counter() - started:.1f} s to "
          "generate or check)", flush=True)
    # Running runs must look fresh: touch their logs (a real trainer would be writing them).
    running = [(run_id, spec) for run_id, spec in specs if spec.state == "running"]
    for run_id, _ in running:
        for log in (root / run_id).glob("training_log_*.txt"):
            os.utime(log)

    jobs_db = Path(tempfile.mkdtemp()) / "jobs.sqlite3"
    os.environ.update(NNWATCH_ROOT=str(root), NNWATCH_HOST="127.0.0.1", NNWATCH_JOBS_DB=str(jobs_db))
    from streamlit.testing.v1 import AppTest

    from app.dashboard.resources import _store

    results: dict[str, float | int] = {"runs": len(specs), "epochs": args.epochs, "cpus": os.cpu_count() or 0}

    at = AppTest.from_file(MAIN, default_timeout=600)
    results["overview_cold_s"] = _timed(at.run)
    assert not at.exception, at.exception
    rows = next(df.value for df in at.dataframe if "run_id" in df.value.columns)
    assert len(rows) == len(specs), (len(rows), len(specs))
    store = _store(str(root))
    results["store_cold_load_s"] = store.cold_load_s

    def median_of(run) -> float:  # type: ignore[no-untyped-def]
        return statistics.median(_timed(run) for _ in range(args.repeat))

    results["overview_warm_s"] = median_of(at.run)

    appended = running[: args.live]
    for run_id, spec in appended:
        log = sorted((root / run_id).glob("training_log_*.txt"))[-1]
        FakeRun(log.parent, spec.planned_epochs, None, spec.curve, clock=datetime.now() - timedelta(seconds=90),
                next_epoch=spec.epochs_done or 0, log_path=log).history(1)
    results["live_tick_runs"] = len(appended)
    # Wait until the watcher has read every appended epoch, then time the first page run that shows them
    # (it re-analyses exactly the changed runs).
    deadline = time.monotonic() + 60
    version = store.version
    while any(getattr(store.summary(run_id), "epochs_completed", 0) <= (spec.epochs_done or 0)
              for run_id, spec in appended):
        if time.monotonic() > deadline:
            raise RuntimeError("the watcher did not pick up the appended epochs within 60 s")
        version = store.wait_for_change(version, timeout=2.0)
    results["overview_live_tick_s"] = _timed(at.run)

    run_id = specs[1][0]
    at.query_params["id"] = run_id
    at.switch_page("views/run.py").run()
    assert not at.exception, at.exception
    results["run_page_warm_s"] = median_of(at.run)
    at.query_params.clear()
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    results["compare_page_warm_s"] = median_of(at.run)
    at.switch_page("views/jobs.py").run()
    results["jobs_page_warm_s"] = median_of(at.run)

    for key, value in results.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    out = REPO / "bench" / "out" / "bench_dashboard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    target = 1.0
    worst = max(float(results[k]) for k in ("overview_warm_s", "overview_live_tick_s", "run_page_warm_s",
                                           "compare_page_warm_s", "jobs_page_warm_s"))
    print(f"slowest warm page: {worst:.3f} s (target ≤ {target} s): {'OK' if worst <= target else 'OVER'}")
    return 0 if worst <= target else 1


if __name__ == "__main__":
    raise SystemExit(main())
