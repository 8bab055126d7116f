"""The exception every layer of checkpoint reading raises, in its own module so the layers share it without
import cycles.  Its public home is ``monitor.checkpoints.reader`` (``__module__`` says so)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CheckpointError"]

#: What a file that ends early or changes while it is read is reported as: nnU-Net rewrites checkpoints in place.
_INCOMPLETE = "incomplete (still being written?)"


class CheckpointError(Exception):
    """A checkpoint could not be read; ``str(error)`` is a short statement of why, shown next to the run."""

    __module__ = "monitor.checkpoints.reader"  # its public home, where callers import it from

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
