"""monitor.checkpoints.runs: the compiled pass reads exactly what plain restricted unpickling reads.

Every checkpoint here is written by the real ``torch.save`` and read twice, through the compiled pass and
without it (the plain restricted unpickler), and the two results must be identical to the last bit — curves,
problems and every other object in it.  The checkpoints are shaped to exercise what the pass has to get right: memo
references into hidden runs, rows of one class, more than 1000 epochs (the pickler's batches), three float
widths, odd items (None, python floats, 0-d arrays, ndarray rows) and nnU-Net v1's ``plot_stuff``.

The tests that take ``implementation`` run twice: with the compiled pass (``_scalar_runs.c``, what an install
with a C compiler uses) and with plain restricted unpickling of ``data.pkl`` (what an install without one uses;
the memo guard stays on here, so that mangled pickles cannot make the test process allocate gigabytes).
"""

from __future__ import annotations

import collections
import os
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from checkpoint_objects import checkpoint_objects, curves_frame

from monitor.checkpoints import runs as checkpoint_runs
from monitor.checkpoints.reader import CheckpointError, read_checkpoint_curves
from monitor.checkpoints.runs import collapse_scalar_runs

torch = pytest.importorskip("torch")


@pytest.fixture
def compiled() -> None:
    if checkpoint_runs._collapse is None:
        pytest.fail("monitor.checkpoints._scalar_runs is not built: install the project with a C compiler present "
                    "(scripts/test does)")


