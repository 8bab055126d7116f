"""How a served dashboard is reached from elsewhere (a notification's link, a printed address): its address, and
the labels in front of its run ids where it serves several results roots (``old_disk-nnUNet_results/Dataset001_…``).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_PORT", "dashboard_url", "root_labels"]

#: ``nnwatch serve``'s port unless told otherwise.
DEFAULT_PORT = 8501


def dashboard_url(host: str, port: int) -> str:
    """The address of a dashboard bound to ``host``:``port``, as a link sent elsewhere reaches it: a bind to every
    interface by this machine's name."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()  # no name lookup: a start must not wait on DNS
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def root_labels(roots: Sequence[Path]) -> list[str]:
    """One short, unique label per root: its folder name; where names repeat, with as many parent folders as tell
    them apart (``data-nnUNet_results``, ``old-nnUNet_results``), joined by ``-`` so that a label holds no ``/``."""
    names = [[part for part in root.parts if part not in (root.anchor, "")] or ["root"] for root in roots]
    depth = [1] * len(names)

    def label(i: int) -> str:
        return "-".join(names[i][-depth[i]:])

    while True:
        labels = [label(i) for i in range(len(names))]
        clashing = [i for i, text in enumerate(labels) if labels.count(text) > 1 and depth[i] < len(names[i])]
        if not clashing:
            break
        for i in clashing:
            depth[i] += 1
    unique: list[str] = []
    for text in labels:  # the same folder name all the way up (cannot happen for distinct roots): number them
        candidate, n = text, 1
        while candidate in unique:
            n += 1
            candidate = f"{text}-{n}"
        unique.append(candidate)
    return unique
