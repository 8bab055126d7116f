"""The log parser on its own: both formats, byte-offset resumption, and what it refuses to count.

Every test runs once with each v2 reader behind the parser (the compiled pass and the line reader), on
chunks of every size a watcher reads, down to a byte.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from logwriters import v1_epoch, v2_epoch, v2_log

from monitor.logs.parser import EpochRows, LogParser

pytestmark = pytest.mark.usefixtures("v2_reader")


def parse_all(data: bytes, chunks: list[int] | None = None):
    """Feed ``data`` in pieces the way a watcher would: from the offset where the last read ended."""
    parser, offset, rows = LogParser(), 0, []
    cuts = (chunks or []) + [len(data)]
    for cut in cuts:
        result = parser.feed(data[offset:cut])
        offset += result.consumed
        rows.append(result.rows)
    merged = EpochRows()
    for part in rows:
        merged.extend(part)
    return merged, offset, parser


def test_v2_epoch_values_are_read_exactly() -> None:
    data = v2_epoch(0, dice=[0.6082, 0.0], lr=0.01, train=-0.2436, val=-0.5222, took=19.02).encode()
    rows, offset, _ = parse_all(data)
    assert rows.epoch.tolist() == [0]
    assert rows.lr.tolist() == [0.01]
    assert rows.train_loss.tolist() == [-0.2436] and rows.val_loss.tolist() == [-0.5222]
    assert rows.dice.tolist() == [[0.6082, 0.0]]
    assert rows.epoch_time_s.tolist() == [19.02]
    assert str(rows.epoch_end[0]) == "2024-05-01T10:00:19.270000"
    assert offset == len(data)


def test_numpy_scalar_reprs_and_nan_classes() -> None:
    data = (v2_epoch(3, dice=[0.9695], numpy_repr=True)
            + v2_epoch(4, dice=[float("nan"), 0.5])).encode()
    rows, _, _ = parse_all(data)
    assert rows.epoch.tolist() == [3, 4]
    assert rows.dice[0, 0] == 0.9695
    assert math.isnan(rows.dice[1, 0]) and rows.dice[1, 1] == 0.5


@pytest.mark.parametrize("step", [1, 7, 64, 1000])
def test_any_split_into_appends_gives_the_same_rows(step: int) -> None:
    epochs = 4 if step == 1 else 30  # byte by byte, every byte is a read: a short log
    data = v2_log(range(epochs), done=True).encode()
    whole, _, _ = parse_all(data)
    pieces, offset, parser = parse_all(data, list(range(step, len(data), step)))
    assert offset == len(data)
    assert pieces.epoch.tolist() == whole.epoch.tolist() == list(range(epochs))
    np.testing.assert_array_equal(pieces.dice, whole.dice)
    assert parser.training_done


def test_training_done_in_a_log_without_epochs_counts() -> None:
    """``nnUNetv2_train … --c`` on a finished run starts a new log that only says the training is done."""
    parser = LogParser()
    result = parser.feed(b"2024-08-31 10:00:00.000001: Using splits from existing split file\n"
                         b"2024-08-31 10:00:01.000002: Training done.\n")
    assert result.training_done and parser.training_done
    assert len(result.rows) == 0


def test_unfinished_last_epoch_is_held_back_until_it_ends() -> None:
    full = v2_log(range(3)).encode()
    cut = full.rindex(b"Pseudo dice")  # killed (or not yet written) mid-epoch 2
    parser = LogParser()
    first = parser.feed(full[:cut])
    assert first.rows.epoch.tolist() == [0, 1]
    assert first.consumed < cut  # epoch 2's lines stay unconsumed
    second = parser.feed(full[first.consumed:])
    assert second.rows.epoch.tolist() == [2]


def test_partial_last_line_is_not_consumed() -> None:
    data = v2_log(range(2)).encode() + b"2024-05-01 12:00:00.000000: Epo"
    result = LogParser().feed(data)
    assert result.rows.epoch.tolist() == [0, 1]
    assert result.consumed == data.rindex(b"\n") + 1


def test_restart_inside_one_file_starts_a_new_session() -> None:
    data = (v2_log(range(5)) + v2_log(range(3), base=0.7)).encode()
    rows, _, _ = parse_all(data)
    assert rows.epoch.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert rows.session.tolist() == [0] * 5 + [1] * 3


def test_v1_lr_is_the_rate_announced_before_the_epoch() -> None:
    text = "Starting... \n2021-05-15 18:56:00.157092: lr: 0.01 \n"
    text += v1_epoch(0, dice=[0.69, 0.98], next_lr=0.009989, train=-0.4667)
    text += v1_epoch(1, dice=[0.78, 0.98], next_lr=0.009977)
    rows, _, parser = parse_all(text.encode())
    assert parser.version == "v1"
    assert rows.epoch.tolist() == [0, 1]
    assert rows.lr.tolist() == [0.01, 0.009989]  # v1 prints the *next* epoch's rate at epoch end
    assert rows.train_loss[0] == -0.4667
    assert rows.dice.tolist() == [[0.69, 0.98], [0.78, 0.98]]


@pytest.mark.parametrize("garbled", ["[0.5, zz]", "[0.5, 0.6", "[0.5, 0." + "1" * 38 + "]"])
def test_a_garbled_v1_dice_line_is_reported_and_the_epoch_skipped(garbled: str) -> None:
    text = "Starting... \n2021-05-15 18:56:00.157092: lr: 0.01 \n" + v1_epoch(0, dice=[0.69, 0.98], next_lr=0.009)
    text += v1_epoch(1, dice=[0.5, 0.6], next_lr=0.008).replace("[0.5, 0.6]", garbled)
    text += v1_epoch(2, dice=[np.float32(0.75), 0.5], next_lr=0.007)
    result = LogParser().feed(text.encode(), eof_is_final=True)
    assert result.rows.epoch.tolist() == [0, 2] and result.rows.dice.tolist() == [[0.69, 0.98], [0.75, 0.5]]
    assert result.problems == ["garbled Dice line at epoch 1 skipped"]


def test_garbled_dice_line_is_reported_and_the_epoch_skipped() -> None:
    good = v2_epoch(0, dice=[0.5, 0.6])
    bad = v2_epoch(1, dice=[0.5, 0.6]).replace("[0.5, 0.6]", "[0.5, zz]")
    result = LogParser().feed((good + bad + v2_epoch(2, dice=[0.7, 0.8])).encode())
    assert result.rows.epoch.tolist() == [0, 2]
    assert any("garbled" in p for p in result.problems)
