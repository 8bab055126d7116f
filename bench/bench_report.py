"""Benchmark the PNG reports: cold first call, warm per report, 100 reports, and matplotlib vs plotly+kaleido.

Run: ``.venv/bin/python bench/bench_report.py [--runs 100] [--repeat 15] [--plotly] [--docs-images docs/img]``.

Why: the targets are ≤ 0.5 s per warm run report and ≤ 30 s for 100 run reports, and for the renderer
(matplotlib Agg or plotly + kaleido) to be chosen by measurement. What it does:

* writes a synthetic results tree into a temporary folder (removed at the end): ``--runs`` runs of 1000
  epochs and 3 classes, as 5-fold groups, with real nnU-Net v2 log text (:mod:`monitor.synth`);
* **cold**: a fresh ``python`` process imports :mod:`monitor.report.render` and renders one run (what a CLI call
  costs), timed inside that process;
* **warm**: the median of ``--repeat`` calls of ``render_run_report(run_dir)`` in one process (reading the
  log, the analyzer and rendering), and the same split into load / draw+encode;
* **100 reports**: ``render_run_report`` over every run in one process, and ``write_all_reports`` (run
  reports plus one per fold group) with its default worker processes;
* ``--plotly``: the same four panels built with plotly and exported through one persistent kaleido browser
  (``kaleido.start_sync_server()``), cold (browser start + first export, fresh process) and warm.

Wall-clock numbers on a shared machine vary with what else runs; the load average is printed before and
after so a reader can judge, and CPU time of this process is printed beside the warm wall time.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.synth import CurveSpec, RunSpec, write_folds, write_run  # noqa: E402


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}"


def load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def build_tree(root: Path, runs: int) -> list[Path]:
    """``runs`` 1000-epoch 3-class runs, as groups of 5 folds (the last group may be smaller)."""
    paths: list[Path] = []
    group = 0
    while len(paths) < runs:
        folds = min(5, runs - len(paths))
        paths += write_folds(root, f"Dataset{100 + group:03d}_Bench", "3d_fullres", [1000] * folds,
                             labels=("liver", "tumour", "vessel"), seed=group * 7)
        group += 1
    return paths


COLD_SNIPPET = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from monitor.report.render import render_run_report
t1 = time.perf_counter()
png = render_run_report({run!r})
t2 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}} {{t2 - t0:.3f}}")
"""


def cold(run: Path) -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, "-c", COLD_SNIPPET.format(root=str(ROOT), run=str(run))],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def warm(run: Path, repeat: int) -> dict[str, float]:
    from monitor.report.data import load_run_data
    from monitor.report.render import render_run_report, run_report_png
    from monitor.report.style import ReportOptions

    render_run_report(run)
    walls, cpus, loads, draws = [], [], [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        render_run_report(run)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        t0 = time.perf_counter()
        data = load_run_data(run)
        t1 = time.perf_counter()
        run_report_png(data, ReportOptions())
        loads.append(t1 - t0)
        draws.append(time.perf_counter() - t1)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "load": statistics.median(loads),
            "draw": statistics.median(draws), "max": max(walls)}


def hundred(paths: list[Path], root: Path, out: Path) -> tuple[float, float, int]:
    from monitor.report.render import render_run_report, write_all_reports

    t0 = time.perf_counter()
    for path in paths:
        render_run_report(path)
    serial = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = write_all_reports(root, out)
    parallel = time.perf_counter() - t1
    return serial, parallel, len(result.written)


PLOTLY_SNIPPET = """
import sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
t0 = time.perf_counter()
import kaleido
kaleido.start_sync_server(silence_warnings=True)
from bench_report import plotly_png, tree_cpu_seconds
t1 = time.perf_counter()
plotly_png({run!r})
t2 = time.perf_counter()
walls = []
cpu0 = tree_cpu_seconds()
for _ in range({repeat}):
    w = time.perf_counter(); plotly_png({run!r}); walls.append(time.perf_counter() - w)
cpu = (tree_cpu_seconds() - cpu0) / {repeat}
walls.sort()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}} {{walls[len(walls) // 2]:.3f}} {{cpu:.3f}}")
kaleido.stop_sync_server(silence_warnings=True)
"""


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and all its live descendants (Chromium's processes for kaleido), from /proc.

    Wall time on a shared machine says little; the browser's CPU is where plotly's export work happens,
    and ``os.times()`` only counts children that have exited.
    """
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def plotly_png(run: str) -> bytes:
    """The run report's four panels and title in plotly, exported by kaleido: the alternative measured."""
    import warnings

    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    from monitor.report.data import load_run_data
    from monitor.report.panels import ema

    data = load_run_data(run)
    x = data.epoch
    fig = make_subplots(rows=2, cols=3, specs=[[{"colspan": 3}, None, None], [{}, {}, {}]],
                        row_heights=[0.58, 0.42], subplot_titles=("Validation pseudo Dice", "Loss", "Learning rate",
                                                                  "Epoch time (s)"))
    colours = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")
    for k, (column, name) in enumerate(zip(data.dice_columns, data.class_names)):
        y = data.column(column)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", opacity=0.28, line={"color": colours[k]},
                                 showlegend=False), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=ema(y, 20), mode="lines", name=name, line={"color": colours[k]}), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=data.column("mean_fg_dice"), mode="lines", name="mean",
                             line={"color": "#5F5F5F"}), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=data.column("ema_fg_dice"), mode="lines", name="EMA",
                             line={"color": "black", "width": 3}), 1, 1)
    if data.analysis.window is not None:
        fig.add_vrect(x0=data.analysis.window[0], x1=data.analysis.window[1], fillcolor="#E8E8E8", line_width=0,
                      layer="below", row=1, col=1)
    for k, column in enumerate(("train_loss", "val_loss")):
        y = data.column(column)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", opacity=0.28, line={"color": colours[k]},
                                 showlegend=False), 2, 1)
        fig.add_trace(go.Scatter(x=x, y=ema(y, 20), mode="lines", line={"color": colours[k]}, showlegend=False),
                      2, 1)
    fig.add_trace(go.Scatter(x=x, y=data.column("lr"), mode="lines", showlegend=False), 2, 2)
    fig.update_yaxes(type="log", row=2, col=2)
    fig.add_trace(go.Scatter(x=x, y=data.column("epoch_time_s"), mode="lines", showlegend=False), 2, 3)
    fig.update_layout(template="plotly_white", title=f"{data.summary['dataset']} · {data.summary['trainer']}",
                      font={"size": 15})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pio.to_image(fig, format="png", width=1600, height=1000)


