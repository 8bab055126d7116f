"""Which run extends which: the one pairing rule between a parent run and its longer-schedule extension.

A run is an extension of another when the job registry says so (an extend nnwatch started), or when the
folder names say so, which also catches extensions started by hand: a trainer ``<Parent>_<N>epochs`` with
the same dataset, plans, configuration and fold is a longer schedule of ``<Parent>``
(``nnUNetTrainer_2000epochs`` of ``nnUNetTrainer``), exactly the folder ``nnwatch extend`` creates.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from monitor.runs.layout import split_schedule_suffix

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ExtensionPair", "JobLink", "extension_pairs", "extensions_of", "parent_of"]


class JobLink(Protocol):
    """What the pairing rule needs of a recorded extend job (``trainer.Job`` has these fields)."""

    @property
    def job_id(self) -> str: ...
    @property
    def parent_run_id(self) -> str: ...
    @property
    def new_run_id(self) -> str: ...


class ExtensionPair(NamedTuple):
    """A parent run and its extension, and how the link is known (``job <id>`` or ``trainer name``)."""

    parent_run_id: str
    child_run_id: str
    how: str


def extension_pairs(table: pd.DataFrame, jobs: Iterable[JobLink] = ()) -> list[ExtensionPair]:
    """Every parent → extension pair among the runs of ``table`` (a run table: ``run_id``, ``dataset``,
    ``plans``, ``configuration``, ``fold``, ``trainer``, ``nnunet_version``), sorted by parent then child.

    A job's link wins over the naming rule for the same pair; both only pair runs present in the table.
    """
    if table.empty:
        return []
    present = set(table["run_id"].astype(str))
    pairs: dict[tuple[str, str], str] = {}
    for job in jobs:  # a job that writes into the run it was planned from (a validation, a demo job) links none
        if job.parent_run_id != job.new_run_id and job.parent_run_id in present and job.new_run_id in present:
            pairs.setdefault((job.parent_run_id, job.new_run_id), f"job {job.job_id}")
    v2 = table[table["nnunet_version"] == "v2"]
    columns = (v2[name].astype(str).tolist() for name in ("dataset", "plans", "configuration", "fold", "trainer"))
    keyed = dict(zip(zip(*columns), v2["run_id"].astype(str).tolist()))
    for (dataset, plans, configuration, fold, trainer), run_id in keyed.items():
        schedule = split_schedule_suffix(trainer)
        if schedule is None:
            continue
        parent = keyed.get((dataset, plans, configuration, fold, schedule[0]))
        if parent is not None:
            pairs.setdefault((parent, run_id), "trainer name")
    return [ExtensionPair(parent, child, how) for (parent, child), how in sorted(pairs.items())]


def extensions_of(run_id: str, pairs: Iterable[ExtensionPair]) -> list[ExtensionPair]:
    """The pairs whose parent is ``run_id`` (a run may have been extended to several lengths)."""
    return [pair for pair in pairs if pair.parent_run_id == run_id]


def parent_of(run_id: str, pairs: Iterable[ExtensionPair]) -> ExtensionPair | None:
    """The pair whose extension is ``run_id``, if any."""
    return next((pair for pair in pairs if pair.child_run_id == run_id), None)
