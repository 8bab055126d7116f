"""What nnwatch notifies about: the event kinds, and one notification as it is recorded, grouped and sent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from app.served import DEFAULT_PORT, dashboard_url

__all__ = ["DEFAULT_BASE_URL", "EventKind", "Links", "Notification"]


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


#: Where links point when neither the rules file nor a serving dashboard says: ``nnwatch serve``'s default address.
DEFAULT_BASE_URL = dashboard_url("127.0.0.1", DEFAULT_PORT)


@dataclass(frozen=True)
class Links:
    """Where a message's run-page links point: a dashboard's address and, where that dashboard serves several
    results roots, the label its run ids of this root start with (see :func:`app.served.root_labels`)."""

    base_url: str = DEFAULT_BASE_URL
    root_label: str = ""

    def run_page(self, run_id: str) -> str:
        """The dashboard's page of one run (``/run?id=<run id>``)."""
        shown = f"{self.root_label}/{run_id}" if self.root_label else run_id
        return f"{self.base_url.rstrip('/')}/run?id={quote(shown, safe='')}"


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

    def body(self, links: Links) -> str:
        """The message text for this one event, with the link to the run page."""
        lines = [self.headline()]
        if self.detail:
            lines.append(self.detail)
        if self.job_id:
            lines.append(f"job {self.job_id}")
        lines.append(links.run_page(self.run_id))
        return "\n".join(lines)
