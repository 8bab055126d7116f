"""Notifications: the rules in force, the last 100 notifications sent (or waiting for a channel), and, for
admins, editing the rules and a test message."""

from __future__ import annotations

import streamlit as st

from app.dashboard.auth_ui import current_actor
from app.dashboard.notify_settings import config_path, render_editor, render_history, render_rules
from app.dashboard.ui import guard

st.title("Notifications")
with guard("show the notification settings"):
    path = config_path()
    st.subheader("Rules")
    config = render_rules(path)
    render_editor(path, config, current_actor())
    st.subheader("Last 100 notifications")
    render_history()
