"""Finding the pickled object tree inside a torch checkpoint file without reading its tensor data.

torch >= 1.6 writes a zip whose ``<name>/data.pkl`` holds the object tree; only that member is read (a few
``pread`` calls; ``zipfile`` as the fallback for other layouts).  Legacy (torch < 1.6) files are a sequence
of pickles followed by raw storages; only the first four are unpickled.  nnU-Net rewrites checkpoints in
place, so a file cut short or changed while read is reported as "incomplete (still being written?)".
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from monitor.checkpoints.errors import _INCOMPLETE, CheckpointError
from monitor.checkpoints.runs import load_data_pkl
from monitor.checkpoints.unpickler import _unpickle

#: The first pickle of a legacy (pre-zip) torch file is this integer (torch.serialization.MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
#: nnU-Net's data.pkl stays below 1 MB even after 1000+ epochs; far larger is not parsed in the dashboard.
_MAX_PICKLE_BYTES = 64 * 1024 * 1024

# torch's zip layout read with a few pread() calls -------------------------------------------------------------

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s6H3L5H2L")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


_scratch = threading.local()


def _reused_buffer(size: int) -> bytearray:
    """A bytearray of ``size`` bytes, reused by every read in this thread (a fresh large buffer costs page
    faults); nothing unpickled refers to it, so the next read may overwrite it."""
    buffer = getattr(_scratch, "buffer", None)
    if buffer is not None:
        try:
            if len(buffer) > size:
                del buffer[size:]
            elif len(buffer) < size:
                buffer.extend(bytes(size - len(buffer)))
            return buffer
        except BufferError:  # still exported (a caller kept a view of the last read): take a new one
            pass
    _scratch.buffer = buffer = bytearray(size)
    return buffer


def _pread_into(fd: int, size: int, offset: int) -> bytearray | None:
    """``size`` bytes at ``offset`` into this thread's reusable bytearray."""
    out = _reused_buffer(size)
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


def _torch_zip_data_pkl(fd: int, size: int) -> bytearray | None:
    """``data.pkl`` of a torch zip, from the end records, the first directory entry (torch writes data.pkl
    first) and the member; None for any other layout, or a missing end record, for ``zipfile`` to handle.
    Like ``torch.load`` it skips the CRC; the caller's fstat comparison catches a rewrite during the read.
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
    (sig, _, _, _, method, _, _, _, csize, usize, name_len, _, _, _, _, _, local_offset) = (
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
    return data


def _load_zip(fd: int, size: int, fh: BinaryIO, path: Path) -> Any:
    """torch >= 1.6 format: the ``*/data.pkl`` member only, never the ``data/<key>`` storages."""
    return load_data_pkl(_torch_zip_data_pkl(fd, size) or _zip_data_pkl_slow(fh, path), path)


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
        # A zip whose directory (written last) is missing or garbled: almost always a save in progress.
        raise CheckpointError(_INCOMPLETE, path) from None


def _load_legacy(fh: BinaryIO, path: Path) -> Any:
    """torch < 1.6 format: magic, protocol version, sys info, object; the storage bytes after it are skipped."""
    fh.seek(0)
    reader = io.BufferedReader(fh)  # type: ignore[arg-type,type-var]  # the C unpickler peeks, then consumes exactly
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
