"""The Notifications page's parts: the rules in force, the last 100 notifications, and editing for admins.

Who may edit: on 127.0.0.1 anyone on the machine (as for every action); reached from elsewhere, only a
logged-in user named in ``NNWATCH_ADMINS`` (comma-separated), since the file holds the channels' secrets.
The notifier (in ``nnwatch serve`` or ``nnwatch notify``) reloads the file when it changes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app.dashboard.auth_ui import Actor, policy
from app.notify import (
    ConfigError,
    EventKind,
    NotifyConfig,
    Outbox,
    default_config_path,
    load_config,
    parse_config,
    redact_url,
    send_test,
)
from app.served import dashboard_url
from monitor.numbers import moment

__all__ = ["config_path", "history_frame", "may_edit", "render_editor", "render_history", "render_rules",
           "rules_frame"]

EXAMPLE = """\
# base_url = "http://lab-server:8501"   # where the links in messages point (default: this dashboard)
quiet_s = 3                             # events to one URL within this window go out as one message

[[rule]]
events = ["*"]
runs = "*"
urls = ["json://localhost:8080/hook"]
"""


def _own_url() -> str:
    """This dashboard's address, where the links of ``nnwatch serve``'s notifications point by default."""
    return dashboard_url(str(st.get_option("server.address") or ""), int(st.get_option("server.port")))


def config_path() -> Path:
    return default_config_path()


def may_edit(actor: Actor) -> tuple[bool, str]:
    """Whether this session may change the rules, and why not."""
    if policy().local:
        return True, ""
    admins = {name.strip() for name in os.environ.get("NNWATCH_ADMINS", "").split(",") if name.strip()}
    if actor.name and actor.name in admins:
        return True, ""
    return False, ("Only admins (`NNWATCH_ADMINS`) may edit the rules when the dashboard is reached from outside "
                   "this machine: the file holds the channels' secrets.")


def rules_frame(config: NotifyConfig) -> pd.DataFrame:
    everything = frozenset(EventKind)
    return pd.DataFrame([{
        "Rule": rule.name, "Events": "all" if rule.events == everything else ", ".join(
            sorted(kind.value for kind in rule.events)),
        "Runs": rule.runs, "URLs": "\n".join(redact_url(url) for url in rule.urls),
        "Report attached": rule.attach_report, "Line": rule.line,
    } for rule in config.rules], columns=["Rule", "Events", "Runs", "URLs", "Report attached", "Line"])


def history_frame(outbox: Outbox, limit: int = 100) -> pd.DataFrame:
    rows = outbox.history(limit)
    return pd.DataFrame([{
        "Time": moment(row.sent_at or row.created_at), "Event": row.event, "Run": row.run_id,
        "To": redact_url(row.url), "State": row.state, "Tries": row.attempts, "Last error": row.last_error or "",
    } for row in rows], columns=["Time", "Event", "Run", "To", "State", "Tries", "Last error"])


def render_rules(path: Path) -> NotifyConfig | None:
    """The rules in force, or what is wrong with the file."""
    if not path.is_file():
        st.info(f"No notification config at `{path}`. Create one (mode 600) like this, or set "
                "`NNWATCH_NOTIFY_CONFIG`:", icon=":material/notifications_off:")
        st.code(EXAMPLE, language="toml")
        return None
    try:
        config = load_config(path)
    except ConfigError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    st.caption(f"`{path}` · links to `{config.base_url or _own_url()}` · quiet window {config.quiet_s:g} s · "
               f"registry polled every {config.jobs_poll_s:g} s · retries up to every {config.retry_max_s:g} s")
    st.dataframe(rules_frame(config), hide_index=True, use_container_width=True)
    return config


def _save(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".notify-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def render_editor(path: Path, config: NotifyConfig | None, actor: Actor) -> None:
    allowed, why = may_edit(actor)
    if not allowed:
        st.caption(f":material/lock: {why}")
        return
    with st.expander("Edit the rules", icon=":material/edit:"):
        current = config.text if config is not None else (path.read_text() if path.is_file() else EXAMPLE)
        text = st.text_area("Rules (TOML)", current, height=280, key="notify_config_text")
        left, right = st.columns(2)
        if left.button("Check and save", type="primary", key="notify_save"):
            try:
                parse_config(text, path)
            except ConfigError as exc:
                st.error(str(exc))
            else:
                _save(path, text)
                st.success("Saved. A running notifier picks the change up within seconds.")
        if right.button("Send a test message to each URL", key="notify_test", disabled=config is None):
            assert config is not None
            for result in send_test(config, _own_url()):
                (st.success if result.ok else st.error)(f"{result.url}: {'sent' if result.ok else result.error}")


def render_history(outbox: Outbox | None = None) -> None:
    """The last 100 notifications of this state folder's outbox."""
    frame = history_frame(outbox or Outbox())
    if frame.empty:
        st.caption("Nothing sent yet.")
        return
    pending = int((frame["State"] == "pending").sum())
    if pending:
        st.warning(f"{pending} notification(s) waiting for a channel that failed; they are retried with backoff.",
                   icon=":material/schedule_send:")
    st.dataframe(frame, hide_index=True, use_container_width=True)
