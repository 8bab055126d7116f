"""Read the training curves out of nnU-Net checkpoints without trusting them and without loading tensors.

Why this module exists
----------------------
nnU-Net stores everything the monitor needs (per-epoch losses, pseudo Dice, learning rate, epoch timestamps)
inside its checkpoints, next to hundreds of megabytes of network and optimizer tensors.  ``torch.load`` would

* execute whatever the pickle asks for (a checkpoint copied from elsewhere is untrusted input), and
* read and allocate every tensor, which for a 500 MB checkpoint costs far more than the dashboard can afford,
* and importing torch alone costs seconds.

So this module never imports torch.  A torch (>= 1.6) checkpoint is a zip archive whose ``<name>/data.pkl``
member holds the object tree, with tensors referring to ``<name>/data/<key>`` storages through pickle
"persistent ids".  We read only that one member and unpickle it with :class:`_RestrictedUnpickler`, which

* turns every persistent id into an inert :class:`_StoragePlaceholder` (storages are never read),
* resolves a short allow-list of constructors that cannot run foreign code (``collections.OrderedDict``,
  numpy scalar/array/dtype reconstruction, ``set``/``complex``/... and a latin-1-only ``_codecs.encode``),
* refuses globals from modules that can execute code or touch the system (``os.system``, ``builtins.eval``,
  ``subprocess.Popen``, ``functools.partial``...) with a :class:`CheckpointError` naming the culprit, and
* replaces every other class or function (torch, nnunet, anything unknown) by an inert stand-in that only
  records its name and the arguments it was given.

Old nnU-Net v1 ``.model`` files written by torch < 1.6 use the legacy format: a sequence of pickles (magic
number, protocol version, system info, the object, storage keys) followed by raw storage bytes.  We unpickle
only the first four, with the same restricted unpickler.

Speed: the dashboard polls checkpoints of running trainings, so a read should cost ~1/100 of ``torch.load``
(~3 ms for a 500 MB, 1000-epoch checkpoint on a 2-vCPU VM, where ``torch.load`` takes ~270 ms).  What makes
that possible: the zip member is located with a few ``pread`` calls instead of ``zipfile``'s Python parse
of one directory entry per tensor; the thousands of numpy scalars nnU-Net logs are decoded with numpy
before unpickling (see "Fast path, part 2"); stand-ins and storage placeholders are built by C
constructors; the half-megabyte buffer is neither copied nor re-allocated.  ``bench/bench_checkpoint.py``
measures it.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import contextlib
import datetime as _dt
import gc
import io
import itertools
import math
import os
import pathlib
import pickle
import reprlib
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import pandas as pd

try:  # numpy >= 2 moved the pickle helpers to numpy._core; 1.x has them in numpy.core
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray  # type: ignore[no-redef]

__all__ = ["CheckpointCurves", "CheckpointError", "read_checkpoint_curves"]

#: The first pickle of a legacy (pre-zip) torch file is this integer (torch.serialization.MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
#: nnU-Net's data.pkl is well below 1 MB even after 1000+ epochs; anything far larger is not a checkpoint
#: we want to parse in the dashboard process.
_MAX_PICKLE_BYTES = 64 * 1024 * 1024
_MAX_SIDECAR_BYTES = 16 * 1024 * 1024
_MAX_PLAIN_DEPTH = 64
#: A real checkpoint names a few dozen classes; a pickle naming 100 000 would only be a memory bomb.
_MAX_STAND_IN_CLASSES = 10_000

#: The per-epoch lists nnU-Net v2's ``LocalLogger`` keeps (``checkpoint['logging']``).
_V2_CURVES = (
    "mean_fg_dice",
    "ema_fg_dice",
    "dice_per_class_or_region",
    "train_losses",
    "val_losses",
    "lrs",
    "epoch_start_timestamps",
    "epoch_end_timestamps",
)
#: nnU-Net v1 trainers are constructed with these positional arguments (``nnUNetTrainer.init_args``).
_V1_INIT_ARG_NAMES = (
    "plans_file",
    "fold",
    "output_folder",
    "dataset_directory",
    "batch_dice",
    "stage",
    "unpack_data",
    "deterministic",
    "fp16",
)


class CheckpointError(Exception):
    """A checkpoint could not be read; ``str(error)`` is a short, human-readable statement of the problem.

    The dashboard shows the message next to the run, so it says what is wrong ("incomplete (still being
    written?)", "refused: checkpoint tries to call os.system") rather than dumping a traceback.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None


@dataclass(frozen=True, eq=False)  # eq=False: a DataFrame field has no usable == / hash
class CheckpointCurves:
    """The per-epoch curves of one checkpoint, plus what identifies the training run.

    ``frame`` has one row per completed epoch covered by *all* the curves used, with the columns
    ``epoch, lr, train_loss, val_loss, mean_fg_dice, ema_fg_dice, dice_1..dice_K, epoch_time_s, epoch_end``
    (v1 checkpoints have no ``dice_k`` columns and NaN ``lr``/``ema_fg_dice``/``epoch_time_s``, NaT
    ``epoch_end``: nnU-Net v1 never stored them).  Anything that had to be dropped or could not be converted
    is described in ``problems`` so nothing is lost silently.
    """

    path: Path
    kind: str  # "v2" or "v1"
    epochs: int
    current_epoch: int | None
    trainer_name: str | None
    frame: pd.DataFrame
    init_args: dict[str, Any]
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# Inert objects produced instead of running code
# --------------------------------------------------------------------------------------------------------------


class _StandInMeta(type):
    """Metaclass so that a stand-in *class* (e.g. ``torch.float32`` used as a value) prints its origin."""

    _sd_module: str
    _sd_name: str

    def __repr__(cls) -> str:
        return f"{cls._sd_module}.{cls._sd_name}"


