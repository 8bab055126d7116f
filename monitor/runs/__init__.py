"""Runs of a results tree: where they are, what their files say, and one merged series and summary each."""

from monitor.runs.labels import DatasetLabel, dataset_labels
from monitor.runs.layout import RunLocation, discover_runs, locate_run, parse_run_path
from monitor.runs.lineage import ExtensionPair, extension_pairs, extensions_of, parent_of
from monitor.runs.merge import Curves
from monitor.runs.reader import CURVE_COLUMNS, RunReader, curves_frame, load_run
from monitor.runs.resume import CheckpointState, FileSignature, ReaderState, files_signature
from monitor.runs.status import RunAssessment, RunStatus
from monitor.runs.summary import SUMMARY_COLUMNS, RunSummary

__all__ = [
    "CURVE_COLUMNS",
    "SUMMARY_COLUMNS",
    "CheckpointState",
    "Curves",
    "DatasetLabel",
    "ExtensionPair",
    "FileSignature",
    "ReaderState",
    "RunAssessment",
    "RunLocation",
    "RunReader",
    "RunStatus",
    "RunSummary",
    "curves_frame",
    "dataset_labels",
    "discover_runs",
    "extension_pairs",
    "extensions_of",
    "files_signature",
    "load_run",
    "locate_run",
    "parent_of",
    "parse_run_path",
]
