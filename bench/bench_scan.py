"""Cold-scan benchmark: 750 runs × 1000 epochs of v2 logs (~275 MB).

Compares, each as a fresh process reading from the page cache:
  cat       — reading the same bytes and nothing else (the floor);
  baseline  — a straightforward line-by-line regex parser into pandas, as public nnU-Net log tools do;
  nnwatch   — ``nnwatch scan ROOT --format json`` (with and without the analyzer's verdicts), and the
              library call ``monitor.run_table(ROOT)``, which also imports pandas and builds the DataFrame.

and, through the run index (a fresh state folder): ``nnwatch index --rebuild`` (reads every run and stores it),
then ``nnwatch scan`` with the index warm, whose JSON must equal the plain scan's.

Run:  .venv/bin/python bench/bench_scan.py [--runs 750] [--epochs 1000] [--repeat 3]
The tree is generated once under bench/out/ (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from monitor.synth import write_tree  # noqa: E402

BASELINE = r'''
import re, sys
from pathlib import Path
import pandas as pd
EPOCH = re.compile(r": Epoch (\d+)\s*$")
LR = re.compile(r": Current learning rate: ([\d.e+-]+)")
TRAIN = re.compile(r": train_loss ([-\d.e+]+|nan)")
VAL = re.compile(r": val_loss ([-\d.e+]+|nan)")
DICE = re.compile(r": Pseudo dice \[(.*)\]")
TIME = re.compile(r": Epoch time: ([\d.]+) s")
rows_out = []
for log in sorted(Path(sys.argv[1]).rglob("training_log_*.txt")):
    rows, cur = [], {}
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            if m := EPOCH.search(line):
                cur = {"epoch": int(m.group(1))}
            elif m := LR.search(line):
                cur["lr"] = float(m.group(1))
            elif m := TRAIN.search(line):
                cur["train_loss"] = float(m.group(1))
            elif m := VAL.search(line):
                cur["val_loss"] = float(m.group(1))
            elif m := DICE.search(line):
                vals = [float(v.replace("np.float32(", "").replace(")", "")) for v in m.group(1).split(",")]
                cur["mean_fg_dice"] = sum(vals) / len(vals)
                for k, v in enumerate(vals, 1):
                    cur[f"dice_{k}"] = v
            elif m := TIME.search(line):
                cur["epoch_time_s"] = float(m.group(1))
                rows.append(cur)
    df = pd.DataFrame(rows)
    df["ema_fg_dice"] = df["mean_fg_dice"].ewm(alpha=0.1, adjust=False).mean()
    rows_out.append({"run": str(log.parent), "epochs": len(df), "last_ema": df["ema_fg_dice"].iloc[-1]})
print(len(rows_out))
'''


def timed(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return times


def indexed(nnwatch: str, root: Path, repeat: int) -> dict[str, list[float]]:
    """Build a run index in a fresh state folder, then scan with it; its JSON must equal a plain scan's."""
    import tempfile

    env = {**os.environ, "NNWATCH_STATE": tempfile.mkdtemp(prefix="nnwatch_bench_state_")}
    build = timed([nnwatch, "index", "--rebuild", str(root)], 1, env)
    warm = timed([nnwatch, "scan", str(root), "--format", "json"], repeat, env)
    plain = subprocess.run([nnwatch, "scan", str(root), "--format", "json", "--no-index"], env=env, check=True,
                           capture_output=True, text=True).stdout
    through = subprocess.run([nnwatch, "scan", str(root), "--format", "json"], env=env, check=True,
                             capture_output=True, text=True).stdout
    if plain != through:
        raise SystemExit("the scan through the run index differs from the plain scan")
    return {"nnwatch index --rebuild (no index yet)": build, "nnwatch scan, run index warm": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=750)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--index-only", action="store_true",
                        help="only the plain nnwatch scan and the rows through the run index")
    parser.add_argument("--root", type=Path, default=None, help="an existing results tree instead of generating one")
    parser.add_argument("--checkpoints", action="store_true",
                        help="runs with the checkpoints nnU-Net keeps while training (latest and best)")
    args = parser.parse_args()
    root = args.root or HERE / "out" / f"tree_{args.runs}x{args.epochs}{'_checkpoints' if args.checkpoints else ''}"
    if args.root is None and not (root / ".complete").exists():
        print(f"generating {args.runs} runs × {args.epochs} epochs under {root} ...", flush=True)
        write_tree(root, args.runs, args.epochs, planned_epochs=max(1000, args.epochs), checkpoints=args.checkpoints)
        for path in root.rglob("*"):  # written long ago: no run is live, so two scans give the same rows
            os.utime(path, (1.7e9, 1.7e9))
        (root / ".complete").touch()
    logs = sorted(root.rglob("training_log_*.txt"))
    size = sum(p.stat().st_size for p in logs)
    python = sys.executable
    nnwatch = str(Path(python).parent / "nnwatch")
    baseline_file = HERE / "out" / "baseline_parser.py"
    baseline_file.write_text(BASELINE)
    subprocess.run(["cat", *map(str, logs)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    if args.index_only:
        results = {"nnwatch scan (with verdicts)": timed([nnwatch, "scan", str(root), "--format", "json",
                                                          "--no-index"], args.repeat)}
        results.update(indexed(nnwatch, root, args.repeat))
        for name, values in results.items():
            print(f"  {name:40s} best {min(values):6.2f} s   median {statistics.median(values):6.2f} s")
        return
    results = {
        "cat (same bytes)": timed(["cat", *map(str, logs)], args.repeat),
        "baseline: line regex → pandas": timed([python, str(baseline_file), str(root)], args.repeat),
        "nnwatch scan --no-verdicts": timed([nnwatch, "scan", str(root), "--format", "json", "--no-verdicts"],
                                            args.repeat),
        "nnwatch scan (with verdicts)": timed([nnwatch, "scan", str(root), "--format", "json"], args.repeat),
        "monitor.scan() → DataFrame": timed([python, "-c", "import sys; from monitor import scan; "
                                             "print(len(scan(sys.argv[1])))", str(root)], args.repeat),
    }
    results.update(indexed(nnwatch, root, args.repeat))
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"tree: {len(logs)} logs, {size / 1e6:.0f} MB, {args.epochs} epochs each; best of {args.repeat} runs\n")
    best = {name: min(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"  {name:32s} best {best[name]:6.2f} s   median {statistics.median(values):6.2f} s")
    ours = best["nnwatch scan --no-verdicts"]
    print(f"\n  baseline / nnwatch: {best['baseline: line regex → pandas'] / ours:.1f}×;"
          f"  nnwatch / cat: {ours / best['cat (same bytes)']:.1f}×")


if __name__ == "__main__":
    main()
