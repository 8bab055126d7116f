"""Which runs extend which, and whether a running extension has fallen behind its parent.

Both questions have one answer in nnwatch, and the notifier asks it there: the pairing rule of
:mod:`monitor.runs.lineage`, and the parent-vs-extension comparison of :mod:`monitor.analyze` (the rule the
Compare banner and the compare PNG state).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from monitor.analyze import ComparedRun, ExtensionComparison, compare_extension
from monitor.runs import extension_pairs

if TYPE_CHECKING:
    import pandas as pd

    from monitor.watch import RunSnapshot

__all__ = ["fell_behind", "pairs"]


def pairs(table: pd.DataFrame, jobs: Iterable[Any] = ()) -> dict[str, str]:
    """Extended run id → parent run id, as the dashboard pairs them (job registry, then trainer names)."""
    return {child: parent for parent, child, _how in extension_pairs(table, jobs)}


def fell_behind(parent: RunSnapshot, child: RunSnapshot) -> ExtensionComparison | None:
    """The comparison when the running extension is, or is on track to end, behind its parent beyond the
    noise (at least "likely"); None otherwise."""
    compared = [ComparedRun.from_frame(run.run_id, run.frame(), run.summary.planned_epochs, run.status.value)
                for run in (parent, child)]
    comparison = compare_extension(*compared)
    return comparison if comparison.fell_behind else None
