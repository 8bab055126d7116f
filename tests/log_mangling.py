"""Mangled nnU-Net v2 logs for the parser fuzz tests: real lines with bytes changed, cut, repeated or lengthened."""

from __future__ import annotations

import random

from logwriters import v2_log

__all__ = ["GARBAGE", "mangled_log"]

GARBAGE = [b"\x00\x01\xff\xfe", b"Epoch", b": Epoch x", b": Pseudo dice [", b"]]]", b",,,", b"nan", b"1e-05",
            b": train_loss 1e400", b"np.float32(", b")", b" \r", b": Epoch time: ", b"-", b"+0.5", b".5", b"5."]


def _mangle(line: bytes, rng: random.Random) -> list[bytes]:
    """One line → zero, one or two lines, changed the way a real log can be."""
    choice = rng.randrange(16)
    if choice == 0:
        return []  # lost
    if choice == 1:
        return [line, line]  # repeated
    if choice == 2:
        return [line[: rng.randrange(len(line) + 1)]]  # cut short
    if choice == 3:
        at = rng.randrange(len(line) + 1)
        return [line[:at] + rng.choice(GARBAGE) + line[at:]]
    if choice == 4:
        return [line + b"\r"]  # written on Windows
    if choice == 5 and line[19:26].startswith(b"."):
        return [line[:19] + line[26:]]  # a timestamp whose microseconds were 0
    if choice == 6:
        return [line.replace(b", ", rng.choice([b",", b" , ", b",  "]))]
    if choice == 7:
        digits = [i for i, c in enumerate(line) if 48 <= c <= 57]
        if digits:
            i = rng.choice(digits)
            return [line[:i] + bytes([rng.choice(b"0123456789aZ.-")]) + line[i + 1:]]
    if choice == 8:
        return [line.replace(b"]", b", nan]") if rng.random() < 0.5 else line.replace(b"[", b"[np.float64(0.25), ")]
    if choice == 9:
        return [line + b" " * rng.randrange(1, 40) + b"0.123456789012345678901234567890123"]
    if choice == 10:  # a list item of 32 bytes (readable), 33 or 40 (too long for any float's text)
        return [line.replace(b"[", b"[" + b"0." + b"1" * rng.choice([30, 31, 38]) + b", ")]
    return [line]


def mangled_log(seed: int) -> bytes:
    rng = random.Random(seed)
    text = v2_log(range(rng.randrange(1, 25)), n_classes=rng.randrange(1, 5), numpy_repr=rng.random() < 0.5,
                  done=rng.random() < 0.3).encode()
    lines = []
    for line in text.split(b"\n")[:-1]:
        lines.extend(_mangle(line, rng) if rng.random() < 0.25 else [line])
    return b"\n".join(lines) + b"\n"
