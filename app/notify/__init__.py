"""Notifications: tell people when a run finished, stopped, stalled or went dead, and how extension jobs fare.

Events come from the watcher's snapshots and the job registry (:mod:`app.notify.derive`), are recorded once per
run and event in an SQLite outbox in nnwatch's state folder (:mod:`app.notify.outbox`), and are sent through
apprise to the URLs of the matching rules of a TOML config (:mod:`app.notify.config`), grouped per URL within
a quiet window and retried with backoff (:mod:`app.notify.sender`). :class:`Notifier` runs it all in the
background of ``nnwatch serve`` or headless as ``nnwatch notify``.

Exceptions::

    ValueError ─ ConfigError    a config file that cannot be used (its message names the line)
"""

from app.notify.config import (
    ConfigError,
    NotifyConfig,
    Rule,
    default_config_path,
    load_config,
    parse_config,
    redact_url,
)
from app.notify.events import DEFAULT_BASE_URL, EventKind, Links, Notification
from app.notify.outbox import HistoryRow, Outbox, default_outbox_path
from app.notify.sender import SendResult, send_test
from app.notify.service import Notifier

__all__ = [
    "DEFAULT_BASE_URL",
    "ConfigError",
    "EventKind",
    "HistoryRow",
    "Links",
    "Notification",
    "Notifier",
    "NotifyConfig",
    "Outbox",
    "Rule",
    "SendResult",
    "default_config_path",
    "default_outbox_path",
    "load_config",
    "parse_config",
    "redact_url",
    "send_test",
]
