"""The dashboard's server process: ``streamlit run``, with the served runs opened before the first visitor.

Streamlit runs a page's script only once a browser connects, so without this the first visitor after a start
waits for the dashboard's imports and for the run store to open from the run index. Here a thread does both
while Streamlit itself starts; the store lands in the same ``st.cache_resource`` every session then shares.
``nnwatch serve`` runs ``python -m app.dashboard.server run app/dashboard/main.py …`` (Streamlit's own arguments).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

__all__ = ["STREAMLIT_DEFAULTS", "main"]

log = logging.getLogger("nnwatch.dashboard")

#: Streamlit settings of this server, as the environment variables its command line reads (a user's own value
#: wins). Streamlit collects every generation of garbage after each script run, fragments' included; with
#: thousands of runs in memory that holds the interpreter, and the page's last messages, after every page and
#: every live refresh. Python's own generational collection still runs.
STREAMLIT_DEFAULTS = {"STREAMLIT_RUNNER_POST_SCRIPT_GC": "false"}


def _no_delay_on_connections() -> None:
    """Turn Nagle's algorithm off for every connection the server accepts.

    Streamlit binds its listening socket without naming the TCP protocol, and asyncio sets ``TCP_NODELAY`` only on
    sockets that name it. With Nagle on, a small response's body waits after its headers for the browser's delayed
    ACK on every kept-alive connection, and a first page fetches many small scripts and WebSocket messages.
    Accepted sockets inherit the option from the listening one (Linux), so it is set there. Streamlit versions
    without that function (the Tornado server) are left as they are.
    """
    try:
        from streamlit.web.server.starlette import starlette_server
    except ImportError:
        return
    bind = getattr(starlette_server, "_bind_socket", None)
    if bind is None:
        return

    def bind_without_delay(*args: Any, **kwargs: Any) -> socket.socket:
        sock = bind(*args, **kwargs)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    starlette_server._bind_socket = bind_without_delay


def _warm() -> None:
    from app.dashboard import resources

    try:
        resources.warm(os.environ.get("NNWATCH_HOST"))
    except Exception:  # the first page opens the store again and says what is wrong
        log.exception("opening the runs before the first visitor failed")


def main(argv: list[str] | None = None) -> None:
    """Start the warm-up thread, then Streamlit's command line with ``argv`` (default: this process's)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped while starting: a clean exit (Streamlit's own
    # handler replaces this once its server runs)
    # Imports first, in this thread: a module two threads import at once can be seen half-initialised.
    from streamlit.web import cli

    for name, value in STREAMLIT_DEFAULTS.items():
        os.environ.setdefault(name, value)

    from app.dashboard import resources  # noqa: F401  (what the thread and the first page need)

    _no_delay_on_connections()

    threading.Thread(target=_warm, name="nnwatch-warm", daemon=True).start()
    sys.argv = ["streamlit", *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