class _StandIn(Exception, metaclass=_StandInMeta):
    """Inert replacement for a class or function named by the pickle (torch, nnunet, unknown).

    Calling it (REDUCE) or ``cls.__new__`` (NEWOBJ) only stores the arguments in ``.args``; ``__setstate__``
    (BUILD) and the container opcodes (APPENDS, SETITEMS, ADDITEMS) only *record* what they were given.
    Nothing is looked up or executed, so a checkpoint that refers to code we do not have (custom trainers,
    other torch versions) still loads.  The base class is ``Exception`` for one reason: its constructor is C
    code that accepts and stores any positional arguments, so the few hundred tensors of a checkpoint cost
    no Python frame each.  Nothing ever raises these.  A fresh subclass is made per unpickler, so nothing
    a pickle does to one can leak into the next load.
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


#: torch storage class names -> dtype names, only used to describe tensors nicely.
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "bytes",
}


class _StoragePlaceholder(Exception):
    """What a tensor storage reference (pickle persistent id) becomes: its description, never its bytes.

    The unpickler calls the class itself as ``persistent_load(pid)``; like :class:`_StandIn` it derives from
    ``Exception`` only so that construction is C code that keeps ``pid`` in ``.args``.  Never raised.
    """

    @property
    def dtype(self) -> str:
        pid = self.args[0] if self.args else None
        if isinstance(pid, tuple) and len(pid) >= 5 and isinstance(pid[1], _StandInMeta):
            return _STORAGE_DTYPES.get(pid[1]._sd_name, _clip(pid[1]._sd_name, 40))
        return "?"

    def __repr__(self) -> str:
        pid = self.args[0] if self.args else None
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            return _clip(f"<storage {self.dtype}[{pid[4]!r}] on {pid[3]!s}, not read>", 120)
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
    """Readable description, e.g. ``torch.device('cuda', 0)`` or ``<tensor float32[320, 320, 3, 3, 3]>``."""
    cls = type(obj)
    args = obj.args
    if level <= 0:
        return f"{cls._sd_module}.{cls._sd_name}(...)"
    if cls._sd_name.startswith("_rebuild_tensor") and args and isinstance(args[0], _StoragePlaceholder):
        shape = args[2] if len(args) > 2 and isinstance(args[2], tuple) else ()
        dims = ", ".join(_BRIEF.repr1(d, 1) for d in shape[:8]) + (", ..." if len(shape) > 8 else "")
        return f"<tensor {args[0].dtype}[{dims}], not read>"
    if cls._sd_name == "_rebuild_parameter" and args:
        return f"Parameter({_BRIEF.repr1(args[0], level - 1)})"
    parts = [_BRIEF.repr1(a, level - 1) for a in args[:8]] + (["..."] if len(args) > 8 else [])
    return _clip(f"{cls._sd_module}.{cls._sd_name}({', '.join(parts)})", 300)


# --------------------------------------------------------------------------------------------------------------
# The allow-list: constructors that cannot reach foreign code, wrapped so their arguments stay bounded
# --------------------------------------------------------------------------------------------------------------


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
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, 'latin1'); allow exactly that.  Other codec
    # names would make the codec registry import modules, which we do not want a file to decide.
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
    # numpy always pickles arrays as _reconstruct(ndarray, (0,), b'b') followed by __setstate__ with the real
    # shape and data; an attacker-chosen shape here would only allocate memory.
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
    # The C type itself (immutable, so BUILD cannot patch it; its instances take BUILD state such as a state
    # dict's _metadata); it only iterates lists/dicts the pickle built.
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
            cls = _StandInMeta(label, (_StandIn,), {"_sd_module": module, "_sd_name": name})
            self._stand_ins[key] = cls
        return cls

    #: Called as ``persistent_load(pid)`` for every tensor storage; a class whose constructor is C code.
    persistent_load = _StoragePlaceholder


# --------------------------------------------------------------------------------------------------------------
# Reading the files
# --------------------------------------------------------------------------------------------------------------

_INCOMPLETE = "incomplete (still being written?)"


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
    """The file object the C unpickler reads an in-memory pickle from, without copying it.

    Its first ``peek()`` hands over the whole buffer, so the unpickler works on it directly: no Python call
    per opcode (a bare BytesIO costs one ``read()`` per opcode, 2-3x slower) and no copy (a BufferedReader
    copies the half megabyte, and in a VM the page faults of every fresh large buffer cost more than the copy).
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
    return _unpickle(_BufferReader(data), path)  # type: ignore[arg-type]


# Fast path, part 1: torch's zip layout read with four pread() calls ----------------------------------------

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s6H3L5H2L")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


def _pread_into(fd: int, size: int, offset: int) -> bytearray | None:
    """``size`` bytes at ``offset`` into a new bytearray (which the fast path then edits in place)."""
    out = bytearray(size)
    view = memoryview(out)
    done = 0
    while done < size:
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [view[done:]], offset + done)
        else:  # pragma: no cover - platforms without preadv
            chunk = os.pread(fd, size - done, offset + done)
            view[done : done + len(chunk)] = chunk
            got = len(chunk)
        if got <= 0:
            return None
        done += got
    return out


