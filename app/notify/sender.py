"""Sending through apprise: one message per batch (quiet grouping), the run report attached where allowed.

apprise knows each service's URL form (Slack, Teams, Matrix, ntfy, e-mail, JSON webhooks …) and whether it
takes attachments; a service that does not gets the text alone. A send that apprise reports as failed
raises nothing here: :func:`send` returns the reason, and the dispatcher retries it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.notify.config import NotifyConfig, redact_url
from app.notify.events import DEFAULT_BASE_URL, EventKind, Links, Notification
from app.notify.outbox import Batch

__all__ = ["SendResult", "compose", "send", "send_test"]

log = logging.getLogger("nnwatch.notify")
MAX_ATTACHMENTS = 5


@dataclass(frozen=True)
class SendResult:
    url: str  # redacted
    ok: bool
    error: str = ""


def compose(notifications: Sequence[Notification], links: Links) -> tuple[str, str]:
    """Title and body: one event as it is; several as a count in the title and one paragraph each."""
    if len(notifications) == 1:
        only = notifications[0]
        return f"nnwatch: {only.event.label} — {only.run_id}", only.body(links)
    kinds = list(dict.fromkeys(n.event for n in notifications))
    if len(kinds) == 1:
        title = f"nnwatch: {len(notifications)} × {kinds[0].label}"
        causes = {n.cause for n in notifications}
        if len(causes) == 1 and None not in causes:
            title += f" ({causes.pop()})"
    else:
        title = f"nnwatch: {len(notifications)} events ({', '.join(kind.value for kind in kinds)})"
    return title, "\n\n".join(n.body(links) for n in notifications)


def _apprise_send(url: str, title: str, body: str, attachments: Sequence[str]) -> SendResult:
    import apprise

    shown = redact_url(url)
    sender = apprise.Apprise()
    if not sender.add(url):
        return SendResult(shown, False, "apprise does not understand this URL")
    attach = None
    if attachments:
        attach = apprise.AppriseAttachment()
        for path in attachments:
            attach.add(path)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        try:
            ok = bool(sender.notify(title=title, body=body, attach=attach, body_format=apprise.NotifyFormat.TEXT))
        except Exception as exc:  # a plugin bug must not stop the dispatcher
            ok, captured_extra = False, f"{type(exc).__name__}: {exc}"
        else:
            captured_extra = ""
        text = captured.getvalue().strip()
    error = "" if ok else captured_extra or (text.splitlines()[-1] if text else "not delivered")
    return SendResult(shown, ok, error)


def send(batch: Batch, links: Links) -> SendResult:
    """Send one batch to its URL."""
    notifications = [delivery.notification for delivery in batch.deliveries]
    title, body = compose(notifications, links)
    attachments = [d.notification.report for d in batch.deliveries
                   if d.attach and d.notification.report and Path(d.notification.report).is_file()]
    return _apprise_send(batch.url, title, body, attachments[:MAX_ATTACHMENTS])


def send_test(config: NotifyConfig, dashboard_url: str = DEFAULT_BASE_URL) -> list[SendResult]:
    """One test message to each configured URL (``nnwatch notify --test``); ``dashboard_url``: where links point
    when the rules name no ``base_url``."""
    results = []
    for url in config.urls():
        body = ("This is a test message from nnwatch. Notifications will name the event, the run, its verdict or "
                f"stop cause, and link to the run page under {config.base_url or dashboard_url}. Events: "
                + ", ".join(kind.value for kind in EventKind) + ".")
        results.append(_apprise_send(url, "nnwatch: test message", body, ()))
    return results
