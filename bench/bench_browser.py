"""What a person waits for in a real browser (Playwright driving Debian's Chromium) on the demo.

Starts a fresh ``nnwatch serve`` of the demo (no root) and measures, at a 1400 × 1000 viewport:

* ``first_chart_cold_s``: from opening a run page on a fresh tab right after the server is up (the server
  has not read the tree yet) to the first Plotly chart drawn;
* ``first_chart_fresh_tab_s``: the same on a second fresh tab of the now warm server (median of ``--repeat``);
* ``plan_first_s``: from pressing "Extend to 2000 epochs" to the dialog's pre-flight checks, the first time on
  this server (``--plan-after`` seconds after the first page, the time a person takes to read the page);
* ``plan_again_s``: the same dialog opened again;
* ``first_chart_floor_s``: the fresh-tab figure for a page holding nothing but one two-point Plotly chart, served by
  plain ``streamlit run`` (median of ``--repeat``): what Streamlit and Plotly take in this browser on this machine
  before any of nnwatch's work, the floor under ``first_chart_fresh_tab_s``;
* ``in_app_chart_floor_s``: in that app, from a click on a link of its freshly loaded start page to its chart page's
  chart drawn (median of ``--repeat``, each in a new tab that drew the chart page once before): the floor under a
  run page opened from the overview (``run_page_from_overview_s`` of ``bench/bench_dashboard.py --browser``).

Each figure comes with the load average when it was taken and the CPU seconds the server (``nnwatch serve``
and its Streamlit child) spent meanwhile, since wall times on a shared machine move with the load.

Usage::

    .venv/bin/python bench/bench_browser.py [--repeat 3] [--plan-after 15] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
PARENT = "Dataset101_Prostate/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_FLOOR_APP = """import plotly.graph_objects as go
import streamlit as st


def chart():
    st.plotly_chart(go.Figure(go.Scatter(x=[0, 1], y=[0.5, 0.7])))


def start():
    st.page_link(chart_page, label="Open the chart")


chart_page = st.Page(chart, title="Chart", url_path="chart")
st.navigation([st.Page(start, title="Start", default=True), chart_page]).run()
"""


def _serve(base: Path, repo: Path, floor: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """``nnwatch serve`` of the demo; ``floor``: plain ``streamlit run`` of a page with one tiny chart instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "NNWATCH_"))}
    env.update(XDG_CACHE_HOME=str(base / "cache"), NNWATCH_STATE=str(base / "state"), PYTHONPATH=str(repo))
    port = _free_port()
    log = (base / "serve.log").open("wb")
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    if floor:
        (base / "floor.py").write_text(_FLOOR_APP)
        argv = [sys.executable, "-m", "streamlit", "run", str(base / "floor.py"), "--server.port", str(port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(argv, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("nnwatch serve did not start: " + (base / "serve.log").read_text()[-2000:])


def _server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the server process and its children (the Streamlit process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class _Sample:
    """Wall time, server CPU and load average of one measured step."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = _server_cpu_s(pid)
        self.started = time.perf_counter()

    def done(self) -> dict[str, float]:
        return {"wall_s": round(time.perf_counter() - self.started, 2),
                "server_cpu_s": round(_server_cpu_s(self.pid) - self.cpu, 2), "load": round(os.getloadavg()[0], 1)}


def _first_chart(browser, url: str, path: str = f"/run?id={quote(PARENT, safe='')}") -> float:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(f"{url}{path}")
    page.locator(".js-plotly-plot .main-svg").first.wait_for(state="visible", timeout=180_000)
    elapsed = time.perf_counter() - started
    context.close()
    return elapsed


def _chart_in_app(browser, url: str) -> float:  # type: ignore[no-untyped-def]
    """From a click on the floor app's link (its start page loaded, no chart drawn yet in the tab) to its chart, in
    a browser that drew the chart page once before and so holds Plotly's script in its cache."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/chart")
    page.locator(".js-plotly-plot .main-svg").first.wait_for(state="visible", timeout=180_000)
    page.goto(url)
    link = page.get_by_role("link", name="Open the chart")
    link.wait_for(timeout=180_000)
    started = time.perf_counter()
    link.click()
    page.locator(".js-plotly-plot .main-svg").first.wait_for(state="visible", timeout=180_000)
    elapsed = time.perf_counter() - started
    context.close()
    return elapsed


def _plan(page) -> float:  # type: ignore[no-untyped-def]
    import re

    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
    started = time.perf_counter()
    page.get_by_role("button", name=re.compile("Extend to 2000 epochs")).click()
    page.get_by_role("dialog").get_by_text("Pre-flight checks").wait_for(state="visible", timeout=300_000)
    elapsed = time.perf_counter() - started
    page.get_by_role("dialog").get_by_role("button", name=re.compile("^Cancel")).click()
    page.get_by_role("dialog").wait_for(state="hidden", timeout=60_000)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh tabs to time on the warm server")
    parser.add_argument("--plan-after", type=float, default=15.0,
                        help="seconds between the first page and the first Extend click")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="serve the dashboard of another checkout (e.g. a worktree of an older commit)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict[str, object] = {"repo": str(args.repo), "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as folder:
        process, url = _serve(Path(folder), args.repo.absolute())
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium)
                sample = _Sample(process.pid)
                results["first_chart_cold_s"] = round(_first_chart(browser, url), 2)
                results["first_chart_cold"] = sample.done()
                samples = []
                for _ in range(args.repeat):
                    sample = _Sample(process.pid)
                    _first_chart(browser, url)
                    samples.append(sample.done())
                tabs = [one["wall_s"] for one in samples]
                results["first_chart_fresh_tab_s"] = round(statistics.median(tabs), 2)
                results["first_chart_fresh_tab_all"] = samples
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.goto(f"{url}/run?id={quote(PARENT, safe='')}")
                page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=180_000)
                time.sleep(max(0.0, args.plan_after))  # the reading time being modelled, not a wait for a condition
                sample = _Sample(process.pid)
                results["plan_first_s"] = round(_plan(page), 2)
                results["plan_first"] = sample.done()
                sample = _Sample(process.pid)
                results["plan_again_s"] = round(_plan(page), 2)
                results["plan_again"] = sample.done()
                browser.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    with tempfile.TemporaryDirectory() as folder:
        process, url = _serve(Path(folder), args.repo.absolute(), floor=True)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium)
                _first_chart(browser, url, "/chart")  # the server's first run, as the warm figures above
                results["first_chart_floor_s"] = round(statistics.median(
                    _first_chart(browser, url, "/chart") for _ in range(args.repeat)), 2)
                results["in_app_chart_floor_s"] = round(statistics.median(
                    _chart_in_app(browser, url) for _ in range(args.repeat)), 2)
                browser.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    results["load_after"] = os.getloadavg()[0]
    for key, value in results.items():
        print(f"{key:28s} {value}")
    out = REPO / "bench" / "out" / f"bench_browser_{args.repo.absolute().name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
