"""The image's HEALTHCHECK: is Streamlit answering ``/_stcore/health`` with ``ok``?

Why a script and not ``curl``: the runtime image has Python but no curl (one fewer package to patch), and
the URL depends on the environment - ``NNWATCH_PORT`` (the port ``nnwatch serve`` binds) and
``STREAMLIT_SERVER_BASE_URL_PATH`` (set when the dashboard is served under a path behind a reverse proxy,
which moves the endpoint to ``/<path>/_stcore/health``). Standard library only; exit 0 healthy, 1 not.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def health_url(environ: dict[str, str] | None = None) -> str:
    """The health endpoint on this container's loopback, honouring the port and the base path."""
    env = dict(os.environ if environ is None else environ)
    port = env.get("NNWATCH_PORT") or "8501"
    base = (env.get("STREAMLIT_SERVER_BASE_URL_PATH") or "").strip("/")
    return f"http://127.0.0.1:{port}/{base + '/' if base else ''}_stcore/health"


def main() -> int:
    url = health_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            body = response.read(64).decode("utf-8", "replace").strip()
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200 or body != "ok":
        print(f"unhealthy: {url} answered {status} {body!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
