"""Benchmark the live watcher (``monitor.watch.watcher.ResultsWatcher``) on a lab-sized results tree.

Run: ``.venv/bin/python bench/bench_watch.py [--runs 750] [--epochs 1000] [--samples 40] [--idle-s 20]
[--polls 1,5] [--checkpoints]``.

Why: the requirement is that an epoch appended to one of 750 watched 1000-epoch runs reaches the UI as an
``epoch`` event within 300 ms (p95) with inotify and within the polling interval + 100 ms with polling; that
the work per append is proportional to the appended bytes, not to the log's length; and that an idle watcher
over 750 runs costs at most 1 % of one core with inotify.

What it does: writes a tree of ``--runs`` unfinished runs of ``--epochs`` epochs each with
``monitor.synth`` (nnU-Net v2's exact log format, one ``open/append/close`` per line as
``print_to_log_file`` does) into a temporary directory (removed at the end), then for inotify and each
polling interval:

* start-up: wall time until every run is read once (the initial ``run_added`` events);
* idle CPU: this process's CPU time (all threads: watchdog's, the worker) over ``--idle-s`` seconds of
  no writes, from 2 s (polling: 2 s plus one interval) after start-up, as a percentage of one core;
* latency: ``--samples`` times, pick a random run, write an epoch line by line, and time from the return of
  the write that completes the epoch (``Epoch time: ...``) to the moment ``changes_since`` hands the
  ``epoch`` event to this thread (a consumer's view, wake-up included). Samples are spaced by a random
  pause so polling phases are sampled evenly.

And, without threads, the CPU cost of one appended epoch for a 1000-epoch and a 10-epoch log: the reader's
``refresh()`` alone (what reads and parses), and the watcher's whole per-append work (refresh, merge,
summary row, events). The machine is reported with its load average: these numbers were taken on a shared
2-core machine and move with what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.runs.layout import discover_runs
from monitor.runs.reader import RunReader
from monitor.synth import FakeRun, make_run_dir, write_tree
from monitor.watch.watcher import ResultsWatcher


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure_watcher(root: Path, runs: list[FakeRun], poll: float | None, samples: int, idle_s: float) -> dict:
    label = "inotify" if poll is None else f"polling {poll:g} s"
    started = time.perf_counter()
    watcher = ResultsWatcher(root, poll=poll).start()
    startup_s = time.perf_counter() - started
    try:
        assert watcher.observer.kind == ("inotify" if poll is None else "polling"), watcher.observer
        assert len(watcher.snapshot().runs) == len(runs)
        version = watcher.version
        time.sleep(2.0 + (poll or 0.0))  # past the first poll after start-up, which sets up what later ones reuse
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(idle_s)
        idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100
        version = watcher.version
        latencies = []
        rng = random.Random(0)
        for _ in range(samples):
            time.sleep(rng.uniform(0.05, poll if poll else 0.2))
            run = rng.choice(runs)
            rid = run.folder.relative_to(root).as_posix()
            run.begin_epoch()
            run.end_epoch()  # returns after the "Epoch time" line is written and the file closed
            written = time.perf_counter()
            expected = run.next_epoch - 1
            while True:
                changes = watcher.changes_since(version, timeout=30)
                assert changes.events is not None
                version = changes.version
                if any(e.kind == "epoch" and e.run_id == rid and e.data["epoch"] == expected for e in changes.events):
                    latencies.append((time.perf_counter() - written) * 1000)
                    break
                if time.perf_counter() - written > 30:
                    raise RuntimeError(f"{label}: no epoch event for {rid} within 30 s")
    finally:
        watcher.stop()
    return {"label": label, "startup_s": startup_s, "idle_cpu_pct": idle_cpu, "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95), "max_ms": max(latencies), "n": len(latencies)}


def append_cost(base: Path, history: int, repeats: int) -> tuple[float, float]:
    """Median CPU seconds of one appended epoch: reader.refresh() alone, and the watcher's whole handling."""
    root = base / f"cost_{history}"
    run = FakeRun(make_run_dir(root), planned_epochs=2000)
    run.start_session()
    run.history(history)
    location = discover_runs(root)[0]
    reader = RunReader(location)
    reader.refresh()
    reader.curves()
    watcher = ResultsWatcher(root)  # not started: its worker steps are called synchronously here
    watcher._add(location)
    refresh_s, pipeline_s = [], []
    for _ in range(repeats):
        run.epoch()
        t = time.process_time()
        reader.refresh()
        refresh_s.append(time.process_time() - t)
        reader.curves()
        t = time.process_time()
        watcher._refresh(location.run_id)
        pipeline_s.append(time.process_time() - t)
    return statistics.median(refresh_s), statistics.median(pipeline_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=750)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=40, help="latency samples with inotify (half per poll)")
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--polls", default="1,5", help="polling intervals to measure, comma-separated")
    parser.add_argument("--checkpoints", action="store_true",
                        help="runs with the checkpoints nnU-Net keeps while training (best, and latest from 50 epochs)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start (shared machine)")
    base = Path(tempfile.mkdtemp(prefix="nnwatch_bench_watch_"))
    try:
        t = time.perf_counter()
        root = base / "results"
        runs = write_tree(root, args.runs, args.epochs, checkpoints=args.checkpoints)
        size_mb = sum(r.log_path.stat().st_size for r in runs if r.log_path) / 1e6
        print(f"tree: {args.runs} runs x {args.epochs} epochs, {size_mb:.0f} MB of logs, written in "
              f"{time.perf_counter() - t:.1f} s")
        for history in (1000, 10):
            refresh_s, pipeline_s = append_cost(base, history, repeats=60)
            print(f"one appended epoch, {history:>4}-epoch log: reader.refresh() {refresh_s * 1e3:.3f} ms CPU; "
                  f"watcher's whole handling (refresh, merge, summary, events) {pipeline_s * 1e3:.3f} ms CPU")
        polls: list[float | None] = [None] + [float(p) for p in args.polls.split(",") if p]
        for poll in polls:
            samples = args.samples if poll is None else max(5, args.samples // 2)
            result = measure_watcher(root, runs, poll, samples, args.idle_s)
            print(f"{result['label']:>13}: start-up {result['startup_s']:.1f} s; "
                  f"idle CPU {result['idle_cpu_pct']:.2f} % of one core over {args.idle_s:g} s; "
                  f"append->epoch event p50 {result['p50_ms']:.0f} ms, "
                  f"p95 {result['p95_ms']:.0f} ms, max {result['max_ms']:.0f} ms (n={result['n']}); "
                  f"load average now {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
