"""The restricted unpickler: a checkpoint's object tree without running anything it names.

Persistent ids (tensor storages) become inert placeholders; a short allow-list of constructors that cannot
run foreign code is resolved; globals from modules that execute code or touch the system are refused with
a :class:`CheckpointError` naming them; every other class or function becomes an inert stand-in
(``monitor.checkpoints.standins``).  :func:`_unpickle` and :func:`_unpickle_buffer` are the only ways in.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import datetime as _dt
import pathlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np

from monitor.checkpoints.errors import _INCOMPLETE, CheckpointError
from monitor.checkpoints.standins import _short_repr, _StandIn, _StandInMeta, _StoragePlaceholder

try:  # numpy >= 2 moved the pickle helpers to numpy._core; 1.x has them in numpy.core
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray  # type: ignore[no-redef]


#: A real checkpoint names a few dozen classes; a pickle naming 100 000 would only be a memory bomb.
_MAX_STAND_IN_CLASSES = 10_000


# ---- the allow-list: constructors that cannot reach foreign code, with bounded arguments --------------------


class _UnsafeGlobal(pickle.UnpicklingError):
    """Raised from ``find_class`` for a refused global; the message becomes the CheckpointError message."""


def _safe_set(items: Any = ()) -> set[Any]:
    # Only materialised containers: set(range(10**12)) would be a memory bomb.
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise pickle.UnpicklingError("set() argument must be a list")
    return set(items)


def _safe_frozenset(items: Any = ()) -> frozenset[Any]:
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise pickle.UnpicklingError("frozenset() argument must be a list")
    return frozenset(items)


def _safe_bytes(*args: Any) -> bytes:
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise pickle.UnpicklingError("unsupported bytes() arguments")


def _safe_codecs_encode(obj: Any, encoding: Any, *errors: Any) -> bytes:
    # Protocol 2 pickles bytes as _codecs.encode(str, 'latin1'); other codecs would make the registry import modules.
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "iso-8859-1", "ascii"):
        raise pickle.UnpicklingError("unsupported _codecs.encode arguments")
    return codecs.encode(obj, "latin1")


def _safe_defaultdict(*args: Any) -> collections.defaultdict[Any, Any]:
    # The default factory is dropped: it would be called later by whoever indexes a missing key.
    return collections.defaultdict(None)


def _safe_counter(*args: Any) -> collections.Counter[Any]:
    if args and not isinstance(args[0], dict):
        raise pickle.UnpicklingError("unsupported Counter() arguments")
    return collections.Counter(args[0] if args else {})


def _ndarray_marker(*args: Any) -> Any:
    raise pickle.UnpicklingError("numpy.ndarray may only appear as the subtype of _reconstruct")


def _safe_np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy pickles _reconstruct(ndarray, (0,), b'b') then __setstate__; another shape would only allocate memory.
    if subtype is not _ndarray_marker or tuple(shape) != (0,):
        raise pickle.UnpicklingError("unsupported numpy _reconstruct arguments")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _safe_np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("unsupported numpy _frombuffer arguments")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if order == "F" else "C")


def _safe_np_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype[Any]:
    if not isinstance(obj, str) or len(obj) > 16:
        raise pickle.UnpicklingError("unsupported numpy dtype arguments")
    return np.dtype(obj, align=bool(align), copy=bool(copy))


def _safe_np_scalar(dtype: Any, data: Any = None) -> Any:
    # numpy's own C helper: checks that dtype is a dtype and data has exactly itemsize bytes.
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("unsupported numpy scalar arguments")
    return _np_multiarray.scalar(dtype, data) if data is not None else _np_multiarray.scalar(dtype)


def _safe_pure_path(*parts: Any) -> pathlib.PurePath:
    if not all(isinstance(p, str) for p in parts):
        raise pickle.UnpicklingError("unsupported path arguments")
    return pathlib.PurePath(*parts)


def _safe_datetime_type(kind: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        if not all(isinstance(a, (int, float, str, bytes, _dt.tzinfo, type(None))) for a in args):
            raise pickle.UnpicklingError(f"unsupported datetime.{kind.__name__} arguments")
        return kind(*args)

    return build


def _safe_timezone(*args: Any) -> _dt.timezone:
    if not args or not isinstance(args[0], _dt.timedelta):
        raise pickle.UnpicklingError("unsupported datetime.timezone arguments")
    return _dt.timezone(*args)


def _safe_reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    # copyreg._reconstructor is how protocol 0/1 pickles build plain objects; only stand-ins may be built.
    if isinstance(cls, type) and issubclass(cls, _StandIn):
        return cls(state) if state is not None else cls()
    raise _UnsafeGlobal(f"refused: copyreg._reconstructor of {cls!r}")


def _safe_newobj(cls: Any, *args: Any) -> Any:
    if isinstance(cls, type) and issubclass(cls, _StandIn):
        return cls(*args)
    raise _UnsafeGlobal(f"refused: copyreg.__newobj__ of {cls!r}")


_NUMPY_PICKLE_HELPERS: dict[str, Callable[..., Any]] = {
    "scalar": _safe_np_scalar,
    "_reconstruct": _safe_np_reconstruct,
}

_SAFE_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    # The C type itself: immutable, so BUILD cannot patch it; it only iterates what the pickle built.
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): _safe_defaultdict,
    ("collections", "Counter"): _safe_counter,
    ("builtins", "set"): _safe_set,
    ("builtins", "frozenset"): _safe_frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("builtins", "bytes"): _safe_bytes,
    ("builtins", "object"): object,
    ("_codecs", "encode"): _safe_codecs_encode,
    ("codecs", "encode"): _safe_codecs_encode,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("copyreg", "__newobj__"): _safe_newobj,
    ("numpy", "ndarray"): _ndarray_marker,
    ("numpy", "dtype"): _safe_np_dtype,
    ("numpy.core.numeric", "_frombuffer"): _safe_np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _safe_np_frombuffer,
    ("datetime", "datetime"): _safe_datetime_type(_dt.datetime),
    ("datetime", "date"): _safe_datetime_type(_dt.date),
    ("datetime", "time"): _safe_datetime_type(_dt.time),
    ("datetime", "timedelta"): _safe_datetime_type(_dt.timedelta),
    ("datetime", "timezone"): _safe_timezone,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    for _name, _fn in _NUMPY_PICKLE_HELPERS.items():
        _SAFE_GLOBALS[(_module, _name)] = _fn
for _name in ("PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath", "WindowsPath"):
    # Concrete paths become pure paths: no file system access is possible through them.
    _SAFE_GLOBALS[("pathlib", _name)] = _safe_pure_path

#: Every global from these modules (and their submodules) is refused: they run code or touch the system.
_REFUSED_MODULES = frozenset(
    {
        "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "sys", "importlib",
        "imp", "runpy", "shutil", "pickle", "_pickle", "cPickle", "copy_reg", "dill", "cloudpickle", "joblib",
        "marshal", "code", "codeop", "ctypes", "_ctypes", "socket", "_socket", "ssl", "pty", "webbrowser",
        "functools", "_functools", "operator", "_operator", "multiprocessing", "_multiprocessing", "signal",
        "threading", "_thread", "asyncio", "concurrent", "tempfile", "io", "_io", "glob", "zipimport", "pkgutil",
        "site", "platform", "commands", "popen2", "types", "inspect", "gc", "timeit", "trace", "pdb", "bdb",
        "cProfile", "profile", "doctest", "pydoc", "urllib", "urllib2", "http", "httplib", "ftplib", "smtplib",
        "telnetlib", "requests", "venv", "ensurepip", "distutils", "setuptools", "pip", "sqlite3", "shelve",
        "dbm", "tarfile", "zipfile", "_winapi", "msvcrt", "winreg", "resource",
        "fcntl", "mmap", "select", "selectors", "xmlrpc", "logging", "contextlib", "weakref", "sysconfig",
    }
)
#: From these modules only the allow-listed names above are accepted; everything else is refused
#: (``builtins.eval``/``exec``/``getattr``/``__import__``/``open``, ``codecs.open``, ``copyreg`` internals...).
_ALLOW_LISTED_ONLY_MODULES = frozenset({"builtins", "__builtin__", "_codecs", "codecs", "copyreg"})
#: Dangerous functions living in modules whose other members are harmless data types.
_REFUSED_NAMES = frozenset(
    {
        ("numpy", "load"), ("numpy", "fromfile"), ("numpy", "loadtxt"), ("numpy", "genfromtxt"),
        ("numpy", "memmap"), ("numpy.lib.npyio", "load"),
    }
)
#: How the refusal message names a module (os.system is pickled as posix.system on Linux).
_DISPLAY_MODULE = {"posix": "os", "nt": "os", "posixpath": "os.path", "ntpath": "os.path", "_io": "io"}


def _normalise_global(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names (``__builtin__.set``, ``copy_reg``...) to Python 3, as pickle's own find_class does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _refusal(module: str, name: str) -> str | None:
    """Return the refusal message for a global that must not be resolved, or None if it may be stood in."""
    root = module.split(".", 1)[0]
    refused = (
        root in _REFUSED_MODULES
        or module in _ALLOW_LISTED_ONLY_MODULES
        or root in _ALLOW_LISTED_ONLY_MODULES
        or (module, name) in _REFUSED_NAMES
    )
    if not refused:
        return None
    shown = _DISPLAY_MODULE.get(module, module)
    return f"refused: checkpoint tries to call {shown}.{name}"


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global outside the allow-list and never reads tensor storages."""

    def __init__(self, file: BinaryIO) -> None:
        # latin1 only matters for Python 2 str opcodes (numpy's documented choice); it never fails.
        super().__init__(file, encoding="latin1")
        self._stand_ins: dict[tuple[str, str], type[_StandIn]] = {}

    def find_class(self, module: str, name: str) -> Any:
        raw_module = module
        module, name = _normalise_global(module, name)
        safe = _SAFE_GLOBALS.get((module, name))
        if safe is not None:
            return safe
        message = _refusal(module, name) or _refusal(raw_module, name)
        if message is not None:
            raise _UnsafeGlobal(message)
        key = (module, name)
        cls = self._stand_ins.get(key)
        if cls is None:
            if len(self._stand_ins) >= _MAX_STAND_IN_CLASSES:
                raise pickle.UnpicklingError(f"more than {_MAX_STAND_IN_CLASSES} distinct classes")
            label = name.replace(".", "_") or "anonymous"
            cls = cast("type[_StandIn]", _StandInMeta(label, (_StandIn,), {"_sd_module": module, "_sd_name": name}))
            self._stand_ins[key] = cls
        return cls

    #: Called as ``persistent_load(pid)`` for every tensor storage; a class whose constructor is C code.
    persistent_load = _StoragePlaceholder


