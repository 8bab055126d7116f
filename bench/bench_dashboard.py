"""How long the dashboard's pages take to render on the server over a 750-run results tree (AppTest).

The target is a page over 750 runs in at most 1 s of server time. AppTest runs the real entrypoint (router,
sidebar, page, fragments) in-process, so its wall time is the server's script time without the browser
and network. Measured:

* cold: the first overview of a fresh server (monitor's watcher reads every run once, then every run
  is analysed once);
* warm: the overview, a run page, the compare page and the jobs page once the store is built (median of
  ``--repeat`` runs), which is what every later visitor and every live refresh costs; and the first view of
  each of ``--repeat`` other runs' pages (``run_page_first_s``, median), whose figures are built for it;
* live tick: the overview right after the watcher picked up new epochs appended to ``--live`` running
  logs (only those runs are re-analysed).

With ``--browser`` it measures instead what a person sees, in Chromium (Playwright): a dashboard server is started
and the first visitor's overview is timed until every run is listed (``overview_received_mb``: what the page's
WebSocket brought by then, mostly the two tables), then the first run page after the start, opened from that
overview as a lab member would (``first_run_page_from_overview_s``: the server's first run page too, while it checks
every run against its files), then a run page by URL until its chart is drawn, then the overview again in that tab
(``overview_again_s``: the server has everything cached, so this is mostly the browser's share), then another run's
page opened from the overview (its row selected, then its "Open run" link: ``run_page_from_overview_s``, until its
Dice chart is drawn), then three more runs' pages, each opened the same way after going back to the overview by the
sidebar's link (``run_page_from_overview_again_s``, median: the tab has drawn a chart before), with the server's RSS
and CPU time after each; with ``--idle N``, the server's CPU over N seconds with the overview left open once every
run is saved (``server_cpu_pct_overview_open``: its live refreshes and the watcher's ticks).
Three starts: ``--base`` (another checkout, e.g. main, for the figure before), this checkout with an empty state
folder (no run index: a cold start, with its progress bar), and this checkout again once that start has saved the
run index (a restart; ``--restarts`` of them).
Each start is a new visitor with an empty browser cache, unless ``--returning``: then one browser visits every
start and keeps Streamlit's and Plotly's scripts (served as immutable, hashed files) cached from the start before,
as the browser of a lab member who opened the dashboard before its restart does.
``--state`` keeps the state folder between invocations: one that holds a run index skips the cold start.

Usage::

    .venv/bin/python bench/bench_dashboard.py [--runs 750] [--epochs 1000] [--repeat 7] [--tree DIR] [--checkpoints]
    .venv/bin/python bench/bench_dashboard.py --browser [--base DIR] [--runs 750] [--epochs 1000] [--state DIR]
        [--restarts N] [--returning] [--idle SECONDS]

The tree is generated once into ``bench/out/dashboard_tree_<runs>x<epochs>[_checkpoints]`` (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import contextlib
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


def build_tree(root: Path, n_runs: int, epochs: int, checkpoints: bool = False) -> list[tuple[str, RunSpec]]:
    """``n_runs`` fold folders: datasets × 3 configurations × 5 folds, 2 % running, 5 % crashed; with
    ``checkpoints``, each with the checkpoints nnU-Net leaves."""
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
                       state=state, ended_ago_s=86400.0 * (1 + index % 30), checkpoints=checkpoints)
        run_dir = root / dataset / f"nnUNetTrainer__nnUNetPlans__{CONFIGS[config_no]}" / f"fold_{fold}"
        if not run_dir.exists():
            write_run(root, spec, now=now, labels=("organ", "lesion"))
        specs.append((run_dir.relative_to(root).as_posix(), spec))
    return specs


def _timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (a figure that a loaded machine does not inflate much)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _browser_start(page, repo: Path, root: Path, state: Path, n_runs: int, run_id: str,  # type: ignore[no-untyped-def]
                   label: str, idle_s: float = 0.0) -> dict[str, float | str | bool]:
    """Start a server of the checkout ``repo``, then time the first overview and a run page in the browser;
    ``idle_s``: then, with the overview open and every run saved, the server's CPU over that many seconds."""
    import subprocess

    port = _free_port()
    env = {**os.environ, "NNWATCH_ROOT": str(root), "NNWATCH_STATE": str(state), "NNWATCH_HOST": "127.0.0.1",
           "NNWATCH_JOBS_DB": str(state / "jobs.sqlite3"), "PYTHONPATH": str(repo)}
    # what ``nnwatch serve`` of that checkout runs (older checkouts start Streamlit directly)
    entry = "app.dashboard.server" if (repo / "app" / "dashboard" / "server.py").exists() else "streamlit"
    argv = [sys.executable, "-m", entry, "run", str(repo / "app" / "dashboard" / "main.py"),
            "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false"]
    started = time.perf_counter()
    server = subprocess.Popen(argv, env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import socket

        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.perf_counter() - started > 120:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        up = time.perf_counter()
        received: list[int] = []  # the WebSocket messages' sizes: the tables' payload, mostly
        page.on("websocket", lambda socket: socket.on(
            "framereceived", lambda frame: received.append(len(frame) if frame else 0)))
        page.goto(f"http://127.0.0.1:{port}/")
        progress_seen = False
        deadline = time.monotonic() + 600
        listed = page.get_by_text(f"{n_runs} runs ·")
        table = page.locator('[data-testid="stDataFrame"]')
        while not (listed.count() and table.count()):
            progress_seen |= bool(page.locator('[data-testid="stProgress"]').count())
            if time.monotonic() > deadline:
                page.screenshot(path=str(REPO / "bench" / "out" / "overview_timeout.png"))
                raise RuntimeError(f"{label}: the overview did not list every run within 600 s")
            page.wait_for_timeout(50)
        shown = time.perf_counter()
        result: dict[str, float | str | bool] = {
            "start": label, "server_up_s": up - started, "first_overview_s": shown - up,
            "first_overview_from_launch_s": shown - started, "progress_bar_seen": progress_seen,
            "overview_received_mb": sum(received) / 2**20, "overview_largest_message_mb": max(received) / 2**20,
            "server_cpu_s": _cpu_s(server.pid), "rss_after_overview_mb": _rss_mb(server.pid),
            "loadavg": Path("/proc/loadavg").read_text().split()[0]}
        result["first_run_page_from_overview_s"] = _open_from_overview(page, row=2)
        before = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/run?id={run_id}")
        try:
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=300_000)
        except Exception:
            page.screenshot(path=str(REPO / "bench" / "out" / "run_page_timeout.png"))
            raise
        result["run_page_s"] = time.perf_counter() - before
        result["rss_after_run_page_mb"] = _rss_mb(server.pid)
        before = time.perf_counter()  # the overview again, everything warm: what drawing it costs the browser
        page.goto(f"http://127.0.0.1:{port}/")
        listed.wait_for(timeout=300_000)
        table.first.wait_for(timeout=300_000)
        result["overview_again_s"] = time.perf_counter() - before
        result["run_page_from_overview_s"] = _open_from_overview(page, row=3)
        again = []
        for row in (4, 5, 6):  # back to the overview by the sidebar's link, then the next row's run
            page.get_by_role("link", name="Overview").click()
            page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
            table.nth(1).wait_for(timeout=60_000)
            again.append(_open_from_overview(page, row=row))
        result["run_page_from_overview_again_s"] = statistics.median(again)
        index = state / "index.sqlite3"
        if index.exists():  # let the server save every run before it is stopped
            while _index_runs(index) < n_runs and time.monotonic() < deadline:
                time.sleep(0.5)
            result["index_runs"] = _index_runs(index)
            result["index_mb"] = sum(f.stat().st_size for f in (index, index.with_name(index.name + "-wal"))
                                     if f.exists()) / 2**20
        if idle_s > 0:  # a lab member's tab left open on the overview: its live refreshes, the watcher's ticks
            page.get_by_role("link", name="Overview").click()
            table.nth(1).wait_for(timeout=60_000)
            page.get_by_text("checking the runs against their files").wait_for(state="hidden", timeout=300_000)
            page.wait_for_timeout(5_000)
            cpu, before = _cpu_s(server.pid), time.perf_counter()
            page.wait_for_timeout(idle_s * 1000)
            result["server_cpu_pct_overview_open"] = 100 * (_cpu_s(server.pid) - cpu) / (time.perf_counter() - before)
        return result
    finally:
        server.terminate()
        server.wait(timeout=60)