def _pread(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


def _torch_zip_data_pkl(fd: int, size: int, verify_crc: bool = False) -> bytearray | None:
    """``data.pkl`` of a torch zip, read from the end records, the first directory entry and the member.

    torch writes ``data.pkl`` first and its zip64 end records last, so this touches a few hundred bytes plus
    the member itself.  ``zipfile`` would parse the whole central directory (one entry per tensor) in Python.
    Returns None whenever the layout is not exactly that (the caller falls back to ``zipfile``), including a
    missing end record (file still being written).  Like ``torch.load`` it does not verify the member's CRC
    unless asked (0.2 ms, a tenth of the whole read); a rewrite during the read is caught by the caller's
    fstat comparison instead.
    """
    tail_len = min(size, _EOCD.size + _ZIP64_LOCATOR.size + _ZIP64_EOCD.size)
    tail = _pread(fd, tail_len, size - tail_len)
    if len(tail) != tail_len or tail_len < _EOCD.size:
        return None
    sig, _, _, _, entries, cd_size, cd_offset, comment_len = _EOCD.unpack(tail[-_EOCD.size :])
    if sig != b"PK\x05\x06" or comment_len:
        return None
    if 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF:
        if tail_len < _EOCD.size + _ZIP64_LOCATOR.size + _ZIP64_EOCD.size:
            return None
        locator = tail[-_EOCD.size - _ZIP64_LOCATOR.size : -_EOCD.size]
        lsig, _, eocd64_offset, _ = _ZIP64_LOCATOR.unpack(locator)
        if lsig != b"PK\x06\x07":
            return None
        if eocd64_offset == size - tail_len:
            record = tail[: _ZIP64_EOCD.size]
        else:
            record = _pread(fd, _ZIP64_EOCD.size, eocd64_offset)
            if len(record) != _ZIP64_EOCD.size:
                return None
        fields = _ZIP64_EOCD.unpack(record)
        if fields[0] != b"PK\x06\x06":
            return None
        cd_size, cd_offset = fields[8], fields[9]
    if cd_offset + cd_size > size:
        return None
    head = _pread(fd, _CENTRAL_ENTRY.size + 256, cd_offset)
    if len(head) < _CENTRAL_ENTRY.size:
        return None
    (sig, _, _, _, method, _, _, crc, csize, usize, name_len, _, _, _, _, _, local_offset) = (
        _CENTRAL_ENTRY.unpack(head[: _CENTRAL_ENTRY.size])
    )
    name = head[_CENTRAL_ENTRY.size : _CENTRAL_ENTRY.size + name_len]
    if (
        sig != b"PK\x01\x02"
        or method != zipfile.ZIP_STORED
        or csize != usize
        or not name.endswith(b"/data.pkl")
        or name.count(b"/") != 1
        or usize > _MAX_PICKLE_BYTES
        or 0xFFFFFFFF in (csize, local_offset)
    ):
        return None
    local = _pread(fd, _LOCAL_HEADER.size, local_offset)
    if len(local) != _LOCAL_HEADER.size:
        return None
    lsig, _, _, _, _, _, _, _, _, lname_len, lextra_len = _LOCAL_HEADER.unpack(local)
    if lsig != b"PK\x03\x04":
        return None
    data = _pread_into(fd, usize, local_offset + _LOCAL_HEADER.size + lname_len + lextra_len)
    if data is None or (verify_crc and zlib.crc32(data) != crc):
        return None
    return data


# Fast path, part 2: numpy float scalars turned into plain floats before unpickling ----------------------------
#
# nnU-Net logs numpy scalars (np.float32 pseudo Dice and losses, np.float64 where numpy promotes).  Pickled
# at protocol 2 each one is 15 opcodes with two calls: scalar(dtype, _codecs.encode('<latin-1 chars>',
# 'latin1')).  A 1000-epoch run has ~7000 of them; the C unpickler needs ~2 us each, which alone is 5x the
# whole budget of a read.
# The rewrite below finds them with numpy, decodes all payloads in one go and overwrites each sequence *in
# place*, at the same length, with  SHORT_BINBYTES <rest of the old bytes> POP BINFLOAT <value>, keeping its
# final memo PUT (other objects may refer to the scalar: nnU-Net's _best_ema is one of the EMA entries).
# The unpickler then does 4 trivial opcodes per scalar instead of 15 with two calls.  (Measured and dropped:
# one skip per run of back-to-back scalars, dropping the PUTs of scalars nothing refers to, and packing runs
# of list items into one bytes object.  Each saves a part of the unpickling but costs as much or more in the
# rewrite, or needs to know which memo slots are read again: a second full scan or a retry.)
#
# Only sequences whose every memo reference was verified to be numpy's scalar(), _codecs.encode, 'latin1'
# and a little-endian float dtype are touched, so no opcode other than GET/PUT/BINUNICODE/TUPLE2/REDUCE is
# ever overwritten: the rewrite only *removes* calls and pushes floats, and the result still goes through
# the restricted unpickler, so every global in the file is checked exactly as before.  If anything does not
# fit, or the rewritten bytes do not load, the original bytes are unpickled instead.

_GET_LONG, _GET_SHORT, _PUT_LONG, _PUT_SHORT = 0x6A, 0x68, 0x72, 0x71  # LONG_BINGET, BINGET, LONG_BINPUT, BINPUT
_BINUNICODE, _TUPLE2, _REDUCE = 0x58, 0x86, 0x52
_SCALAR_GLOBALS = (b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n")
_ENCODE_GLOBAL = b"c_codecs\nencode\n"
_DTYPE_GLOBAL = b"cnumpy\ndtype\n"
_LATIN1 = b"X\x06\x00\x00\x00latin1"
_LITTLE = b"X\x01\x00\x00\x00<"
_DTYPE_STATE_TAIL = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # (3, '<', None, None, None, -1, -1, 0)
_MIN_REWRITE_BYTES = 16384


def _skip_put(data: bytes, at: int) -> int:
    """Offset after a memo PUT at ``at``, or -1."""
    if 0 <= at < len(data):
        if data[at] == _PUT_LONG:
            return at + 5
        if data[at] == _PUT_SHORT:
            return at + 2
    return -1


def _put_slot(data: bytes, at: int) -> int:
    if at >= 0 and at + 5 <= len(data) and data[at] == _PUT_LONG:
        return int.from_bytes(data[at + 1 : at + 5], "little")
    if at >= 0 and at + 2 <= len(data) and data[at] == _PUT_SHORT:
        return data[at + 1]
    return -1


def _memo_slot_after(data: bytes, needle: bytes, candidates: Sequence[int] | None = None) -> tuple[int, int]:
    """Memo slot stored right after the first ``needle`` (at one of ``candidates`` if given) and the offset
    after that PUT; (-1, -1) if absent.  The pickler emits each global / interned string once, then GETs it."""
    positions = candidates if candidates is not None else [data.find(needle)]
    for pos in positions:
        if pos >= 0 and data.startswith(needle, pos):
            at = pos + len(needle)
            slot = _put_slot(data, at)
            if slot >= 0:
                return slot, _skip_put(data, at)
    return -1, -1


def _pushes_slot(data: bytes, pos: int, slot: int, def_end: int) -> bool:
    """Whether the opcode ending at ``pos`` pushes memo ``slot`` (a GET of it, or its defining op + PUT)."""
    if pos == def_end:
        return True
    if pos >= 5 and data[pos - 5] == _GET_LONG and int.from_bytes(data[pos - 4 : pos], "little") == slot:
        return True
    return pos >= 2 and data[pos - 2] == _GET_SHORT and data[pos - 1] == slot


def _float_dtype_slots(data: bytes, candidates: Sequence[int], little: int) -> dict[int, int]:
    """Memo slot -> itemsize of each ``numpy.dtype('f2'|'f4'|'f8', False, True)`` with little-endian state.

    ``candidates`` are offsets of ``X\\x02\\0\\0\\0f``; the dtype class before it must be the
    ``numpy.dtype`` global and the state's byte order the string '<' (memo slot ``little``).
    """
    cls_slot, cls_end = _memo_slot_after(data, _DTYPE_GLOBAL)
    found: dict[int, int] = {}
    for pos in candidates:
        code = data[pos + 6 : pos + 7]
        at = _skip_put(data, pos + 7)
        if code not in (b"2", b"4", b"8") or at < 0 or not _pushes_slot(data, pos, cls_slot, cls_end):
            continue
        if not data.startswith(b"\x89\x88\x87", at):  # NEWFALSE NEWTRUE TUPLE3: ('f8', False, True)
            continue
        at = _skip_put(data, at + 3)
        if at < 0 or data[at] != _REDUCE:
            continue
        slot = _put_slot(data, at + 1)
        at = _skip_put(data, at + 1)
        if at < 0 or not data.startswith(b"(K\x03", at):
            continue
        at += 3
        if data.startswith(_LITTLE, at):
            at = _skip_put(data, at + len(_LITTLE))
        elif _pushes_slot(data, at + 5, little, -1) and data[at] == _GET_LONG:
            at += 5
        elif _pushes_slot(data, at + 2, little, -1) and data[at] == _GET_SHORT:
            at += 2
        else:
            continue
        if at > 0 and data.startswith(_DTYPE_STATE_TAIL, at):
            at = _skip_put(data, at + len(_DTYPE_STATE_TAIL))
            if at > 0 and data[at : at + 1] == b"b":
                found[slot] = int(code)
    return found


def _gets(buf: np.ndarray, u32: np.ndarray, at: np.ndarray, slot: int) -> np.ndarray:
    """Mask: a memo GET of ``slot`` at offsets ``at`` (BINGET for slots < 256, else LONG_BINGET)."""
    if slot < 256:
        return (buf[at] == _GET_SHORT) & (buf[at + 1] == slot)
    # byte by byte: aligned one-byte gathers are much cheaper than unaligned four-byte ones
    ok = buf[at] == _GET_LONG
    for k, byte in enumerate(slot.to_bytes(4, "little"), start=1):
        ok &= buf[at + k] == byte
    return ok


def _dtype_sizes(buf: np.ndarray, u32: np.ndarray, at: np.ndarray, width: int, table: np.ndarray) -> np.ndarray:
    """Itemsize of the float dtype pushed by a ``width``-byte GET at ``at`` (0: not such a GET)."""
    op, slot = (_GET_SHORT, buf[at + 1].astype(np.int64)) if width == 2 else (_GET_LONG, u32[at + 1].astype(np.int64))
    return np.where(buf[at] == op, table[np.minimum(slot, len(table) - 1)], 0)


def _inline_float_scalars(data: bytearray) -> bool:
    """Replace verified numpy float scalar reconstructions in ``data`` by BINFLOAT, in place (see above).

    Returns whether anything was replaced.  Everything is read before the first byte is written.
    """
    n = len(data)
    if n < _MIN_REWRITE_BYTES:
        return False
    fn_slot = _memo_slot_after(data, _SCALAR_GLOBALS[0])[0]
    if fn_slot < 0:
        fn_slot = _memo_slot_after(data, _SCALAR_GLOBALS[1])[0]
    enc_slot = _memo_slot_after(data, _ENCODE_GLOBAL)[0]
    latin_slot = _memo_slot_after(data, _LATIN1)[0]
    if min(fn_slot, enc_slot, latin_slot) < 0:
        return False
    buf = np.frombuffer(data, dtype=np.uint8)
    u32 = np.ndarray((n - 3,), dtype="<u4", buffer=data, strides=(1,))  # u32[i]: the 4 bytes at offset i
    # every BINUNICODE opcode (gathers below stay inside the buffer) and its 4-byte length
    xs = np.flatnonzero(buf[15 : n - 64] == _BINUNICODE) + 15
    length = u32[xs + 1]
    little = _memo_slot_after(data, _LITTLE, xs[length == 1].tolist())[0]
    dtypes = _float_dtype_slots(data, xs[(length == 2) & (buf[xs + 5] == 0x66)].tolist(), little)  # 'f?'
    if not dtypes:
        return False
    # numpy scalar candidates: GET scalar, GET dtype, GET encode, BINUNICODE <2..16 bytes>, then the fixed
    # tail.  A GET is 2 bytes for memo slots < 256 and 5 bytes above.
    w_fn, w_enc, w_latin = (2 if slot < 256 else 5 for slot in (fn_slot, enc_slot, latin_slot))
    ok = (length >= 2) & (length <= 16)
    xs, length = xs[ok], length[ok].astype(np.int64)
    ok = _gets(buf, u32, xs - w_enc, enc_slot)
    xs, length = xs[ok], length[ok]
    table = np.zeros(max(dtypes) + 2, dtype=np.int64)  # memo slot -> itemsize; 0: not a float dtype
    table[list(dtypes)] = list(dtypes.values())
    itemsize = np.zeros(len(xs), dtype=np.int64)
    starts = np.zeros(len(xs), dtype=np.int64)
    for w_dt in sorted({2 if slot < 256 else 5 for slot in dtypes}):
        at = xs - w_enc - w_dt
        size = _dtype_sizes(buf, u32, at, w_dt, table)
        hit = (itemsize == 0) & (size > 0) & _gets(buf, u32, at - w_fn, fn_slot)
        itemsize[hit], starts[hit] = size[hit], at[hit] - w_fn
    ok = itemsize > 0
    xs, length, itemsize, starts = xs[ok], length[ok], itemsize[ok], starts[ok]
    payload_end = xs + 5 + length
    # the tail's five PUTs are all 2 or all 5 bytes wide (a scalar straddling slot 256 is left alone)
    stops = np.full(len(xs), -1, dtype=np.int64)  # offset of the final PUT, which is kept
    first_put = buf[payload_end]
    for w_put, put in ((5, _PUT_LONG), (2, _PUT_SHORT)):
        g = w_latin
        tail = ((w_put + g, _TUPLE2), (w_put + g + 1, put), (2 * w_put + g + 1, _REDUCE),
                (2 * w_put + g + 2, put), (3 * w_put + g + 2, _TUPLE2), (3 * w_put + g + 3, put),
                (4 * w_put + g + 3, _REDUCE), (4 * w_put + g + 4, put))
        sel = first_put == put
        if not sel.any():
            continue
        idx = None if sel.all() else np.flatnonzero(sel)
        ends = payload_end if idx is None else payload_end[idx]
        hit = _gets(buf, u32, ends + w_put, latin_slot)
        for offset, opcode in tail:
            hit &= buf[ends + offset] == opcode
        if idx is None:
            stops[hit] = ends[hit] + 4 * w_put + g + 4
        else:
            stops[idx[hit]] = ends[hit] + 4 * w_put + g + 4
    ok = (stops >= 0) & (length >= itemsize) & (length <= 2 * itemsize)  # latin-1 as UTF-8: 1-2 bytes/char
    # each payload must be whole UTF-8 on its own: no continuation byte first, no lead byte last
    ok &= ((buf[xs + 5] & 0xC0) != 0x80) & (buf[payload_end - 1] < 0xC0)
    xs, starts, stops, itemsize, length = xs[ok], starts[ok], stops[ok], itemsize[ok], length[ok]
    if not len(xs) or np.any(starts[1:] < stops[:-1]):
        return False
    # all payloads at once, decoded in one go
    offsets = np.cumsum(length) - length
    payloads = buf[np.repeat(xs + 5 - offsets, length) + np.arange(int(offsets[-1] + length[-1]))]
    try:
        raw = np.frombuffer(payloads.tobytes().decode("utf-8").encode("latin-1"), dtype=np.uint8)
    except UnicodeError:
        return False
    if len(raw) != int(itemsize.sum()):
        return False
    if int(itemsize.min()) == int(itemsize.max()):
        values = raw.view(f"<f{int(itemsize[0])}")
    else:  # float64 and float32 (or float16) interleaved: read each value where it starts
        values = np.empty(len(xs))
        raw_offsets = np.cumsum(itemsize) - itemsize
        for size in (2, 4, 8):
            sel = itemsize == size
            if sel.any():
                at = np.ndarray((len(raw) - size + 1,), dtype=f"<f{size}", buffer=raw, strides=(1,))
                values[sel] = at[raw_offsets[sel]]

    # Writes: SHORT_BINBYTES <rest of the old bytes> POP BINFLOAT <8 bytes>, then the kept final PUT.
    view = np.frombuffer(data, dtype=np.uint8)
    view[starts] = 0x43
    view[starts + 1] = stops - starts - 12
    view[stops - 10] = 0x30
    view[stops - 9] = 0x47
    np.ndarray((n - 7,), dtype=">f8", buffer=data, strides=(1,))[stops - 8] = values
    return True


def _load_zip(fd: int, size: int, fh: BinaryIO, path: Path) -> Any:
    """torch >= 1.6 format: the ``*/data.pkl`` member only, never the ``data/<key>`` storages."""
    data = _torch_zip_data_pkl(fd, size) or bytearray(_zip_data_pkl_slow(fh, path))
    if _inline_float_scalars(data):
        try:
            return _unpickle_buffer(data, path)
        except CheckpointError as exc:
            if str(exc).startswith("refused"):
                raise
        # anything else: let the untouched bytes decide
        data = _torch_zip_data_pkl(fd, size) or bytearray(_zip_data_pkl_slow(fh, path))
    return _unpickle_buffer(data, path)


def _zip_data_pkl_slow(fh: BinaryIO, path: Path) -> bytes:
    """Any zip layout, through ``zipfile`` (still only the central directory and data.pkl are read)."""
    try:
        fh.seek(0)
        with zipfile.ZipFile(fh) as archive:
            names = [
                n for n in archive.namelist() if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)
            ]
            if not names:
                raise CheckpointError("not a torch checkpoint (zip archive without data.pkl)", path)
            info = archive.getinfo(names[0])
            if info.file_size > _MAX_PICKLE_BYTES:
                raise CheckpointError(f"not an nnU-Net checkpoint (data.pkl is {info.file_size >> 20} MB)", path)
            return archive.read(info)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError, NotImplementedError,
            KeyError, IndexError, struct.error):
        # The file starts like a zip archive but its directory (written last) is missing or garbled: nnU-Net
        # rewrites checkpoints in place, so this is almost always a save in progress.
        raise CheckpointError(_INCOMPLETE, path) from None