# ---- one restricted load, from a file or from an in-memory buffer --------------------------------------------


def _unpickle(stream: BinaryIO, path: Path) -> Any:
    """One restricted load; every failure becomes a CheckpointError (truncation reads as 'incomplete')."""
    try:
        return _RestrictedUnpickler(stream).load()
    except _UnsafeGlobal as exc:
        raise CheckpointError(str(exc), path) from None
    except EOFError:
        raise CheckpointError(_INCOMPLETE, path) from None
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc):
            raise CheckpointError(_INCOMPLETE, path) from None
        raise CheckpointError(f"corrupt checkpoint data ({_short_repr(str(exc), 80)})", path) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, UnicodeError) as exc:
        detail = _short_repr(f"{type(exc).__name__}: {exc}", 100)
        raise CheckpointError(f"corrupt checkpoint data ({detail})", path) from None
    except (MemoryError, RecursionError) as exc:
        raise CheckpointError(
            f"checkpoint data too large or too deeply nested ({type(exc).__name__})", path
        ) from None


class _BufferReader:
    """The file object the C unpickler reads an in-memory pickle from: its first ``peek()`` hands over the
    whole buffer, so there is no Python call per opcode (as with BytesIO) and no copy (as with BufferedReader).
    """

    __slots__ = ("_pos", "_view")

    def __init__(self, buffer: bytes | bytearray) -> None:
        self._view = memoryview(buffer)
        self._pos = 0

    def peek(self, size: int = 0) -> memoryview:
        return self._view[self._pos :]

    def read(self, size: int = -1) -> memoryview:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk = self._view[self._pos : end]
        self._pos = end
        return chunk

    def readline(self, size: int = -1) -> memoryview:
        rest = self._view[self._pos :]
        nl = bytes(rest[:size] if size is not None and size >= 0 else rest).find(b"\n")
        return self.read(len(rest) if nl < 0 else nl + 1)

    def readinto(self, target: Any) -> int:
        chunk = self.read(len(memoryview(target).cast("B")))
        memoryview(target).cast("B")[: len(chunk)] = chunk
        return len(chunk)


def _unpickle_buffer(data: bytes | bytearray, path: Path) -> Any:
    """One restricted load of an in-memory pickle (``data.pkl``, or the compiled pass's stream)."""
    return _unpickle(_BufferReader(data), path)  # type: ignore[arg-type]
