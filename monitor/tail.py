"""The end of a text file that may be large and still growing (a training log, a job's console output)."""

from __future__ import annotations

import os

__all__ = ["tail_text"]


def tail_text(path: str | os.PathLike[str], max_bytes: int = 65_536) -> str | None:
    """The last ``max_bytes`` of ``path`` as text, whole lines only (a line cut by the limit is dropped);
    None when the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    return text.split("\n", 1)[-1] if size > max_bytes else text
