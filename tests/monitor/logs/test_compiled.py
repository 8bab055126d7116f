"""monitor/logs/_v2log.c against the line reader of monitor/logs/v2.py: the same arrays, bit for bit.

The compiled pass is what an install with a C compiler reads logs with; the line reader is what one without
uses, and test_fuzz.py holds both to a line-by-line reference. Here the two are held to each other on the real
logs of the corpus, on logs mangled the way real ones are, on the few lines a watcher appends at a time, and
on random bytes.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from log_mangling import GARBAGE, mangled_log
from logwriters import v2_log
from reference_v2log import read_epochs

from monitor.logs import v2

FIELDS = ("epoch", "lr", "train_loss", "val_loss", "epoch_time_s", "dice", "has_dice", "has_end", "epoch_end",
          "line_start")


@pytest.fixture(autouse=True)
def _compiled_parser_is_built() -> None:
    if v2._compiled is None:
        pytest.fail("monitor.logs._v2log is not built: install with a C compiler present (scripts/test does)")


def assert_same(buf: bytes) -> v2.V2Blocks:
    compiled, plain = v2._compiled_blocks(buf), v2._python_blocks(buf)
    for name in FIELDS:
        ours, theirs = getattr(compiled, name), getattr(plain, name)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    assert compiled.garbled_dice == plain.garbled_dice
    return compiled


def test_the_corpus_reads_the_same(corpus_dir: Path) -> None:
    logs = sorted(corpus_dir.glob("*.txt"))
    epochs = 0
    for log in logs:
        data = log.read_bytes()
        blocks = assert_same(data[: data.rfind(b"\n") + 1])
        epochs += blocks.epoch.size
    assert epochs > 100  # the corpus holds v2 logs, not only v1 ones


@pytest.mark.parametrize("seed", range(300))
def test_mangled_logs_read_the_same(seed: int) -> None:
    assert_same(mangled_log(seed))


@pytest.mark.parametrize("seed", range(100))
def test_appended_chunks_read_the_same(seed: int) -> None:
    """A watcher reads a few lines at a time, from wherever its last read stopped."""
    rng = random.Random(seed)
    lines = mangled_log(seed).splitlines(keepends=True)
    at = 0
    while at < len(lines):
        size = rng.randrange(1, 12)
        assert_same(b"".join(lines[at:at + size]))
        at += size


@pytest.mark.parametrize("seed", range(60))
def test_random_bytes_read_the_same(seed: int) -> None:
    """Whatever the bytes: NUL, CR, stray keys and separators, odd numbers Python's float() reads or refuses."""
    rng = random.Random(seed)
    data = bytearray(v2_log(range(rng.randrange(1, 60)), n_classes=rng.randrange(0, 5),
                            numpy_repr=rng.random() < 0.5).encode())
    odd = [*GARBAGE, b"inf", b"-Infinity", b"1_000", b"0x10", b"1e5", b"\xc3\xa9", b"nAn", b"+nan", b"[]", b"[ ]",
           b"np.float32(0.5)", b"np.float32(0.5", b"9" * 40, b"0." + b"1" * 20, b"\t", b": ", b"Epoch 1e3",
           b"Epoch time: ", b"Pseudo dice [0.5, ]", b"2024-05-01 10:00:00: "]
    for _ in range(rng.randrange(1, 40)):
        at = rng.randrange(len(data) + 1)
        if rng.random() < 0.5:
            data[at:at] = rng.choice(odd)
        elif data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
    text = bytes(data)
    assert_same(text[: text.rfind(b"\n") + 1])


def test_numbers_are_what_float_makes_of_them() -> None:
    lines = [f"2024-05-01 10:00:00.000000: {text}\n" for text in (
        "Epoch 3", "Current learning rate: 1e-05", "train_loss -0.0", "val_loss 0.12345678901234567",
        "Pseudo dice [np.float32(0.8125), nan, 1_0, .5, 5.]", "Epoch time: 95.43 s")]
    blocks = assert_same("".join(lines).encode())
    assert blocks.epoch.tolist() == [3] and blocks.lr.tolist() == [1e-05]
    assert str(blocks.train_loss[0]) == "-0.0" and blocks.val_loss[0] == float("0.12345678901234567")
    np.testing.assert_array_equal(blocks.dice, [[0.8125, np.nan, 10.0, 0.5, 5.0]])


def test_an_epoch_number_beyond_int64_is_garbled_in_every_reader() -> None:
    """A corrupt "Epoch 99999999999999999999999" line: no epoch number."""
    text = v2_log(range(3)).encode().replace(b"Epoch 1 ", b"Epoch 99999999999999999999999 ")
    assert [e.number for e in read_epochs(text)[0]] == [0, -1, 2]
    assert assert_same(text).epoch.tolist() == [0, -1, 2]


@pytest.mark.parametrize("stamp", [
    "2024-02-29 23:59:59.999999", "1969-12-31 23:59:59.999999", "0000-03-01 00:00:00.000001",
    "9999-12-31 23:59:59.999999", "2000-02-29 12:00:00.000000", "2100-02-29 12:00:00.000000",
    "2023-02-29 00:00:00.000000", "2024-13-01 00:00:00.000000", "2024-05-00 00:00:00.000000",
    "2024-05-01 24:00:00.000000", "2024-05-01 10:60:00.000000", "2024-05-01 10:00:60.000000",
    "2024-05-01T10:00:00.000000", "12024-05-01 10:00:00.00000", "2024-05-01 10:00:00.00000x",
])
def test_epoch_end_timestamps_read_the_same(stamp: str) -> None:
    """Well-formed stamps are converted in the compiled pass, anything else read as numpy reads it."""
    text = f"{stamp}: Epoch 7\n{stamp}: Epoch time: 95.43 s\n".encode()
    expected = read_epochs(text)[0][0].end
    np.testing.assert_array_equal(assert_same(text).epoch_end, np.array([expected], "datetime64[us]"))
    if stamp.startswith(("2024-02-29", "1969", "0000", "9999", "2000")):
        assert expected == np.datetime64(stamp, "us")
