"""nnwatch's dashboard entrypoint: the page router and the sidebar every page shares.

Run by ``nnwatch serve`` as ``streamlit run app/dashboard/main.py``. Page files in ``views/`` (not ``pages/``:
Streamlit would also list a folder of that name as pages of its own) only
describe their page; the results tree, the job registry and the login are resolved here and in
:mod:`app.dashboard.resources`, once per server. URLs are stable so they can be shared: ``/`` is the
overview (its filters in the query string), ``/run?id=<run id>`` one run, ``/compare``, ``/jobs?job=<id>``,
``/dataset?dataset=<name>&model=<model folder>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script by Streamlit: make ``app`` importable from a checkout
    _REPO = Path(__file__).resolve().parents[2]
    if str(_REPO) not in sys.path:
        sys.path.insert(0, str(_REPO))

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app.dashboard import resources
from app.dashboard.auth_ui import Actor, current_actor, login_form, sidebar_account
from app.dashboard.run_charts import warm_figures
from app.dashboard.store import RunStore
from app.dashboard.ui import no_truncation_style, warm_run_page

HERE = Path(__file__).resolve().parent


def _pages() -> list[st.Page]:
    return [
        st.Page(HERE / "views" / "overview.py", title="Overview", icon=":material/table_rows:", default=True),
        st.Page(HERE / "views" / "run.py", title="Run", icon=":material/monitoring:", url_path="run"),
        st.Page(HERE / "views" / "compare.py", title="Compare", icon=":material/stacked_line_chart:",
                url_path="compare"),
        st.Page(HERE / "views" / "jobs.py", title="Jobs", icon=":material/work_history:", url_path="jobs"),
        st.Page(HERE / "views" / "notifications.py", title="Notifications", icon=":material/notifications:",
                url_path="notifications"),
        st.Page(HERE / "views" / "dataset.py", title="Datasets", icon=":material/table_view:", url_path="dataset"),
    ]


def _login_page() -> None:
    st.title("nnwatch")
    st.info("This dashboard is shared on the network: log in to see the runs.", icon=":material/lock:")
    login_form("main")


def _sidebar(actor: Actor) -> DeltaGenerator:
    """The sidebar's root and account, and an empty slot for the runs' caption (see :func:`_runs_caption`)."""
    config = resources.settings()
    with st.sidebar:
        if config.demo:
            st.info("**Demo runs.** No results tree is configured: start with `nnwatch serve --root "
                    "/path/to/nnUNet_results` or set `$nnUNet_results`. The demo tree is at "
                    f"`{resources.results_root(config)}`: try the CLI on it, e.g. `nnwatch scan` with that path.",
                    icon=":material/science:")
        else:
            st.caption(" · ".join(f":material/folder_open: `{root}`" for root in config.roots))
        slot = st.empty()
    sidebar_account(actor)
    return slot


def _runs_caption(slot: DeltaGenerator) -> RunStore | None:
    """Count the runs into the sidebar's slot once the page is drawn, so the sidebar shows them whenever the page
    did (the runs may become ready while the page waits for them)."""
    store = resources.store(quiet=True)
    if store is not None:
        table = store.table()
        running = int((table["status"] == "running").sum()) if len(table) else 0
        slot.caption(f"{len(table)} runs · {running} running · checked {time.strftime('%H:%M:%S')}")
    return store


def main() -> None:
    """Configure the page, gate viewing behind a login where required, route to the chosen page."""
    st.set_page_config(page_title="nnwatch — nnU-Net runs", page_icon=":material/monitoring:", layout="wide",
                       initial_sidebar_state="expanded")
    no_truncation_style()
    actor = current_actor()
    if not actor.may_view:
        st.navigation([st.Page(_login_page, title="Log in", icon=":material/lock:")], position="hidden").run()
        return
    page = st.navigation(_pages())
    slot = _sidebar(actor)
    page.run()
    shared = _runs_caption(slot)
    warm_run_page(warm_figures(shared) if shared is not None else "[]")
    if shared is not None:  # this page was drawn with the runs
        shared.page_drawn()


main()