def _load_legacy(fh: BinaryIO, path: Path) -> Any:
    """torch < 1.6 format: magic, protocol version, sys info, object; the storage bytes after it are skipped."""
    fh.seek(0)
    reader = io.BufferedReader(fh)  # type: ignore[arg-type]  # the C unpickler peeks, then consumes exactly
    try:
        magic = _unpickle(reader, path)
        if magic != _LEGACY_MAGIC:
            raise CheckpointError("not a checkpoint (a pickle, but not written by torch.save)", path)
        version = _unpickle(reader, path)
        if version != _LEGACY_PROTOCOL_VERSION:
            raise CheckpointError(f"unsupported legacy torch checkpoint (protocol version {version!r})", path)
        _unpickle(reader, path)  # sys info (endianness, type sizes): only relevant to storages we never read
        return _unpickle(reader, path)
    finally:
        reader.detach()  # the caller still owns (and closes) the file


def _load_checkpoint_object(path: Path) -> Any:
    """Return the unpickled (inert) top-level object of a torch checkpoint file."""
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below; raw I/O, no read-ahead
    except FileNotFoundError:
        raise CheckpointError("file not found", path) from None
    except IsADirectoryError:
        raise CheckpointError("not a checkpoint (a directory)", path) from None
    except OSError as exc:
        raise CheckpointError(f"cannot open ({exc.strerror or exc})", path) from None
    with fh:
        fd = fh.fileno()
        try:
            before = os.fstat(fd)
            head = _pread(fd, 512, 0)
        except OSError as exc:
            raise CheckpointError(f"cannot read ({exc.strerror or exc})", path) from None
        if before.st_size == 0 or not head:
            raise CheckpointError("empty file (0 bytes; still being written?)", path)
        try:
            if head.startswith(_ZIP_MAGIC):
                obj = _load_zip(fd, before.st_size, fh, path)
            elif head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
                obj = _load_legacy(fh, path)
            elif len(head) >= 262 and head[257:262] == b"ustar":
                raise CheckpointError("unsupported torch < 0.4 (tar) checkpoint", path)
            else:
                raise CheckpointError("not a checkpoint (neither a torch zip archive nor a legacy torch file)", path)
        except CheckpointError:
            if _rewritten(fd, before):
                raise CheckpointError(_INCOMPLETE, path) from None
            raise
        except OSError as exc:
            raise CheckpointError(f"cannot read ({exc.strerror or exc})", path) from None
        if _rewritten(fd, before):  # nnU-Net rewrote the file in place while we read it
            raise CheckpointError(_INCOMPLETE, path)
        return obj


