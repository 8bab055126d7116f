"""Which backend a name in a plan or a registry row stands for.

Kept apart from :mod:`trainer.backends` (the interface the concrete backends implement) so that the
interface never imports its implementations.
"""

from __future__ import annotations

from trainer.backends import Backend
from trainer.local import LocalBackend
from trainer.slurm import SlurmBackend

__all__ = ["BACKEND_NAMES", "get_backend"]

_BACKENDS: dict[str, type[Backend]] = {LocalBackend.name: LocalBackend, SlurmBackend.name: SlurmBackend}
BACKEND_NAMES = tuple(_BACKENDS)


def get_backend(name: str) -> Backend:
    """A new backend of kind ``name`` (``local`` or ``slurm``)."""
    try:
        return _BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKEND_NAMES)}") from None