@pytest.fixture(params=["compiled", "plain"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How ``data.pkl`` is read: through the compiled pass, or plainly (the pass switched off)."""
    if request.param == "plain":
        monkeypatch.setattr(checkpoint_runs, "_collapse", None)
    else:
        request.getfixturevalue("compiled")
    return str(request.param)


def data_pkl(path: Path) -> bytearray:
    with zipfile.ZipFile(path) as archive:
        return bytearray(archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl"))))


def nnunet_logging(epochs: int, classes: int, rng: np.random.Generator, dice_type: Any = np.float32,
                   loss_type: Any = np.float32) -> dict[str, list[Any]]:
    """What nnU-Net v2's logger holds: the first EMA is the very object of the first mean Dice."""
    log: dict[str, list[Any]] = {key: [] for key in (
        "mean_fg_dice", "ema_fg_dice", "dice_per_class_or_region", "train_losses", "val_losses", "lrs",
        "epoch_start_timestamps", "epoch_end_timestamps")}
    for epoch in range(epochs):
        dice = [dice_type(v) for v in rng.random(classes)]
        mean = dice_type(np.nanmean(dice)) if classes else dice_type(np.nan)
        log["mean_fg_dice"].append(mean)
        log["ema_fg_dice"].append(log["ema_fg_dice"][-1] * 0.9 + 0.1 * mean if epoch else mean)
        log["dice_per_class_or_region"].append(dice)
        log["train_losses"].append(loss_type(rng.normal()))
        log["val_losses"].append(loss_type(rng.normal()))
        log["lrs"].append(0.01 * (1 - epoch / max(epochs, 1)) ** 0.9)
        log["epoch_start_timestamps"].append(1.7e9 + 100.0 * epoch + float(rng.random()))
        log["epoch_end_timestamps"].append(log["epoch_start_timestamps"][-1] + 90.0 + float(rng.random()))
    return log


def checkpoint(log: dict[str, list[Any]], tensors: int = 120, **extra: Any) -> dict[str, Any]:
    """nnUNetTrainer.save_checkpoint's layout; ~120 tensors put the logging's memo indices above 255."""
    weights = collections.OrderedDict((f"stage.{i}.weight", torch.zeros(8)) for i in range(tensors))
    ema = log.get("ema_fg_dice") or [None]
    out = {
        "network_weights": weights,
        "optimizer_state": {"state": {i: {"momentum_buffer": torch.zeros(8)} for i in range(tensors)},
                            "param_groups": [{"lr": 0.01, "params": list(range(tensors))}]},
        "grad_scaler_state": None,
        "logging": log,
        "_best_ema": ema[len(ema) // 2],  # the same object as an EMA entry: a memo GET into a hidden run
        "current_epoch": len(log.get("mean_fg_dice", [])),
        "init_args": {"plans": {"spacing": [1.0, 0.5]}, "configuration": "3d_fullres", "fold": 0},
        "trainer_name": "nnUNetTrainer",
    }
    out.update(extra)
    return out


def _pass_declined(data: bytes | bytearray, path: Path) -> None:
    raise AssertionError("the compiled pass declined")


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch, runs_only: bool = False) -> tuple[Any, Any]:
    """The curves as the ``implementation`` reads them and plainly; ``runs_only``: where the compiled pass is
    on, it must do the work alone (the plain fallback starts with the memo guard)."""
    with monkeypatch.context() as patch:
        if runs_only and checkpoint_runs._collapse is not None:
            patch.setattr(checkpoint_runs, "check_memo_indices", _pass_declined)
        fast, fast_objects = read_checkpoint_curves(path), checkpoint_objects(path)
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_runs, "_collapse", None)
        plain, plain_objects = read_checkpoint_curves(path), checkpoint_objects(path)
    assert fast_objects == plain_objects  # everything besides the curves, memo references included
    return fast, plain


def assert_same(fast: Any, plain: Any) -> None:
    pd.testing.assert_frame_equal(curves_frame(fast), curves_frame(plain), check_exact=True)
    assert fast.problems == plain.problems
    assert (fast.epochs, fast.current_epoch) == (plain.epochs, plain.current_epoch)


@pytest.mark.parametrize(
    ("epochs", "classes", "dice_type", "loss_type"),
    [
        (1000, 3, np.float32, np.float32),  # nnU-Net 2.x
        (2500, 2, np.float64, np.float32),  # an extended schedule: batches of 1000 in every list
        (300, 1, np.float32, np.float16),  # rows of one class: APPEND instead of APPENDS
        (300, 0, np.float64, np.float64),  # no foreground class: empty rows
        (1, 4, np.float32, np.float32),
        (0, 3, np.float32, np.float32),
    ],
)
def test_the_pass_reads_what_plain_unpickling_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str, epochs: int, classes: int, dice_type: Any,
    loss_type: Any,
) -> None:
    log = nnunet_logging(epochs, classes, np.random.default_rng(epochs + classes), dice_type, loss_type)
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log), path)
    fast, plain = read_both(path, monkeypatch, runs_only=epochs > 0)
    assert_same(fast, plain)
    assert fast.epochs == epochs and fast.problems == []
    if epochs:
        np.testing.assert_array_equal(curves_frame(fast)["mean_fg_dice"], [float(v) for v in log["mean_fg_dice"]])
        assert curves_frame(fast)["lr"].tolist() == log["lrs"]


def test_the_runs_cover_nearly_every_scalar_of_an_nnunet_checkpoint(tmp_path: Path, compiled: None) -> None:
    """The speed comes from hiding the runs: all but the first scalar (which names numpy's helpers) and the
    first EMA (a reference to it) must be in one, and the float lists too."""
    epochs, classes = 1000, 3
    path = tmp_path / "checkpoint_latest.pth"
    log = nnunet_logging(epochs, classes, np.random.default_rng(1))
    torch.save(checkpoint(log), path)
    runs = collapse_scalar_runs(data_pkl(path))
    assert runs is not None
    scalars = epochs * (classes + 4)  # Dice per class, mean, EMA, two losses
    floats = 3 * epochs  # learning rates, start and end times
    assert len(runs.values) == scalars + floats - 2
    assert len(runs.first) <= 10  # one run per list (two where a list starts with an odd item)
    assert int(runs.row_end.sum()) == epochs - 1  # Dice rows: one run across all 1000 rows
    best_ema = float(log["ema_fg_dice"][epochs // 2])  # _best_ema refers into the EMA run: a BINFLOAT now
    assert b"G" + struct.pack(">d", best_ema) in runs.stream


def test_references_into_hidden_runs_keep_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    log = nnunet_logging(600, 3, np.random.default_rng(7))
    log["mean_fg_dice"][300] = log["mean_fg_dice"][299]  # a GET inside a list
    log["ema_fg_dice"][200] = log["mean_fg_dice"][350]  # a GET from another list
    extra = {"init_args": {"plans": {"best": log["val_losses"][10]}, "fold": 1}}  # a GET from the tail
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log, **extra), path)
    fast, plain = read_both(path, monkeypatch, runs_only=True)
    assert_same(fast, plain)
    assert checkpoint_objects(path)["init_args"]["plans"]["best"] == float(log["val_losses"][10])