def _index_runs(path: Path) -> int:
    """Rows in a run index, read only: opened by this checkout's code, an index of another checkout (other
    reading rules) would be rebuilt under its server."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def _open_from_overview(page, row: int) -> float:  # type: ignore[no-untyped-def]
    """Select the runs table's ``row``-th run, then time its "Open run" link until the Dice chart is drawn: a
    run page reached inside the dashboard, which loads no page and no script again."""
    runs = page.locator('[data-testid="stDataFrame"]').nth(1)
    runs.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the table's canvas takes clicks once drawn
    box = runs.bounding_box()
    page.mouse.click(box["x"] + 12, box["y"] + 35 * (row + 1) + 17)  # the row's selection cell
    link = page.get_by_role("link", name="Open run")
    link.wait_for(timeout=60_000)
    before = time.perf_counter()
    link.click()
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=60_000)
    return time.perf_counter() - before


def browser_main(args: argparse.Namespace, root: Path, specs: list[tuple[str, RunSpec]]) -> int:
    from playwright.sync_api import sync_playwright

    run_id = specs[1][0]
    state = args.state or Path(tempfile.mkdtemp(prefix="nnwatch_state_"))
    state.mkdir(parents=True, exist_ok=True)
    starts: list[tuple[Path, Path, str]] = []
    if args.base is not None:
        starts.append((args.base.resolve(), Path(tempfile.mkdtemp(prefix="nnwatch_base_state_")), "base checkout"))
    if not (args.state and (state / "index.sqlite3").exists()):
        starts.append((REPO, state, "no run index (cold)"))
    starts += [(REPO, state, "run index warm (restart)")] * args.restarts
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        kept = browser.new_context(viewport={"width": 1600, "height": 1400}) if args.returning else None
        for number, (repo, state_dir, label) in enumerate(starts):
            context = kept or browser.new_context(viewport={"width": 1600, "height": 1400})
            page = context.new_page()
            result = _browser_start(page, repo, root, state_dir, len(specs), run_id, label, args.idle)
            result["browser_cache"] = "kept from the start before" if kept and number else "empty"
            page.close()
            if context is not kept:
                context.close()
            results.append(result)
            print(json.dumps(result), flush=True)
        browser.close()
    out = REPO / "bench" / "out" / "bench_dashboard_browser.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=750)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--live", type=int, default=10, help="running logs to append an epoch to")
    parser.add_argument("--tree", type=Path, default=None)
    parser.add_argument("--checkpoints", action="store_true",
                        help="runs with the checkpoints nnU-Net leaves (final or latest, and best), in a tree of "
                             "their own")
    parser.add_argument("--browser", action="store_true", help="time server starts in Chromium (see above)")
    parser.add_argument("--base", type=Path, default=None, help="with --browser: another checkout to time first")
    parser.add_argument("--state", type=Path, default=None,
                        help="with --browser: the state folder to use; one holding a run index skips the cold start")
    parser.add_argument("--restarts", type=int, default=1, help="with --browser: restarts on the run index to time")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="with --browser: the server's CPU over this many seconds with the overview open, once "
                             "every run is saved (0: not measured)")
    parser.add_argument("--returning", action="store_true",
                        help="with --browser: one browser for every start, so it keeps the dashboard's scripts "
                             "cached from the start before, as a returning visitor's browser does")
    args = parser.parse_args()

    tree = args.tree or REPO / "bench" / "out" / \
        f"dashboard_tree_{args.runs}x{args.epochs}{'_checkpoints' if args.checkpoints else ''}"
    root = tree / "nnUNet_results"
    started = time.perf_counter()
    specs = build_tree(root, args.runs, args.epochs, args.checkpoints)
    print(f"tree: {len(specs)} runs × {args.epochs} epochs at {root} ({time.perf_counter() - started:.1f} s to "
          "generate or check)", flush=True)
    # Running runs must look fresh: touch their logs (a real trainer would be writing them).
    running = [(run_id, spec) for run_id, spec in specs if spec.state == "running"]
    for run_id, _ in running:
        for log in (root / run_id).glob("training_log_*.txt"):
            os.utime(log)

    if args.browser:
        return browser_main(args, root, specs)

    jobs_db = Path(tempfile.mkdtemp()) / "jobs.sqlite3"
    os.environ.update(NNWATCH_ROOT=str(root), NNWATCH_HOST="127.0.0.1", NNWATCH_JOBS_DB=str(jobs_db),
                      NNWATCH_STATE=str(jobs_db.parent))
    from streamlit.testing.v1 import AppTest

    from app.dashboard.resources import _store

    results: dict[str, float | int] = {"runs": len(specs), "epochs": args.epochs, "cpus": os.cpu_count() or 0}

    at = AppTest.from_file(MAIN, default_timeout=600)

    def first_overview() -> None:  # a cold start draws a progress bar first: run again until the table is there
        at.run()
        while not any("Open" in df.value.columns for df in at.dataframe):
            _store(str(root), True).wait_ready(1.0)
            at.run()

    results["overview_cold_s"] = _timed(first_overview)
    assert not at.exception, at.exception
    rows = next(df.value for df in at.dataframe if "Open" in df.value.columns)
    assert len(rows) == len(specs), (len(rows), len(specs))
    store = _store(str(root), True)
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

    def first_view(other: str) -> float:  # a run no one opened yet: its figures are built for this view
        at.query_params["id"] = other
        return _timed(at.run)

    results["run_page_first_s"] = statistics.median(first_view(other) for other, _ in specs[2: 2 + args.repeat])
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
                                           "run_page_first_s", "compare_page_warm_s", "jobs_page_warm_s"))
    print(f"slowest warm page: {worst:.3f} s (target ≤ {target} s): {'OK' if worst <= target else 'OVER'}")
    return 0 if worst <= target else 1


if __name__ == "__main__":
    raise SystemExit(main())
