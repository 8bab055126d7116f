"""Second fast path for the numpy float scalars nnU-Net logs: each one turned into a plain float before unpickling.

``monitor.checkpoints.runs`` (the first fast path) is faster: compiled, at every size; in its numpy
implementation, from ~400 epochs of logging on (1.5 against 1.8–2.1 ms at 1000 epochs).  This rewrite reads
what the first path declines (memo indices below 256, scalars outside the curves, shared rows) and, without
the compiled pass, the checkpoints below ~400 epochs (from ~55 epochs: below, plain unpickling wins).

Why a module of its own: it is the one Python module that rewrites raw pickle opcodes in place, so its
invariants (below) can be checked here without the rest of the reader in view.

nnU-Net logs numpy scalars (np.float32 pseudo Dice and losses, np.float64 where numpy promotes).  Pickled
at protocol 2 each one is 15 opcodes with two calls: scalar(dtype, _codecs.encode('<latin-1 chars>',
'latin1')).  A 1000-epoch run has ~7000 of them; the C unpickler needs ~2 us each, which alone is 5x the
whole budget of a read.
The rewrite below finds them with numpy, decodes all payloads in one go and overwrites each sequence *in
place*, at the same length, with  SHORT_BINBYTES <rest of the old bytes> POP BINFLOAT <value>, keeping its
final memo PUT (other objects may refer to the scalar: nnU-Net's _best_ema is one of the EMA entries).
The unpickler then does 4 trivial opcodes per scalar instead of 15 with two calls.  (Measured and dropped:
one skip per run of back-to-back scalars, dropping the PUTs of scalars nothing refers to, and packing runs
of list items into one bytes object.  Each saves a part of the unpickling but costs as much or more in the
rewrite, or needs to know which memo slots are read again: a second full scan or a retry.)

Only sequences whose every memo reference was verified to be numpy's scalar(), _codecs.encode, 'latin1'
and a little-endian float dtype are touched, so no opcode other than GET/PUT/BINUNICODE/TUPLE2/REDUCE is
ever overwritten: the rewrite only *removes* calls and pushes floats, and the result still goes through
the restricted unpickler, so every global in the file is checked exactly as before.  If anything does not
fit, or the rewritten bytes do not load, the original bytes are unpickled instead.

The caller (``monitor.checkpoints.archive``) gets this rewrite passed in by ``monitor.checkpoints.reader`` and
falls back to the untouched bytes itself; this module never unpickles anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_GET_LONG, _GET_SHORT, _PUT_LONG, _PUT_SHORT = 0x6A, 0x68, 0x72, 0x71  # LONG_BINGET, BINGET, LONG_BINPUT, BINPUT
_BINUNICODE, _TUPLE2, _REDUCE = 0x58, 0x86, 0x52
_SCALAR_GLOBALS = (b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n")
_ENCODE_GLOBAL = b"c_codecs\nencode\n"
_DTYPE_GLOBAL = b"cnumpy\ndtype\n"
_LATIN1 = b"X\x06\x00\x00\x00latin1"
_LITTLE = b"X\x01\x00\x00\x00<"
_DTYPE_STATE_TAIL = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # (3, '<', None, None, None, -1, -1, 0)
#: Below this many bytes of numpy scalars (from the first to the end of the pickle; ~55 epochs of nnU-Net's
#: logging) plain unpickling is faster than this rewrite (measured on a 2-vCPU VM, bench/bench_checkpoint.py).
_MIN_REWRITE_BYTES = 28 * 1024


def _scalar_region_bytes(data: bytes | bytearray) -> int:
    """Bytes from numpy's scalar() global, which the pickler names right before the first numpy scalar, to the
    end of the pickle: how much the fast paths can gain.  0 when there is no numpy scalar at all."""
    at = data.find(b"multiarray\nscalar\n")  # one search for both spellings of the module
    while at >= 0:
        for name in _SCALAR_GLOBALS:
            start = at + len(b"multiarray\nscalar\n") - len(name)
            if start >= 0 and data.startswith(name, start):
                return len(data) - start
        at = data.find(b"multiarray\nscalar\n", at + 1)
    return 0


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
    if _scalar_region_bytes(data) < _MIN_REWRITE_BYTES:
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
