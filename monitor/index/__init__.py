"""A persistent run index: restarts and scans skip reading runs whose files did not change.

``store`` (the SQLite file: signatures, resume state, summaries, verdicts), ``codec`` (rows in JSON and Arrow),
``scan`` (the run table through the index).
"""

from monitor.index.codec import CodecError
from monitor.index.scan import Progress, indexed_scan_rows, read_and_record
from monitor.index.store import INDEX_FILE, IndexedRun, IndexInfo, IndexRecord, RunIndex, StoredRuns, default_index_path

__all__ = [
    "INDEX_FILE",
    "CodecError",
    "IndexInfo",
    "IndexRecord",
    "IndexedRun",
    "Progress",
    "RunIndex",
    "StoredRuns",
    "default_index_path",
    "indexed_scan_rows",
    "read_and_record",
]
