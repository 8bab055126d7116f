"""Vectorised text → float64 for the short decimals nnU-Net logs, bit-identical to ``float()``.

A Horner loop over a (width × n) byte matrix converts a whole column of values at once, instead of numpy's
``strtod`` per string.  With at most 15 digits the mantissa and ``10**k`` (k ≤ 22) are exact doubles, so one
division rounds correctly (Clinger's fast path).  ``nan`` is recognised; anything else goes through ``float()``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["parse_decimals"]

_POW10 = 10.0 ** np.arange(23)  # every entry an exact double
_MAX_FAST_DIGITS = 15  # < 2**53, so the digit string is exact in a double
_MINUS, _PLUS, _DOT, _ZERO = ord("-"), ord("+"), ord("."), ord("0")
_LOWER = 0x20  # ASCII letters OR 0x20 are lower case


def parse_decimals(columns: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers from text laid out column-major (contiguous per character position): value ``i`` is
    ``columns[:lengths[i], i]``.  Returns the values and a mask, False (value NaN) where ``float()`` raises."""
    width, n = columns.shape
    if n == 0:
        return np.empty(0), np.ones(0, bool)
    first = columns[0] if width else np.zeros(n, np.uint8)
    negative = first == _MINUS
    signed = negative | (first == _PLUS)
    mantissa = np.zeros(n)
    n_digits = np.zeros(n, np.int16)
    decimals = np.zeros(n, np.int16)
    n_dots = np.zeros(n, np.int16)
    seen_dot = np.zeros(n, bool)
    bad = np.zeros(n, bool)
    for position in range(width):
        char = columns[position]
        live = position < lengths
        if position == 0:
            live &= ~signed
        digit = char - np.uint8(_ZERO)  # wraps below '0', so one comparison tests for a digit
        is_digit = digit <= 9
        is_digit &= live
        is_dot = char == _DOT
        is_dot &= live
        mantissa = np.where(is_digit, mantissa * 10.0 + digit, mantissa)
        seen_dot |= is_dot
        n_dots += is_dot
        decimals += is_digit & seen_dot
        n_digits += is_digit
        bad |= live & ~(is_digit | is_dot)
    fast = ~bad & (n_dots <= 1) & (n_digits >= 1) & (n_digits <= _MAX_FAST_DIGITS)
    values = mantissa / _POW10[np.minimum(decimals, _POW10.size - 1)]
    np.negative(values, out=values, where=negative)
    readable = np.ones(n, bool)
    if width >= 3:
        lower = columns[:3] | np.uint8(_LOWER)
        is_nan = (lengths == 3) & (lower[0] == ord("n")) & (lower[1] == ord("a")) & (lower[2] == ord("n"))
        values[is_nan] = np.nan
        fast |= is_nan
    for i in np.flatnonzero(~fast).tolist():
        try:
            values[i] = float(columns[: lengths[i], i].tobytes())
        except ValueError:
            values[i], readable[i] = np.nan, False
    return values, readable
