"""Vectorised number reading must give exactly what ``float()`` gives, for every text a log can hold."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from monitor.logs.textnum import parse_decimals


def _parse(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(t) for t in texts), default=1) or 1
    columns = np.zeros((width, len(texts)), np.uint8)
    for i, text in enumerate(texts):
        columns[: len(text), i] = np.frombuffer(text, np.uint8)
    return parse_decimals(columns, np.array([len(t) for t in texts]))


def _float_or_none(text: bytes) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def test_logged_values_are_bit_identical_to_float() -> None:
    rng = random.Random(7)
    texts = []
    for _ in range(20000):
        value = rng.choice([rng.uniform(-1, 1), rng.uniform(0, 500), rng.uniform(0, 0.01), rng.random() * 1e6])
        texts.append(rng.choice([repr(value), str(round(value, rng.randrange(0, 16))), f"{value:.{rng.randrange(8)}f}"])
                     .encode())
    values, readable = _parse(texts)
    expected = np.array([float(t) for t in texts])
    assert readable.all()
    assert np.array_equal(values.view(np.uint64), expected.view(np.uint64))  # bits, not approximately


@pytest.mark.parametrize("text", [
    b"0", b"-0.0", b"+5", b"1.", b".5", b"007.50", b"123456789012345", b"1234567890123456789",
    b"0.12345678901234567", b"1e-05", b"2E3", b"inf", b"-inf", b"nan", b"NaN", b"-nan", b"1_000",
    b"", b"-", b".", b"1.2.3", b"--1", b"0x10", b"1,5", b"zz", b"np.float32(0.5)", b" 1", b"1 ",
])
def test_edge_cases_agree_with_float(text: bytes) -> None:
    values, readable = _parse([text])
    expected = _float_or_none(text)
    assert bool(readable[0]) == (expected is not None)
    if expected is None or math.isnan(expected):
        assert math.isnan(values[0])
    else:
        assert values[0] == expected and math.copysign(1, values[0]) == math.copysign(1, expected)


def test_bytes_past_each_length_are_ignored() -> None:
    columns = np.frombuffer(b"0.25xx", np.uint8).reshape(6, 1)
    values, readable = parse_decimals(columns, np.array([4]))
    assert values.tolist() == [0.25] and readable.all()