def _rewritten(fd: int, before: os.stat_result) -> bool:
    try:
        after = os.fstat(fd)
    except OSError:
        return True
    return (after.st_size, after.st_mtime_ns, after.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino)


# --------------------------------------------------------------------------------------------------------------
# Turning the object tree into curves
# --------------------------------------------------------------------------------------------------------------


#: Immutable values ``_plain`` returns as they are (checked by exact type: subclasses go the slow way).
_ATOMIC_TYPES = frozenset({type(None), bool, int, float, str, bytes, complex, _dt.date, _dt.datetime, _dt.time,
                           _dt.timedelta, _dt.timezone})


def _plain(obj: Any) -> Any:
    """Plain-python copy: containers and numbers kept, numpy unwrapped, stand-ins/storages as repr strings.

    A pickle can build cycles (they become "<recursive reference>"), nest deeply (cut at 64 levels) and
    share one container many times at every level (converted once and shared again, so the work stays
    linear in the size of the file, not exponential).
    """
    active: set[int] = set()
    done: dict[int, Any] = {}

    def convert(item: Any, depth: int) -> Any:
        kind = type(item)
        if kind in _ATOMIC_TYPES:
            return item
        if kind is not dict and kind is not list and kind is not tuple:
            if isinstance(item, np.generic):
                return item.item()
            if isinstance(item, (pathlib.PurePath, np.dtype)):
                return str(item)
            if isinstance(item, (_StandIn, _StoragePlaceholder, _StandInMeta)):
                return _short_repr(item, 300)
        key = id(item)
        if key in active:
            return "<recursive reference>"
        if key in done:
            return done[key]
        if depth >= _MAX_PLAIN_DEPTH:
            return "<too deeply nested>"
        active.add(key)
        try:
            out = convert_container(item, kind, depth)
        finally:
            active.discard(key)
        done[key] = out
        return out

    def convert_container(item: Any, kind: type, depth: int) -> Any:
        if kind is list or kind is tuple or (kind is not dict and isinstance(item, (list, tuple))):
            items = [v if type(v) in _ATOMIC_TYPES else convert(v, depth + 1) for v in item]
            return items if isinstance(item, list) else tuple(items)
        if kind is dict or isinstance(item, Mapping):
            out: dict[Any, Any] = {}
            for key, value in item.items():
                if type(key) not in _ATOMIC_TYPES:
                    key = convert(key, depth + 1)
                    try:
                        hash(key)
                    except TypeError:
                        key = _short_repr(key)
                out[key] = value if type(value) in _ATOMIC_TYPES else convert(value, depth + 1)
            return out
        if isinstance(item, np.ndarray):
            return [convert(v, depth + 1) for v in item.ravel().tolist()] if item.dtype.hasobject else item.tolist()
        if isinstance(item, (set, frozenset)):
            return sorted((convert(v, depth + 1) for v in item), key=repr)
        return _short_repr(item)

    return convert(obj, 0)


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