def test_odd_items_in_curves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    log = nnunet_logging(400, 3, np.random.default_rng(3))
    log["train_losses"][5] = np.array(1.25, dtype=np.float32)  # a 0-d array
    log["val_losses"][6] = 0.5  # a python float among numpy scalars
    log["val_losses"][7] = None
    log["dice_per_class_or_region"][8] = np.array([0.1, 0.2, 0.3])  # an ndarray row
    log["dice_per_class_or_region"][9] = [np.float32(0.5), np.float32(0.25)]  # a short row: NaN-padded
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log), path)
    fast, plain = read_both(path, monkeypatch, runs_only=True)
    assert_same(fast, plain)
    assert np.isnan(curves_frame(fast)["val_loss"].iloc[7]) and np.isnan(curves_frame(fast)["dice_3"].iloc[9])


def test_what_the_pass_leaves_to_plain_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """A shared row (a GET of a hidden list) or a bytes object in a curve: the compiled pass declines and the
    result is still exactly that of plain unpickling, problems included."""
    log = nnunet_logging(500, 3, np.random.default_rng(4))
    log["dice_per_class_or_region"][100] = log["dice_per_class_or_region"][99]
    log["lrs"][10] = b"\x00" * 16  # a 16-byte bytes object, like what stands in for a run: stays data
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log), path)
    fast, plain = read_both(path, monkeypatch)
    assert_same(fast, plain)
    assert any("lrs" in problem for problem in fast.problems)


def test_nnunet_v1_plot_stuff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    rng = np.random.default_rng(11)
    epochs = 700
    plot_stuff = ([np.float64(v) for v in rng.random(epochs)], [np.float64(v) for v in rng.random(epochs)], [],
                  [np.float64(v) for v in rng.random(epochs)])
    weights = collections.OrderedDict((f"conv.{i}.weight", torch.zeros(4)) for i in range(150))
    path = tmp_path / "model_final_checkpoint.model"
    torch.save({"epoch": epochs, "state_dict": weights, "optimizer_state_dict": None, "lr_scheduler_state_dict": None,
                "plot_stuff": plot_stuff, "best_stuff": (0, 0.1, 0.2, 0.3), "amp_grad_scaler": None}, path)
    fast, plain = read_both(path, monkeypatch, runs_only=True)
    assert_same(fast, plain)
    assert fast.kind == "v1" and fast.epochs == epochs
    assert curves_frame(fast)["mean_fg_dice"].tolist() == [float(v) for v in plot_stuff[3]]


def test_a_malicious_item_among_the_scalars_is_still_refused(tmp_path: Path, implementation: str) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return os.system, (f"touch {marker}",)

    log = nnunet_logging(1000, 3, np.random.default_rng(5))
    log["val_losses"][500] = Evil()
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log), path)
    with pytest.raises(CheckpointError, match=r"refused: checkpoint tries to call os\.system"):
        read_checkpoint_curves(path)
    assert not marker.exists()