def plotly_numbers(run: Path, repeat: int) -> tuple[float, float, float, float] | None:
    if shutil.which("chromium") is None and shutil.which("google-chrome") is None:
        print("plotly+kaleido: skipped (no chromium; `apt-get install -y chromium`)")
        return None
    code = PLOTLY_SNIPPET.format(root=str(ROOT), bench=str(ROOT / "bench"), run=str(run), repeat=repeat)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), float(out[3])


def docs_images(folder: Path, tmp: Path) -> None:
    """The example images of docs/reports.md, palette-quantised so each stays well under 250 KB."""
    from PIL import Image

    from monitor.report.render import render_compare_report, render_dataset_report, render_run_report

    root = tmp / "docs_tree"
    labels = ("liver", "tumour", "vessel")
    liver = "Dataset003_Liver"
    normal, crashed, extended = (write_run(root, spec, labels=labels).folder for spec in (
        RunSpec(liver, "nnUNetTrainer", "3d_fullres", 0, 1000, CurveSpec((0.85, 0.63, 0.78), 0.06, seed=3)),
        RunSpec(liver, "nnUNetTrainer", "2d", 1, 1000, CurveSpec((0.85, 0.63, 0.78), 0.06, seed=4), epochs_done=412,
                state="crashed"),
        RunSpec(liver, "nnUNetTrainer_2000epochs", "3d_fullres", 0, 2000, CurveSpec((0.86, 0.64, 0.79), 0.03, seed=5))))
    write_folds(root, "Dataset004_Hippocampus", "3d_fullres", [1000, 1000, 1000, 640, 1000])
    images = {
        "report_run.png": render_run_report(normal),
        "report_run_crashed.png": render_run_report(crashed),
        "report_dataset.png": render_dataset_report(root, "Dataset004_Hippocampus", "3d_fullres"),
        "report_compare.png": render_compare_report(normal, extended),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in images.items():
        image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        image.save(folder / name, optimize=True)
        print(f"wrote {folder / name} ({(folder / name).stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--plotly", action="store_true", help="also measure plotly + kaleido (needs chromium)")
    parser.add_argument("--docs-images", type=Path, help="write the docs' example images into this folder")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average before: {load()} (shared machine: other jobs run beside this)")
    tmp = Path(tempfile.mkdtemp(prefix="nnwatch-bench-report-"))
    try:
        if args.docs_images:
            docs_images(args.docs_images, tmp)
            return
        paths = build_tree(tmp / "tree", args.runs)
        imports, first, total = cold(paths[0])
        print(f"cold (fresh process): import {imports:.2f} s + first report {first:.2f} s = {total:.2f} s")
        w = warm(paths[0], args.repeat)
        print(f"warm run report (1000 epochs, 3 classes, 1600x1000): median {w['wall']:.3f} s wall "
              f"({w['cpu']:.3f} s CPU), worst {w['max']:.3f} s; of which load+analyze {w['load']:.3f} s, "
              f"draw+encode {w['draw']:.3f} s")
        serial, parallel, written = hundred(paths, tmp / "tree", tmp / "out")
        print(f"{len(paths)} run reports, one process: {serial:.1f} s ({serial / len(paths):.3f} s each)")
        print(f"write_all_reports ({written} files: runs + fold groups, default workers): {parallel:.1f} s")
        if args.plotly:
            numbers = plotly_numbers(paths[0], args.repeat)
            if numbers is not None:
                start, first_p, warm_p, cpu_p = numbers
                print(f"plotly+kaleido: start browser {start:.2f} s + first export {first_p:.2f} s; "
                      f"warm median {warm_p:.3f} s per report ({cpu_p:.3f} s CPU, Python + Chromium)")
        print(f"load average after: {load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
