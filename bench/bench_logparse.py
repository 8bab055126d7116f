"""Parse time of one nnU-Net v2 training log, with the compiled pass and as an install without a C compiler.

Run: ``.venv/bin/python bench/bench_logparse.py [--epochs 1000 2000] [--repeat 20]``.
Each log is written in memory by :mod:`monitor.synth` (3 classes, nnU-Net's exact line format) and read whole
by ``LogParser().feed``; the median CPU time of ``--repeat`` calls is printed for each reader (CPU time: wall
time on a shared machine varies with its load).  Without a compiler the Python line reader of
``monitor.logs.v2`` does the work that ``_v2log.c`` does otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import timedelta

from monitor.logs import LogParser, v2
from monitor.synth import START, v2_epoch


def log_text(epochs: int) -> bytes:
    lines: list[str] = []
    for epoch in range(epochs):
        at = START + timedelta(seconds=100 * epoch)
        lines += v2_epoch(epoch, at, lr=0.01 * (1 - epoch / epochs) ** 0.9, train=-0.5 - epoch / epochs,
                          val=-0.4 - epoch / epochs, dice=[0.8, 0.7, 0.6], seconds=99.5)
    return "".join(lines).encode()


def median_ms(data: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.process_time()
        rows = LogParser().feed(data, eof_is_final=True).rows
        times.append(time.process_time() - began)
    assert len(rows) > 0
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} logical CPUs, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    compiled = v2._compiled
    for epochs in args.epochs:
        data = log_text(epochs)
        fast = median_ms(data, args.repeat) if compiled is not None else float("nan")
        v2._compiled = None
        try:
            plain = median_ms(data, args.repeat)
        finally:
            v2._compiled = compiled
        print(f"{epochs} epochs ({len(data) / 2**20:.2f} MiB): compiled pass {fast:.2f} ms, "
              f"without a C compiler {plain:.2f} ms")


if __name__ == "__main__":
    main()