@pytest.mark.parametrize("seed", range(12))
def test_random_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str, seed: int) -> None:
    """Random epochs, classes, value types, shared objects and list orders: always the same as plain."""
    rng = np.random.default_rng(100 + seed)
    types = [np.float16, np.float32, np.float64, float]
    log = nnunet_logging(int(rng.integers(0, 1300)), int(rng.integers(0, 5)), rng,
                         types[int(rng.integers(0, 4))], types[int(rng.integers(0, 4))])
    for _ in range(int(rng.integers(0, 4))):  # shared objects and stray values
        key = list(log)[int(rng.integers(0, len(log)))]
        if len(log[key]) > 2 and key != "dice_per_class_or_region":
            i, j = (int(v) for v in rng.integers(0, len(log[key]), 2))
            log[key][i] = log[key][j] if rng.random() < 0.7 else None
    keys = list(log)
    rng.shuffle(keys)
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(checkpoint({k: log[k] for k in keys}, tensors=int(rng.integers(20, 200))), path)
    fast, plain = read_both(path, monkeypatch)
    assert_same(fast, plain)


def test_the_original_bytes_are_left_untouched(tmp_path: Path, compiled: None) -> None:
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(checkpoint(nnunet_logging(300, 2, np.random.default_rng(2))), path)
    data = data_pkl(path)
    before = bytes(data)
    runs = collapse_scalar_runs(data)
    assert runs is not None and bytes(data) == before
    assert len(runs.stream) < len(data) // 4  # the runs are gone from what the unpickler reads


