"""Login in the dashboard: who the current session is, and whether it may view and act.

Rules (see :mod:`app.auth` for why): on 127.0.0.1 everyone on the machine is trusted and acts as their
OS user. Elsewhere an action needs a login, with a password/token from ``NNWATCH_USERS_FILE`` or with
Streamlit's OIDC ``st.login`` when ``[auth]`` is configured in ``.streamlit/secrets.toml``; viewing needs
one too unless ``NNWATCH_OPEN_VIEW=1``. A password login lasts for the browser session.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app.auth import AccessPolicy, UsersFileError
from app.dashboard.resources import settings
from trainer import current_user

__all__ = ["Actor", "current_actor", "login_form", "policy", "sidebar_account"]

_USER_KEY = "nnwatch_user"


@dataclass(frozen=True)
class Actor:
    """The person behind this session: the name written to the job registry and what they may do."""

    name: str | None
    may_view: bool
    may_act: bool
    why_not: str = ""


def policy() -> AccessPolicy:
    return AccessPolicy.from_env(settings().host)


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def _oidc_user(rules: AccessPolicy) -> str | None:
    if not _oidc_configured():
        return None
    try:
        if not st.user.get("is_logged_in"):
            return None
        email = st.user.get("email")
    except Exception:
        return None
    return str(email) if email and rules.email_allowed(str(email)) else None


def current_actor() -> Actor:
    """Resolve the session's identity and permissions from the policy and any login."""
    rules = policy()
    if rules.local:
        return Actor(current_user(), may_view=True, may_act=True)
    name = st.session_state.get(_USER_KEY) or _oidc_user(rules)
    if name:
        return Actor(name, may_view=True, may_act=True)
    if rules.users_file is None and not _oidc_configured():
        why = (f"This dashboard is reachable on {rules.host}, and no login is configured: actions are off. "
               "Start it with NNWATCH_USERS_FILE (see `nnwatch passwd`) or OIDC in .streamlit/secrets.toml.")
    else:
        why = "Log in (sidebar) to extend or cancel runs: every action is recorded with your name."
    return Actor(None, may_view=not rules.viewing_needs_login, may_act=False, why_not=why)


def login_form(where: str = "main") -> None:
    """Password/token login, plus the OIDC button where configured."""
    rules = policy()
    container = st.sidebar if where == "sidebar" else st.container()
    with container:
        if rules.users_file is not None:
            with st.form(f"login_{where}", clear_on_submit=True, border=where != "sidebar"):
                user = st.text_input("User", key=f"login_user_{where}")
                secret = st.text_input("Password or token", type="password", key=f"login_secret_{where}")
                if st.form_submit_button("Log in", type="primary"):
                    try:
                        ok = rules.check_password(user.strip(), secret)
                    except UsersFileError as exc:
                        st.error(str(exc))
                        ok = False
                    if ok:
                        st.session_state[_USER_KEY] = user.strip()
                        st.rerun()
                    else:
                        st.error("Wrong user or password.")
        if _oidc_configured() and st.button("Log in with your institution", key=f"oidc_{where}"):
            st.login()


def sidebar_account(actor: Actor) -> None:
    """Who is acting, and a way in or out."""
    rules = policy()
    if rules.local:
        st.sidebar.caption(f":material/person: {actor.name} · local access (127.0.0.1): no login needed")
        return
    if actor.name:
        st.sidebar.caption(f":material/person: signed in as **{actor.name}**")
        if st.sidebar.button("Log out", key="logout"):
            st.session_state.pop(_USER_KEY, None)
            if _oidc_configured():
                st.logout()
            st.rerun()
        return
    st.sidebar.caption(":material/lock: viewing only — log in to extend or cancel")
    login_form("sidebar")