def _why_not_number(value: Any) -> str:
    if isinstance(value, _StandIn):
        cls = type(value)
        return "torch tensors (not read)" if cls._sd_name.startswith("_rebuild") else repr(cls)
    if isinstance(value, np.ndarray):
        return f"arrays of shape {value.shape}"
    return type(value).__name__


def _float_curve(values: Sequence[Any], label: str, problems: list[str]) -> np.ndarray:
    """Convert one logged list to float64 exactly (float32/float64 widen losslessly; None becomes NaN)."""
    try:  # one C loop for the usual floats / numpy scalars
        if type(values) is list:
            return np.fromiter(values, np.float64, len(values))
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 1 and arr.shape[0] == len(values):
            return arr
    except (TypeError, ValueError, OverflowError):
        pass
    out = np.full(len(values), np.nan)
    bad: dict[str, int] = {}
    for i, value in enumerate(values):
        number = _scalar_to_float(value)
        if number is None:
            reason = _why_not_number(value)
            bad[reason] = bad.get(reason, 0) + 1
        else:
            out[i] = number
    for reason, count in bad.items():
        problems.append(f"{label}: {count} value(s) are {reason}, shown as NaN")
    return out


def _dice_matrix(entries: Sequence[Any], problems: list[str]) -> np.ndarray:
    """Per-class Dice, one row per epoch, NaN-padded if classes are missing in some epochs."""
    try:  # the usual case, equal-length lists of numbers: one C loop over them all (2x np.asarray's speed)
        if type(entries) is list and entries and set(map(type, entries)) == {list}:
            widths = set(map(len, entries))
            if len(widths) == 1:
                width = widths.pop()
                flat = np.fromiter(itertools.chain.from_iterable(entries), np.float64, len(entries) * width)
                return flat.reshape(len(entries), width)
        matrix = np.asarray(entries, dtype=np.float64)
        if matrix.ndim == 2 and matrix.shape[0] == len(entries):
            return matrix
    except (TypeError, ValueError, OverflowError):
        pass
    rows: list[np.ndarray] = []
    bad = 0
    for entry in entries:
        seq: Sequence[Any]
        if isinstance(entry, np.ndarray):
            seq = list(entry.reshape(-1))
        elif isinstance(entry, (list, tuple)):
            seq = entry
        else:
            seq = [entry]
        row_problems: list[str] = []
        rows.append(_float_curve(seq, "dice_per_class_or_region", row_problems))
        bad += bool(row_problems)
    if bad:
        problems.append(f"dice_per_class_or_region: {bad} epoch(s) contain non-numeric values, shown as NaN")
    width = max((len(r) for r in rows), default=0)
    matrix = np.full((len(rows), width), np.nan)
    ragged = 0
    for i, row in enumerate(rows):
        matrix[i, : len(row)] = row
        ragged += len(row) != width
    if ragged:
        problems.append(
            f"dice_per_class_or_region: {ragged} epoch(s) have fewer than {width} classes (NaN-padded)"
        )
    return matrix