def test_a_copy_of_a_run_inside_a_bytes_object_is_not_taken_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: None
) -> None:
    """Scalar-shaped bytes that are data (here a verbatim copy of a real run, smuggled into a bytes value
    at the end of the pickle) stay data: the compiled pass walks opcode by opcode, so the result is exactly
    plain unpickling's."""
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(nnunet_logging(400, 3, np.random.default_rng(8))), path)
    data = data_pkl(path)
    runs = collapse_scalar_runs(bytearray(data))
    assert runs is not None
    copy = bytes(data[len(data) // 2 : len(data) // 2 + 2000])  # the middle of the Dice run
    assert data.endswith(b".")
    smuggle = (b"h\x00" + b"X\x08\x00\x00\x00smuggled" + b"B" + len(copy).to_bytes(4, "little") + copy + b"s0.")
    forged = tmp_path / "forged.pth"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(forged, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            payload = source.read(info)
            if info.filename.endswith("/data.pkl"):
                payload = bytes(data[:-1]) + smuggle
            target.writestr(info.filename, payload)
    fast, plain = read_both(forged, monkeypatch)
    assert_same(fast, plain)
    assert fast.epochs == 400


def test_the_pass_applies_at_every_size(tmp_path: Path, compiled: None) -> None:
    """From a few epochs to many, the compiled pass does the work: no size is left to plain unpickling."""
    for epochs in (10, 100, 1000):
        path = tmp_path / f"checkpoint_{epochs}.pth"
        torch.save(checkpoint(nnunet_logging(epochs, 3, np.random.default_rng(epochs))), path)
        runs = collapse_scalar_runs(data_pkl(path))
        assert runs is not None and len(runs.values) > 7 * epochs, epochs


def test_threads_reading_at_once_get_their_own_buffers(tmp_path: Path, implementation: str) -> None:
    """The dashboard reads checkpoints from several threads: the reused per-thread buffers never mix reads."""
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for epochs in (1000, 450):
        path = tmp_path / f"checkpoint_{epochs}.pth"
        torch.save(checkpoint(nnunet_logging(epochs, 3, np.random.default_rng(epochs))), path)
        paths.append(path)
    expected = {path: curves_frame(read_checkpoint_curves(path)) for path in paths}
    with ThreadPoolExecutor(max_workers=4) as pool:
        frames = list(pool.map(lambda i: (paths[i % 2], curves_frame(read_checkpoint_curves(paths[i % 2]))), range(40)))
    for path, frame in frames:
        pd.testing.assert_frame_equal(frame, expected[path], check_exact=True)


def test_every_kind_of_value_around_the_curves_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """The compiled pass walks every opcode of the pickle and renumbers the memo: strings and bytes full of
    opcode-like bytes, big and negative ints, every tuple size, sets, nested and shared containers must come
    out as plain unpickling makes them."""
    shared = {"kernel": [3, 3], "stride": (1, 2)}
    init_args = {
        "text": "j\x00\x01\x02\x03r\x00X(e]a.ü€😀" * 3, "raw": b"jrXe(]\x80\x95\x00B\x10", "big": 2**70,
        "neg": -(2**40),
        "ints": [0, 255, 256, 65535, 65536, -1], "float": 1.5, "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
        "set": {1, 2}, "frozen": frozenset({"a"}), "none": None, "bools": [True, False], "spacing": [1.0, 0.5, 0.5],
        "nested": {"a": [{"b": (1.0, "x")}], "same": shared}, "again": shared, "array": np.arange(5, dtype=np.float32),
        "tensor": torch.ones(2, 3),  # outside the weights: described, not left out
    }
    log = nnunet_logging(700, 2, np.random.default_rng(21))
    log["extra"] = [1.0, 2.5]  # python floats right after the scalar lists: a float run of its own
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log, init_args=init_args), path)
    fast, plain = read_both(path, monkeypatch, runs_only=True)
    assert_same(fast, plain)
    args = checkpoint_objects(path)["init_args"]
    assert args["again"] is args["nested"]["same"]  # a memo GET, renumbered
    assert args["text"] == init_args["text"] and args["big"] == 2**70
    assert args["tensor"].startswith("torch._utils._rebuild_tensor_v2(<storage, not read>, 0, (2, 3),")


def test_a_malicious_call_inside_a_tensor_record_is_still_refused(tmp_path: Path, implementation: str) -> None:
    """Tensor records are left out of what the unpickler reads, but only those that name no global: the first
    ``os.system`` is pickled as a global, reaches the restricted unpickler and is refused."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return os.system, (f"touch {marker}",)

    class EvilTensor:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return torch._utils._rebuild_tensor_v2, (Evil(), 0, (1,), (1,), False, collections.OrderedDict())

    ckpt = checkpoint(nnunet_logging(1000, 3, np.random.default_rng(6)))
    ckpt["network_weights"]["stage.50.weight"] = EvilTensor()
    ckpt["network_weights"]["stage.51.weight"] = EvilTensor()  # os.system now a memo GET: this record is left out
    path = tmp_path / "checkpoint_final.pth"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"refused: checkpoint tries to call os\.system"):
        read_checkpoint_curves(path)
    assert not marker.exists()


def test_protocol_4_pickles_are_left_to_the_other_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """torch.save with a newer pickle protocol frames the pickle and memoises differently: the compiled pass
    declines, and the checkpoint still reads exactly."""
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(nnunet_logging(600, 3, np.random.default_rng(9))), path, pickle_protocol=4)
    assert collapse_scalar_runs(data_pkl(path)) is None
    fast, plain = read_both(path, monkeypatch)
    assert_same(fast, plain)
    assert fast.epochs == 600


def test_mangled_pickles_never_read_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """Random byte changes and truncations of a real checkpoint's pickle: the compiled pass may decline, and a
    read may fail, but whenever both reads succeed they agree (and nothing crashes the process)."""
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(nnunet_logging(300, 2, np.random.default_rng(12)), tensors=40), path)
    data = bytes(data_pkl(path))
    rng = np.random.default_rng(13)
    mangled = []
    for _ in range(120):
        pickle = bytearray(data)
        for at in rng.integers(0, len(data), int(rng.integers(1, 4))):
            pickle[at] = int(rng.integers(0, 256)) if rng.random() < 0.5 else (pickle[at] + 1) % 256
        mangled.append(bytes(pickle))
    mangled += [data[: int(n)] for n in rng.integers(0, len(data), 30)]
    agreed = 0
    for index, pickle in enumerate(mangled):
        collapse_scalar_runs(bytearray(pickle))  # returns or declines, never raises
        forged = tmp_path / f"mangled_{index}.pth"
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(forged, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                target.writestr(info.filename, pickle if info.filename.endswith("/data.pkl") else source.read(info))
        results = []
        for collapse in (checkpoint_runs._collapse, None):
            with monkeypatch.context() as patch:
                patch.setattr(checkpoint_runs, "_collapse", collapse)
                try:
                    results.append(read_checkpoint_curves(forged))
                except CheckpointError:
                    results.append(None)
        if None not in results:
            assert_same(*results)
            agreed += 1
    assert agreed > 20  # most single-byte changes hit data that still reads


def test_a_corrupt_memo_index_is_refused_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """One corrupt byte in a LONG_BINPUT would make CPython's unpickler allocate and clear a memo array of
    gigabytes: the reader says the file is corrupt instead, with the compiled pass and without it."""
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(nnunet_logging(300, 2, np.random.default_rng(14))), path)
    data = bytearray(data_pkl(path))
    put = next(pos for op, _, pos in pickletools.genops(bytes(data)) if op.name == "LONG_BINPUT")
    data[put + 4] = 0x3E  # the index's top byte: ~1 billion
    forged = tmp_path / "corrupt.pth"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(forged, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info.filename, bytes(data) if info.filename.endswith("/data.pkl") else source.read(info))
    for collapse in (checkpoint_runs._collapse, None):
        with monkeypatch.context() as patch:
            patch.setattr(checkpoint_runs, "_collapse", collapse)
            with pytest.raises(CheckpointError, match="a memo index larger than the pickle itself"):
                read_checkpoint_curves(forged)


def test_a_lone_scalar_beside_the_curves_does_not_cost_the_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """A numpy scalar that is no list item (a ``_best_ema`` pickled on its own, a trainer's attribute) stays for
    the unpickler: the compiled pass only starts runs at the first item of a list, so it still does the
    work alone."""
    log = nnunet_logging(500, 3, np.random.default_rng(15))
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log, _best_ema=np.float32(0.75), init_args={"margin": np.float64(0.125)}), path)
    fast, plain = read_both(path, monkeypatch, runs_only=True)
    assert_same(fast, plain)
    assert checkpoint_objects(path)["init_args"] == {"margin": 0.125}


def test_curves_of_python_floats_still_skip_the_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """A logger that kept python floats has no scalar runs to hide; the compiled pass still leaves out the
    tensor records and renumbers the memo, so it reads such a checkpoint alone, exactly."""
    log = nnunet_logging(800, 3, np.random.default_rng(16), dice_type=float, loss_type=float)
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log), path)
    fast, plain = read_both(path, monkeypatch, runs_only=True)
    assert_same(fast, plain)
    assert curves_frame(fast)["val_loss"].tolist() == log["val_losses"]


@pytest.mark.parametrize("scalar_type", [np.int64, np.int32, np.int16, np.uint64])
def test_integer_scalars_are_not_decoded_as_floats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str, scalar_type: Any
) -> None:
    """A curve of numpy integers has the byte layout of a float curve of the same itemsize: the dtype the
    unpickler builds for it decides, and the values read as the integers they are."""
    log = nnunet_logging(300, 2, np.random.default_rng(17))
    log["train_losses"] = [scalar_type(epoch) for epoch in range(300)]
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint(log), path)
    fast, plain = read_both(path, monkeypatch)
    assert_same(fast, plain)
    assert curves_frame(fast)["train_loss"].tolist() == list(range(300))


def test_synthetic_checkpoints_take_the_compiled_pass_as_real_ones_do(tmp_path: Path, compiled: None) -> None:
    """The demo's and the benchmarks' checkpoints cost what a real one costs to read: their scalars are hidden in
    runs, and the values read are the curves they were written from."""
    from monitor.synth import FakeRun, make_run_dir

    run = FakeRun(make_run_dir(tmp_path / "results"), planned_epochs=300)
    run.start_session()
    run.history(200)
    path = run.folder / "checkpoint_latest.pth"
    path.write_bytes(run.checkpoint_bytes())
    runs = collapse_scalar_runs(data_pkl(path))
    assert runs is not None and len(runs.values) >= 200 * 7 - 2
    curves = read_checkpoint_curves(path)
    np.testing.assert_allclose(curves.columns["dice"], run.curves.dice[:200], rtol=1e-6)
    assert not curves.problems
