"""The dashboard store's start over a results tree, in-process (no browser, no Streamlit): how long until the
overview can be drawn (``ready``), until every run is checked against its files (``checked``), and until the run
index holds every run; wall and CPU time of this process and its RSS at each point.

With an empty state folder it is a cold start (every run read and judged, the index written after); run it again
with the same ``--state`` for a restart on the index. The tree is one of ``bench/bench_dashboard.py``'s.

Usage::

    .venv/bin/python bench/bench_store_start.py --tree bench/out/dashboard_tree_750x1000 --state /tmp/nnwatch_state
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas  # noqa: F401  (imported by the dashboard before any store: not part of the start)

from app.dashboard.store import RunStore
from app.dashboard.tables import groups_frame, runs_frame
from monitor.index import RunIndex


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, required=True, help="a benchmark tree (holding nnUNet_results)")
    parser.add_argument("--state", type=Path, required=True, help="state folder of the run index")
    args = parser.parse_args()
    root = args.tree / "nnUNet_results"
    args.state.mkdir(parents=True, exist_ok=True)
    cold = not (args.state / "index.sqlite3").exists()
    started, cpu = time.perf_counter(), time.process_time()

    def point(name: str) -> dict[str, float | str]:
        return {"at": name, "wall_s": round(time.perf_counter() - started, 2),
                "cpu_s": round(time.process_time() - cpu, 2), "rss_mb": round(_rss_mb()),
                "loadavg": Path("/proc/loadavg").read_text().split()[0]}

    index = RunIndex(args.state / "index.sqlite3")
    store = RunStore(root, index=index, background=True)
    store.wait_ready()
    points = [point("ready (cold)" if cold else "ready (restart)")]
    table = store.table()
    runs_frame(table, {})
    groups_frame(table)
    points.append(point("overview tables built"))
    store.page_drawn()
    while not store.checked:
        time.sleep(0.05)
    points.append(point("checked"))
    while RunIndex(index.path).info().runs < len(store.table()):
        time.sleep(0.5)
    points.append(point("index holds every run"))
    store.close()
    for item in points:
        print(json.dumps({"runs": len(table), **item}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
