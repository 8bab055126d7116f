"""Both v2 readers against the plain line-by-line reading in reference_v2log.py, on logs mangled the ways real
ones are: killed writers, garbage, other timestamp and list formats, CRLF, odd spacing, overlong numbers.

Each block reader is fed every log directly, whatever its size, and LogParser is fed it with each reader
behind it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from log_mangling import mangled_log
from logwriters import v2_epoch, v2_log
from reference_v2log import Epoch, read_epochs

from monitor.logs.parser import LogParser
from monitor.logs.v2 import V2Blocks

Reader = Callable[[bytes], V2Blocks]
SCALARS = (("lr", "lr"), ("train_loss", "train_loss"), ("val_loss", "val_loss"), ("epoch_time_s", "time"))


def _dice_matrix(dice: list[list[float] | None], width: int) -> np.ndarray:
    matrix = np.full((len(dice), width), np.nan)
    for i, row in enumerate(dice):
        if row:
            matrix[i, : len(row)] = row
    return matrix


def _width(epochs: list[Epoch]) -> int:
    """Classes of the widest list an epoch kept: the readers' Dice matrix is that wide."""
    return max((len(e.dice) for e in epochs if e.dice is not None), default=0)


def _assert_blocks_like_reference(blocks: V2Blocks, buf: bytes) -> None:
    expected, garbled = read_epochs(buf)
    assert blocks.epoch.tolist() == [e.number for e in expected]
    assert blocks.line_start.tolist() == [e.line_start for e in expected]
    assert blocks.has_end.tolist() == [e.ended for e in expected]
    assert blocks.has_dice.tolist() == [e.dice is not None for e in expected]
    for name, key in SCALARS:
        np.testing.assert_array_equal(getattr(blocks, name), [e.values.get(key, np.nan) for e in expected], name)
    np.testing.assert_array_equal(blocks.epoch_end, np.array([e.end for e in expected], "datetime64[us]"))
    np.testing.assert_array_equal(blocks.dice, _dice_matrix([e.dice for e in expected], _width(expected)))
    assert blocks.garbled_dice == garbled


def _assert_parser_like_reference(buf: bytes) -> None:
    expected, garbled = read_epochs(buf)
    result = LogParser().feed(buf, eof_is_final=True)
    complete = [e for e in expected if e.ended and e.dice is not None and e.number >= 0]
    rows = result.rows
    assert rows.epoch.tolist() == [e.number for e in complete]
    for name, key in SCALARS:
        np.testing.assert_array_equal(getattr(rows, name), [e.values.get(key, np.nan) for e in complete], name)
    np.testing.assert_array_equal(rows.epoch_end, np.array([e.end for e in complete], "datetime64[us]"))
    np.testing.assert_array_equal(rows.dice, _dice_matrix([e.dice for e in complete], _width(expected)))
    problems = [p for p in result.problems if "garbled" in p]
    assert problems == ([f"{garbled} garbled 'Pseudo dice' line(s) skipped"] if garbled else [])


@pytest.mark.parametrize("seed", range(400))
def test_block_readers_read_mangled_logs_like_the_reference(seed: int, block_reader: Reader) -> None:
    buf = mangled_log(seed)
    _assert_blocks_like_reference(block_reader(buf), buf)


@pytest.mark.parametrize("seed", range(400))
def test_the_parser_reads_mangled_logs_like_the_reference(seed: int, v2_reader: str) -> None:
    _assert_parser_like_reference(mangled_log(seed))


AT_LIMIT, OVER = "0." + "1" * 30, "0." + "1" * 38  # 32 and 40 bytes
LONG_ITEMS = (v2_epoch(0, dice=[0.5]).replace("[0.5]", f"[0.5, {AT_LIMIT}]")
              + v2_epoch(1, dice=[0.5]).replace("[0.5]", f"[0.5, {OVER}]") + v2_epoch(2, dice=[0.5])).encode()


def test_a_dice_item_over_32_bytes_garbles_its_line(block_reader: Reader) -> None:
    """float() reads a 40-digit item, but no float prints that long: the list is not a Dice list."""
    blocks = block_reader(LONG_ITEMS)
    assert blocks.has_dice.tolist() == [True, False, True] and blocks.garbled_dice == 1
    assert blocks.dice[0].tolist() == [0.5, float(AT_LIMIT)]
    _assert_blocks_like_reference(blocks, LONG_ITEMS)


def test_the_parser_skips_the_epoch_of_a_dice_item_over_32_bytes(v2_reader: str) -> None:
    result = LogParser().feed(LONG_ITEMS)
    assert result.rows.epoch.tolist() == [0, 2]
    assert result.problems == ["1 garbled 'Pseudo dice' line(s) skipped"]


def _without_microseconds() -> bytes:
    text = v2_log(range(80), n_classes=3).encode()
    return b"\n".join(line[:19] + line[26:] if line[19:20] == b"." else line for line in text.split(b"\n"))


def test_lines_without_microseconds_are_read_after_their_first_separator(block_reader: Reader) -> None:
    text = _without_microseconds()
    assert text.count(b"\n") > 256 and b".000000" not in text
    _assert_blocks_like_reference(block_reader(text), text)
    assert block_reader(text).epoch.tolist() == list(range(80))


def test_the_parser_reads_lines_without_microseconds(v2_reader: str) -> None:
    _assert_parser_like_reference(_without_microseconds())
    assert LogParser().feed(_without_microseconds()).rows.epoch.tolist() == list(range(80))


KEY_AT_THE_END = v2_log(range(2)).encode() + b"2024-05-02 10:00:00.250000: Epoch 2\n"


def test_a_key_in_the_last_bytes_of_the_text_is_still_matched(block_reader: Reader) -> None:
    """A key in the last bytes of the text, where a reader could look past its end."""
    assert [e.number for e in read_epochs(KEY_AT_THE_END)[0]] == [0, 1, 2]
    assert block_reader(KEY_AT_THE_END).epoch.tolist() == [0, 1, 2]


def test_an_epoch_begun_in_the_last_line_is_held_back(v2_reader: str) -> None:
    result = LogParser().feed(KEY_AT_THE_END)
    assert result.rows.epoch.tolist() == [0, 1]
    assert result.consumed == KEY_AT_THE_END.rindex(b"2024-05-02")  # epoch 2 started, held back until it ends
