"""The dashboard's configuration, read once from the environment that ``nnwatch serve`` prepared.

Why environment variables: Streamlit runs ``main.py`` as a script in its own process, and the
environment is the one channel that reaches it unchanged from ``nnwatch serve``, from a plain
``streamlit run`` and from tests (AppTest runs the script in-process).

==========================  ==========================================================================
``NNWATCH_ROOT``            results tree to watch (else ``$nnUNet_results``, else the bundled demo); several
                            trees joined by ``os.pathsep`` (``:`` on Linux) are served together
``NNWATCH_STATE``           nnwatch's state folder (job registry, index, notifications); default: the
                            user's data folder
``NNWATCH_JOBS_DB``         job registry (SQLite); default: ``jobs.sqlite3`` in the state folder (demo: beside it)
``NNWATCH_HOST``            the address ``serve`` bound to (Streamlit's ``server.address`` wins)
``NNWATCH_USERS_FILE``      ``user:scrypt$...`` lines; needed for actions when not on 127.0.0.1
``NNWATCH_OPEN_VIEW``       ``1``: viewing needs no login even when bound to a public address
``NNWATCH_REFRESH_S``       how often live panels poll (default 3 s)
``NNWATCH_NOTIFY_CONFIG``   notification rules (default ``notify.toml`` in the user's nnwatch config folder)
``NNWATCH_ADMINS``          users who may edit the notification rules when not on 127.0.0.1
``NNWATCH_BACKEND_FACTORY`` ``module:callable`` returning a trainer Backend for a backend name; tests
                            use it to record launches instead of starting nnU-Net
``NNWATCH_DEMO_INTERVAL_S`` demo only: seconds between appended epochs (default 5)
==========================  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """Where the runs and jobs are and how often to poll; ``root`` is None when the demo is served, else the first
    of ``roots`` (every results tree served, in the order given)."""

    root: Path | None
    jobs_db: Path | None
    host: str | None
    refresh_s: float
    backend_factory: str | None
    demo_interval_s: float
    roots: tuple[Path, ...] = ()

    @property
    def demo(self) -> bool:
        return self.root is None


def _float(value: str | None, default: float) -> float:
    try:
        return max(0.5, float(value)) if value else default
    except ValueError:
        return default


def _roots(env: Mapping[str, str]) -> tuple[Path, ...]:
    """``NNWATCH_ROOT``: one folder, or several joined by ``os.pathsep``; else ``$nnUNet_results`` (one folder)."""
    named = env.get("NNWATCH_ROOT") or ""
    if named and not Path(named).expanduser().is_dir():  # a folder whose name holds os.pathsep stays whole
        parts = named.split(os.pathsep)
    else:
        parts = [named or env.get("nnUNet_results") or ""]
    return tuple(dict.fromkeys(Path(part).expanduser().absolute() for part in parts if part))


def load_settings(environ: Mapping[str, str] | None = None, server_address: str | None = None) -> Settings:
    """Settings from ``environ`` (default: this process's); ``server_address`` is Streamlit's option."""
    env = os.environ if environ is None else environ
    roots = _roots(env)
    jobs_db = env.get("NNWATCH_JOBS_DB") or None
    return Settings(
        root=roots[0] if roots else None,
        roots=roots,
        jobs_db=Path(jobs_db).expanduser().absolute() if jobs_db else None,
        host=server_address or env.get("NNWATCH_HOST") or None,
        refresh_s=_float(env.get("NNWATCH_REFRESH_S"), 3.0),
        backend_factory=env.get("NNWATCH_BACKEND_FACTORY") or None,
        demo_interval_s=_float(env.get("NNWATCH_DEMO_INTERVAL_S"), 5.0),
    )
