"""nnwatch's state folder: where the job registry, the run index and the notification log live.

``$NNWATCH_STATE`` when set, else the user's data folder (platformdirs). Every file nnwatch keeps
between runs goes here, so one variable moves all of them (a container volume, a shared lab disk).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder for nnwatch's persistent files (not created here)."""
    environ = os.environ if environ is None else environ
    configured = environ.get("NNWATCH_STATE")
    if configured:
        return Path(configured).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_data_dir("nnwatch"))
