"""Benchmark the real-validation reading and the case-by-case comparison.

Run: ``.venv/bin/python bench/bench_validation.py [--cases 42] [--folds 5] [--repeat 5]``.

What it times, on summaries written by :func:`monitor.synth.validation_summary` into a temporary folder:

* ``read_summary`` of one ``summary.json`` of 1000 cases × 3 classes (nnU-Net's v2 layout, ~1 MB);
* ``crossval_table`` of one configuration of ``--folds`` folds;
* ``compare_model_folders`` of two configurations over ``--folds`` folds of ``--cases`` cases each (the foreground
  mean and every class, 10,000 paired bootstrap resamples each) — what ``nnwatch compare --folds`` computes.

Each figure is the median of ``--repeat`` calls in one process; the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.synth import make_run_dir, validation_summary  # noqa: E402
from monitor.validation import compare_model_folders, crossval_table, read_summary  # noqa: E402


def _median(fn: object, repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeat`` calls (CPU time is what a busy machine does not inflate)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=42, help="validation cases per fold (default 42)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = []
        for trainer, seed, shift in (("nnUNetTrainer", 1, 0.0), ("nnUNetTrainer_2000epochs", 2, 0.004)):
            for fold in range(args.folds):
                folder = make_run_dir(root, "Dataset001_Bench", trainer, fold=fold, labels=("a", "b"))
                content = validation_summary("Dataset001_Bench", fold, (0.85 + shift, 0.7 + shift), cases=args.cases,
                                             seed=seed)
                (folder / "validation").mkdir()
                (folder / "validation" / "summary.json").write_text(json.dumps(content, indent=4))
            models.append(folder.parent)
        big = root / "big_summary.json"
        big.write_text(json.dumps(validation_summary("Dataset001_Bench", 0, (0.8, 0.7, 0.6), cases=1000), indent=4))
        size = big.stat().st_size / 1e6
        read = _median(lambda: read_summary(big), args.repeat)
        table = _median(lambda: crossval_table(models[0]), args.repeat)
        compare = _median(lambda: compare_model_folders(models[0], models[1]), args.repeat)
        result = compare_model_folders(models[0], models[1])
    print(f"read_summary, 1000 cases x 3 classes ({size:.1f} MB): {read[0] * 1000:.1f} ms wall, "
          f"{read[1] * 1000:.1f} ms CPU")
    print(f"crossval_table, {args.folds} folds x {args.cases} cases: {table[0] * 1000:.1f} ms wall, "
          f"{table[1] * 1000:.1f} ms CPU")
    print(f"compare_model_folders, {result.result.cases} cases in {args.folds} folds, fg + 2 classes, "
          f"{result.result.resamples} resamples: {compare[0] * 1000:.1f} ms wall, {compare[1] * 1000:.1f} ms CPU")
    print(f"  -> {result.reason}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