#: Timestamps outside 1970..2200 cannot be nnU-Net's time.time() (and would overflow datetime64[ns]).
_MAX_TIMESTAMP_S = 7.3e9


def _utc_times(seconds: np.ndarray, problems: list[str]) -> pd.DatetimeIndex:
    """``pd.to_datetime(seconds, unit="s", utc=True)``, same nanoseconds, ~5x faster (it is per poll)."""
    valid = np.isfinite(seconds) & (seconds >= 0) & (seconds <= _MAX_TIMESTAMP_S)
    if int(valid.sum()) != int(np.isfinite(seconds).sum()):
        problems.append("epoch_end_timestamps: values outside 1970..2200 shown as NaT")
    v = np.where(valid, seconds, 0.0)
    whole = np.trunc(v)
    ns = whole.astype(np.int64) * 1_000_000_000 + (np.round(v - whole, 9) * 1e9).astype(np.int64)
    ns[~valid] = np.iinfo(np.int64).min  # NaT
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")


def _as_int(value: Any) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return None


def _truncate(curves: dict[str, Sequence[Any]], problems: list[str], what: str) -> int:
    """Length of the shortest curve; says which curves lose values (a checkpoint written mid-epoch)."""
    lengths = {name: len(values) for name, values in curves.items()}
    n = min(lengths.values(), default=0)
    longer = {name: length for name, length in lengths.items() if length > n}
    if longer:
        shortest = ", ".join(sorted(name for name, length in lengths.items() if length == n))
        extra = ", ".join(f"{name} ({length - n} more)" for name, length in sorted(longer.items()))
        problems.append(
            f"{what} have unequal lengths: using the {n} epoch(s) covered by the shortest ({shortest}); "
            f"dropped the last values of {extra}"
        )
    return n


def _build_frame(
    n: int,
    problems: list[str],
    *,
    lr: np.ndarray | None,
    train_loss: np.ndarray | None,
    val_loss: np.ndarray | None,
    mean_fg_dice: np.ndarray | None,
    ema_fg_dice: np.ndarray | None,
    dice: np.ndarray | None,
    start: np.ndarray | None,
    end: np.ndarray | None,
) -> pd.DataFrame:
    def col(values: np.ndarray | None) -> np.ndarray:
        return np.full(n, np.nan) if values is None else values[:n]

    columns: dict[str, Any] = {
        "epoch": np.arange(n, dtype=np.int64),
        "lr": col(lr),
        "train_loss": col(train_loss),
        "val_loss": col(val_loss),
        "mean_fg_dice": col(mean_fg_dice),
        "ema_fg_dice": col(ema_fg_dice),
    }
    if dice is not None:
        for k in range(dice.shape[1]):
            columns[f"dice_{k + 1}"] = dice[:n, k]
    end_s = col(end)
    columns["epoch_time_s"] = end_s - col(start)
    columns["epoch_end"] = _utc_times(end_s, problems)
    return pd.DataFrame(columns, copy=False)


def _curves_v2(ckpt: Mapping[str, Any], path: Path) -> CheckpointCurves:
    logging = ckpt.get("logging")
    if not isinstance(logging, Mapping):
        raise CheckpointError("nnU-Net v2 checkpoint without a 'logging' dict (no curves stored)", path)
    problems: list[str] = []
    curves: dict[str, Sequence[Any]] = {}
    for name in _V2_CURVES:
        values = logging.get(name)
        if values is None:
            problems.append(f"logging has no '{name}'; its column is NaN")
        elif isinstance(values, (list, tuple)):
            curves[name] = values
        elif isinstance(values, np.ndarray):
            curves[name] = list(values) if values.ndim else [values]
        else:
            problems.append(f"logging['{name}'] is {_why_not_number(values)}, not a list; ignored")
    if not curves:
        raise CheckpointError("nnU-Net v2 checkpoint whose 'logging' holds none of nnU-Net's curves", path)
    n = _truncate(curves, problems, "logged curves")

    def floats(name: str) -> np.ndarray | None:
        return _float_curve(curves[name][:n], name, problems) if name in curves else None

    dice = _dice_matrix(curves["dice_per_class_or_region"][:n], problems) \
        if "dice_per_class_or_region" in curves else None
    frame = _build_frame(
        n,
        problems,
        lr=floats("lrs"),
        train_loss=floats("train_losses"),
        val_loss=floats("val_losses"),
        mean_fg_dice=floats("mean_fg_dice"),
        ema_fg_dice=floats("ema_fg_dice"),
        dice=dice,
        start=floats("epoch_start_timestamps"),
        end=floats("epoch_end_timestamps"),
    )
    current_epoch = _as_int(ckpt.get("current_epoch"))
    if current_epoch is not None and current_epoch != n and not problems:
        problems.append(f"current_epoch is {current_epoch} but the curves cover {n} epoch(s)")
    init_args = ckpt.get("init_args")
    trainer_name = ckpt.get("trainer_name")
    return CheckpointCurves(
        path=path,
        kind="v2",
        epochs=n,
        current_epoch=current_epoch,
        trainer_name=trainer_name if isinstance(trainer_name, str) else None,
        frame=frame,
        init_args=_plain(init_args) if isinstance(init_args, Mapping) else {},
        problems=problems,
    )


