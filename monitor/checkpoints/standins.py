"""The inert objects the restricted unpickler builds instead of running code, and how they are described
(briefly and boundedly: a pickle can nest and share them without limit).
"""

from __future__ import annotations

import datetime as _dt
import math
import reprlib
from typing import Any, ClassVar

import numpy as np


class _StandInMeta(type):
    """Metaclass so that a stand-in *class* (e.g. ``torch.float32`` used as a value) prints its origin."""

    _sd_module: str
    _sd_name: str

    def __repr__(cls) -> str:
        return f"{cls._sd_module}.{cls._sd_name}"


class _StandIn(Exception, metaclass=_StandInMeta):
    """Inert replacement for a class or function named by the pickle (torch, nnunet, unknown).

    Calling it (REDUCE, NEWOBJ) stores the arguments in ``.args``; BUILD and the container opcodes only record
    what they were given, so nothing is executed and foreign code need not exist.  It derives from
    ``Exception`` only because that C constructor stores any arguments without a Python frame; it is never
    raised.  Each unpickler makes fresh subclasses, so nothing a pickle does to one leaks into the next load.
    """

    _sd_module: ClassVar[str] = "?"
    _sd_name: ClassVar[str] = "?"

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_sd_state"] = state

    def _sd_record(self, item: Any) -> None:
        self.__dict__.setdefault("_sd_items", []).append(item)

    def append(self, item: Any) -> None:
        self._sd_record(item)

    def extend(self, items: Any) -> None:
        for item in items if isinstance(items, list) else [items]:
            self._sd_record(item)

    def add(self, item: Any) -> None:
        self._sd_record(item)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._sd_record((key, value))

    def __repr__(self) -> str:
        return _describe_stand_in(self)

    __str__ = __repr__


class _StoragePlaceholder(Exception):
    """What a tensor storage reference (persistent id) becomes, never its bytes.  Called as
    ``persistent_load(pid)``; an ``Exception`` for the same reason as :class:`_StandIn`.  Never raised."""

    def __repr__(self) -> str:
        return "<storage, not read>"

    __str__ = __repr__


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _BriefRepr(reprlib.Repr):
    """``repr`` with bounded depth and width, also through stand-ins: a pickle can share one stand-in many
    times at every level, and a plain recursive repr of that is exponentially long."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxtuple = self.maxlist = self.maxdict = self.maxset = self.maxfrozenset = 8
        self.maxstring = self.maxother = 80

    def repr1(self, x: Any, level: int) -> str:
        if isinstance(x, _StandIn):
            return _describe_stand_in(x, level)
        if isinstance(x, (_StoragePlaceholder, _StandInMeta)):
            return _clip(repr(x), self.maxother)
        return super().repr1(x, level)


_BRIEF = _BriefRepr()


def _short_repr(obj: Any, limit: int = 120) -> str:
    try:
        return _clip(_BRIEF.repr(obj), limit)
    except RecursionError:  # numpy object arrays can still nest arbitrarily deep
        return "<too deeply nested>"


def _describe_stand_in(obj: _StandIn, level: int = _BRIEF.maxlevel) -> str:
    """Readable description with bounded depth, e.g. ``torch.device('cuda', 0)``."""
    cls = type(obj)
    args = obj.args
    if level <= 0:
        return f"{cls._sd_module}.{cls._sd_name}(...)"
    parts = [_BRIEF.repr1(a, level - 1) for a in args[:8]] + (["..."] if len(args) > 8 else [])
    return _clip(f"{cls._sd_module}.{cls._sd_name}({', '.join(parts)})", 300)


def _scalar_to_float(value: Any) -> float | None:
    """float(value) for numbers, numpy scalars, one-element arrays and datetimes; None if not a number."""
    if value is None:
        return math.nan
    if isinstance(value, (float, int, np.floating, np.integer, np.bool_)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiub":
        return float(value.reshape(-1)[0])
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    return None
