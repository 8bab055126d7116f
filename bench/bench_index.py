"""The run index's storage choices, measured on one 1000-epoch run (``monitor.synth``), and its per-run costs.

* How to store a run's parsed rows (the reader state's arrays) in SQLite: an Arrow IPC stream (uncompressed,
  LZ4, Zstandard), a Parquet file (Snappy, Zstandard), or numpy's ``.npz``; size, encode and decode time.
* Per run, from an index of ``--runs`` runs: the lookup of an unchanged run (signature, summary, status inputs:
  what a restart and a scan do), and loading its reader state (what a page drawing its curves does).

Run:  .venv/bin/python bench/bench_index.py [--runs 200] [--epochs 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from monitor.index import RunIndex, indexed_scan_rows
from monitor.runs import discover_runs, files_signature, load_run
from monitor.synth import write_tree


def _median_ms(action, repeat: int = 50) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def formats(table: pa.Table) -> None:
    def arrow(compression: str | None):  # type: ignore[no-untyped-def]
        def encode() -> bytes:
            sink = pa.BufferOutputStream()
            with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression=compression)) as w:
                w.write_table(table)
            return bytes(sink.getvalue().to_pybytes())
        return encode, lambda blob: ipc.open_stream(pa.py_buffer(blob)).read_all()

    def parquet(compression: str):  # type: ignore[no-untyped-def]
        def encode() -> bytes:
            sink = io.BytesIO()
            pq.write_table(table, sink, compression=compression)
            return sink.getvalue()
        return encode, lambda blob: pq.read_table(io.BytesIO(blob))

    def npz():  # type: ignore[no-untyped-def]
        columns = {name: table.column(name).to_numpy() for name in table.column_names}

        def encode() -> bytes:
            sink = io.BytesIO()
            np.savez(sink, **columns)
            return sink.getvalue()
        return encode, lambda blob: dict(np.load(io.BytesIO(blob)))

    options = {"Arrow IPC": arrow(None), "Arrow IPC, LZ4": arrow("lz4"), "Arrow IPC, Zstandard": arrow("zstd"),
               "Parquet, Snappy": parquet("snappy"), "Parquet, Zstandard": parquet("zstd"), "numpy .npz": npz()}
    print(f"one run's rows: {table.num_rows} epochs × {table.num_columns} columns")
    for name, (encode, decode) in options.items():
        blob = encode()
        print(f"  {name:22s} {len(blob) / 1024:7.1f} KiB   encode {_median_ms(encode):6.3f} ms   "
              f"decode {_median_ms(lambda d=decode, b=blob: d(b)):6.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    base = Path(tempfile.mkdtemp(prefix="nnwatch_bench_index_"))
    root = base / "results"
    write_tree(root, args.runs, args.epochs)
    reader = load_run(discover_runs(root)[0].path, root)
    rows = reader.state().logs[0].rows
    columns = {"epoch": rows.epoch, "session": rows.session, "lr": rows.lr, "train_loss": rows.train_loss,
               "val_loss": rows.val_loss, "epoch_time_s": rows.epoch_time_s,
               "epoch_end": rows.epoch_end.view(np.int64)}
    for k in range(rows.dice.shape[1]):
        columns[f"dice_{k + 1}"] = rows.dice[:, k]
    formats(pa.table(columns))

    index = RunIndex(base / "index.sqlite3")
    started = time.perf_counter()
    indexed_scan_rows([root], index, verdicts=True)
    print(f"\nindex of {args.runs} runs built by a scan in {time.perf_counter() - started:.1f} s; "
          f"{index.info().size_bytes / 2**20 / args.runs * 1024:.0f} KiB per run")
    locations = discover_runs(root)
    signatures = [files_signature(location) for location in locations]
    lookup = _median_ms(lambda: [index.lookup(loc, sig) for loc, sig in zip(locations, signatures)], 5)
    state = _median_ms(lambda: [index.load_state(loc) for loc in locations], 5)
    print(f"per run: lookup of an unchanged run {lookup / len(locations):.3f} ms; "
          f"loading its reader state {state / len(locations):.3f} ms")


if __name__ == "__main__":
    main()
