"""What nnwatch notifies about: the event kinds, and one notification as it is recorded, grouped and sent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

__all__ = ["EventKind", "Notification", "run_page_url"]


class EventKind(str, Enum):
    """The events a rule can name in its ``events`` list."""

    RUN_FINISHED = "run_finished"
    RUN_STOPPED = "run_stopped"
    RUN_STALLED = "run_stalled"
    DEAD_DICE = "dead_dice"
    EXTEND_RECOMMENDED = "extend_recommended"
    JOB_STARTED = "job_started"
    JOB_SUCCEEDED = "job_succeeded"
    JOB_FAILED = "job_failed"
    EXTENSION_BEHIND = "extension_behind"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    EventKind.RUN_FINISHED: "run finished",
    EventKind.RUN_STOPPED: "run stopped before its end",
    EventKind.RUN_STALLED: "run stalled",
    EventKind.DEAD_DICE: "dead Dice or NaN loss",
    EventKind.EXTEND_RECOMMENDED: "longer schedule recommended",
    EventKind.JOB_STARTED: "extension job started",
    EventKind.JOB_SUCCEEDED: "extension job succeeded",
    EventKind.JOB_FAILED: "extension job failed",
    EventKind.EXTENSION_BEHIND: "extension behind its parent",
}


def run_page_url(base_url: str, run_id: str) -> str:
    """The dashboard's page of one run (``/run?id=<run id>``)."""
    return f"{base_url.rstrip('/')}/run?id={quote(run_id, safe='')}"


@dataclass(frozen=True)
class Notification:
    """One event about one run, recorded once in the outbox under ``key``.

    ``verdict`` (finished runs), ``cause`` (stopped runs, failed jobs) and ``detail`` (one or two sentences)
    go into the message; ``final_dice`` is the final validation Dice where known; ``report`` names a PNG
    kept beside the outbox to attach where the channel allows attachments.
    """

    event: EventKind
    run_id: str
    key: str  # unique per (run, event[, job]): the exactly-once key
    dataset: str = ""
    verdict: str | None = None
    cause: str | None = None
    final_dice: float | None = None
    detail: str = ""
    job_id: str | None = None
    report: str | None = None

    def headline(self) -> str:
        """``<event>: <run id>`` plus the verdict or the cause where it applies."""
        text = f"{self.event.value}: {self.run_id}"
        if self.verdict:
            text += f" — verdict {self.verdict}"
        if self.final_dice is not None:
            text += f", final validation Dice {self.final_dice:.4f}"
        if self.cause:
            text += f" — cause: {self.cause}"
        return text

    def body(self, base_url: str) -> str:
        """The message text for this one event, with the link to the run page."""
        lines = [self.headline()]
        if self.detail:
            lines.append(self.detail)
        if self.job_id:
            lines.append(f"job {self.job_id}")
        lines.append(run_page_url(base_url, self.run_id))
        return "\n".join(lines)
