"""The analyzer applied to a run as read from disk: the one call the CLI, scan and dashboard share.

``analyze`` works on a bare DataFrame; this module supplies what it needs to know about the run
(planned epochs, whether training finished or is still running) from the run's reader.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from monitor.run import RunReader, load_run
from monitor.status import RunStatus

if TYPE_CHECKING:
    from monitor.analyze import Analysis, AnalyzerOptions

__all__ = ["analyze_run"]


def analyze_run(run: RunReader | str | os.PathLike[str], options: AnalyzerOptions | None = None,
                *, status: str | None = None) -> Analysis:
    """The analyzer's typed result for one run (a reader, or a fold folder to read).

    ``status`` may be passed by a caller that knows better than the files (the watcher, a job registry).
    """
    from monitor.analyze import analyze

    reader = run if isinstance(run, RunReader) else load_run(run)
    state = status or reader.status()
    return analyze(reader.frame(), planned_epochs=reader.planned_epochs()[0],
                   finished=state == RunStatus.FINISHED,
                   running=state in (RunStatus.RUNNING, RunStatus.STALLED), options=options)
