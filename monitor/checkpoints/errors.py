"""The exception every layer of checkpoint reading raises, kept apart so that the layers share it without cycles.

The archive reader, the restricted unpickler and the curve builder all report problems as a
:class:`CheckpointError`; defining it in any one of them would make the others import that layer just for
the exception.  Its public home is ``monitor.checkpoints.reader``, which re-exports it (``__module__`` says so too,
so tracebacks and pickles name the module callers import it from).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CheckpointError"]

#: What a file that ends early or changes while it is read is reported as: nnU-Net rewrites checkpoints in place.
_INCOMPLETE = "incomplete (still being written?)"


class CheckpointError(Exception):
    """A checkpoint could not be read; ``str(error)`` is a short, human-readable statement of the problem.

    The dashboard shows the message next to the run, so it says what is wrong ("incomplete (still being
    written?)", "refused: checkpoint tries to call os.system") rather than dumping a traceback.
    """

    __module__ = "monitor.checkpoints.reader"  # its public home, where callers import it from

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