def _v1_sidecar(path: Path, problems: list[str]) -> tuple[str | None, dict[str, Any]]:
    """nnU-Net v1 keeps trainer name and init args in ``<checkpoint>.pkl`` next to the checkpoint."""
    sidecar = path.with_name(path.name + ".pkl")
    try:
        if not sidecar.is_file():
            return None, {}
        if sidecar.stat().st_size > _MAX_SIDECAR_BYTES:
            problems.append(f"{sidecar.name} is too large to read; trainer name unknown")
            return None, {}
        with open(sidecar, "rb") as fh:
            info = _unpickle(fh, sidecar)
    except (OSError, CheckpointError) as exc:
        problems.append(f"{sidecar.name} unreadable ({exc}); trainer name unknown")
        return None, {}
    if not isinstance(info, Mapping):
        return None, {}
    name = info.get("name")
    init = info.get("init")
    init_args: dict[str, Any] = {}
    if isinstance(init, (list, tuple)):
        plain = _plain(init)
        if len(plain) == len(_V1_INIT_ARG_NAMES):
            init_args.update(zip(_V1_INIT_ARG_NAMES, plain))
        else:
            init_args["init"] = plain
    if "plans" in info:
        init_args["plans"] = _plain(info["plans"])
    return (name if isinstance(name, str) else None), init_args


def _curves_v1(ckpt: Mapping[str, Any], path: Path) -> CheckpointCurves:
    plot_stuff = ckpt.get("plot_stuff")
    if not isinstance(plot_stuff, (list, tuple)) or len(plot_stuff) < 2:
        raise CheckpointError("nnU-Net v1 checkpoint without 'plot_stuff' (no curves stored)", path)
    problems: list[str] = []
    parts: list[Sequence[Any]] = []
    for i, values in enumerate(plot_stuff[:4]):
        if isinstance(values, np.ndarray):
            values = list(values.reshape(-1))
        parts.append(values if isinstance(values, (list, tuple)) else [])
        if not isinstance(values, (list, tuple)):
            problems.append(f"plot_stuff[{i}] is {_why_not_number(values)}, not a list; ignored")
    tr_losses, val_losses = parts[0], parts[1]
    metrics = parts[3] if len(parts) > 3 else []
    curves: dict[str, Sequence[Any]] = {"all_tr_losses": tr_losses, "all_val_losses": val_losses}
    if len(metrics):
        curves["all_val_eval_metrics"] = metrics
    else:
        problems.append("all_val_eval_metrics is empty (trainer logged no Dice estimate); mean_fg_dice is NaN")
    n = _truncate(curves, problems, "plot_stuff curves")
    frame = _build_frame(
        n,
        problems,
        lr=None,
        train_loss=_float_curve(tr_losses[:n], "all_tr_losses", problems),
        val_loss=_float_curve(val_losses[:n], "all_val_losses", problems),
        mean_fg_dice=_float_curve(metrics[:n], "all_val_eval_metrics", problems) if len(metrics) else None,
        ema_fg_dice=None,
        dice=None,
        start=None,
        end=None,
    )
    current_epoch = _as_int(ckpt.get("epoch"))
    # Old v1 final checkpoints store epoch = len(losses) + 1 (nnU-Net v1 documents and corrects this itself).
    if current_epoch is not None and current_epoch not in (n, n + 1) and not problems:
        problems.append(f"epoch is {current_epoch} but the curves cover {n} epoch(s)")
    trainer_name, init_args = _v1_sidecar(path, problems)
    return CheckpointCurves(
        path=path,
        kind="v1",
        epochs=n,
        current_epoch=current_epoch,
        trainer_name=trainer_name,
        frame=frame,
        init_args=init_args,
        problems=problems,
    )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while thousands of lists are unpickled.

    Each gen-0 collection the new containers trigger is cheap, but the occasional full collection walks the
    whole heap (torch or pandas make that large) and costs more than the whole read; reference counting still
    frees everything as usual, so pausing for the ~ms this takes only postpones the collector.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_checkpoint_curves(path: str | os.PathLike[str]) -> CheckpointCurves:
    """Read the per-epoch training curves of an nnU-Net v2 or v1 checkpoint.

    Safe on untrusted files (nothing named by the pickle is executed; dangerous globals raise) and cheap on
    large ones (only the pickled object tree is read, never the tensor data), so the dashboard can poll
    ``checkpoint_latest.pth`` while training runs.  Raises :class:`CheckpointError` with a short message for
    empty, half-written, foreign or malicious files.
    """
    path = Path(path)
    with _gc_paused():
        return _read_curves(path)


def _read_curves(path: Path) -> CheckpointCurves:
    obj = _load_checkpoint_object(path)
    try:
        return _curves_of(obj, path)
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        # a crafted file can put anything anywhere; say so instead of crashing the dashboard
        raise CheckpointError(f"unreadable curves ({_clip(f'{type(exc).__name__}: {exc}', 100)})", path) from None


def _curves_of(obj: Any, path: Path) -> CheckpointCurves:
    if not isinstance(obj, Mapping):
        kind = repr(type(obj)) if isinstance(obj, _StandIn) else type(obj).__name__
        raise CheckpointError(f"not an nnU-Net checkpoint (top-level object is {_clip(kind, 60)})", path)
    if "logging" in obj or "network_weights" in obj:
        return _curves_v2(obj, path)
    if "plot_stuff" in obj or "state_dict" in obj:
        return _curves_v1(obj, path)
    raise CheckpointError("not an nnU-Net checkpoint (no 'logging' or 'plot_stuff' entry)", path)
