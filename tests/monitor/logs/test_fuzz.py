"""The vectorised v2 parser against the plain line-by-line reading in reference_v2log.py, on logs mangled
the ways real ones are: killed writers, garbage, other timestamp and list formats, CRLF, odd spacing."""

from __future__ import annotations

import numpy as np
import pytest
from log_mangling import mangled_log
from logwriters import v2_log
from reference_v2log import read_epochs

from monitor.logs import v2 as logparse_v2
from monitor.logs.lines import extract_v2_lines
from monitor.logs.parser import LogParser
from monitor.logs.v2 import extract_v2_blocks


def _assert_same(buf: bytes) -> None:
    expected, garbled = read_epochs(buf)
    result = LogParser().feed(buf, eof_is_final=True)
    complete = [e for e in expected if e.ended and e.dice is not None and e.number >= 0]
    rows = result.rows
    assert rows.epoch.tolist() == [e.number for e in complete]
    for name in ("lr", "train_loss", "val_loss"):
        np.testing.assert_array_equal(getattr(rows, name), [e.values.get(name, np.nan) for e in complete])
    np.testing.assert_array_equal(rows.epoch_time_s, [e.values["time"] for e in complete])
    np.testing.assert_array_equal(rows.epoch_end, np.array([e.end for e in complete], "datetime64[us]"))
    width = max((len(e.dice) for e in expected if e.dice is not None), default=0)
    dice = np.full((len(complete), width), np.nan)
    for i, e in enumerate(complete):
        dice[i, : len(e.dice)] = e.dice
    np.testing.assert_array_equal(rows.dice, dice)
    problems = [p for p in result.problems if "garbled" in p]
    assert problems == ([f"{garbled} garbled 'Pseudo dice' line(s) skipped"] if garbled else [])


@pytest.mark.parametrize("seed", range(400))
def test_mangled_logs_read_like_the_line_by_line_reference(seed: int) -> None:
    _assert_same(mangled_log(seed))


@pytest.mark.parametrize("seed", range(400))
def test_small_and_large_chunk_readers_agree_array_for_array(seed: int) -> None:
    """Appends go through the plain-Python reader, cold reads through numpy: one answer for both."""
    buf = mangled_log(seed)
    lines, vectorised = extract_v2_lines(buf), extract_v2_blocks(buf)
    for name in ("epoch", "lr", "train_loss", "val_loss", "epoch_time_s", "dice", "has_dice", "has_end", "epoch_end",
                 "line_start"):
        np.testing.assert_array_equal(getattr(lines, name), getattr(vectorised, name), err_msg=name)
    assert lines.garbled_dice == vectorised.garbled_dice


def test_many_lines_without_microseconds_take_the_searching_path() -> None:
    text = v2_log(range(80), n_classes=3).encode()
    # Over 256 lines whose message is not at byte 28: the vectorised ": " search, not the per-line one.
    stripped = b"\n".join(line[:19] + line[26:] if line[19:20] == b"." else line for line in text.split(b"\n"))
    assert stripped.count(b"\n") > 256
    _assert_same(stripped)
    assert LogParser().feed(stripped).rows.epoch.tolist() == list(range(80))


def test_a_key_in_the_last_bytes_of_the_text_is_still_matched() -> None:
    text = v2_log(range(2)).encode() + b"2024-05-02 10:00:00.250000: Epoch 2\n"
    epochs, _ = read_epochs(text)
    assert [e.number for e in epochs] == [0, 1, 2]
    # The numpy reader reads 8-byte words; the last ones end past the buffer (a small append would take the
    # line reader, so call both block readers directly: the compiled one and the numpy one).
    assert extract_v2_blocks(text).epoch.tolist() == [0, 1, 2]
    assert logparse_v2._numpy_blocks(text).epoch.tolist() == [0, 1, 2]
    result = LogParser().feed(text)
    assert result.rows.epoch.tolist() == [0, 1]
    assert result.consumed == text.rindex(b"2024-05-02")  # epoch 2 started, held back until it ends
