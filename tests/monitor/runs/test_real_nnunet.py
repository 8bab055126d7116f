"""A real nnU-Net training (tiny dataset, CPU): log-derived and checkpoint-derived curves agree."""

from __future__ import annotations

import pickletools

import numpy as np
import pytest
from checkpoint_objects import checkpoint_objects, curves_frame

from monitor import load_run
from monitor.checkpoints.reader import read_checkpoint_curves

pytestmark = pytest.mark.nnunet


def test_log_and_checkpoint_curves_agree_within_log_rounding(tiny_parent_run) -> None:
    reader = load_run(tiny_parent_run)
    frame = reader.frame()
    summary = reader.summary()
    assert frame["epoch"].tolist() == [0, 1, 2, 3]
    assert summary.status == "finished" and summary.planned_epochs == 4
    assert summary.class_names == ("disc", "ring")
    assert summary.final_validation_dice is not None  # validation/summary.json

    log_only = reader._merged_logs()  # what the text log alone says
    ckpt = curves_frame(read_checkpoint_curves(tiny_parent_run / "checkpoint_final.pth"))
    assert ckpt["epoch"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(log_only.train_loss, ckpt["train_loss"], atol=5.1e-5)
    np.testing.assert_allclose(log_only.val_loss, ckpt["val_loss"], atol=5.1e-5)
    np.testing.assert_allclose(log_only.dice, ckpt[["dice_1", "dice_2"]].to_numpy(), atol=5.1e-5)
    np.testing.assert_allclose(log_only.lr, ckpt["lr"], atol=5.1e-6)
    # The merged frame carries the checkpoint's full precision, and nnU-Net's own EMA matches ours.
    assert (frame["source"] == "checkpoint_final.pth").all()
    np.testing.assert_allclose(frame["ema_fg_dice"], ckpt["ema_fg_dice"], rtol=1e-6)


@pytest.mark.parametrize("implementation", ["compiled", "plain"])
def test_the_compiled_pass_reads_a_real_checkpoint_exactly(
    tiny_parent_run, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    """nnU-Net's own checkpoint: the compiled pass handles it alone, bit for bit as plain restricted unpickling,
    and leaves out every tensor record but the first; plain unpickling (no compiler) reads the same curves."""
    from monitor.checkpoints import runs as checkpoint_runs
    from monitor.checkpoints.archive import _torch_zip_data_pkl
    from monitor.checkpoints.runs import collapse_scalar_runs

    path = tiny_parent_run / "checkpoint_final.pth"
    if implementation == "plain":
        monkeypatch.setattr(checkpoint_runs, "_collapse", None)
        curves = read_checkpoint_curves(path)
        assert curves.epochs == 4 and curves.problems == [] and curves_frame(curves)["epoch"].tolist() == [0, 1, 2, 3]
        return
    assert checkpoint_runs._collapse is not None, "monitor.checkpoints._scalar_runs is not built"
    with open(path, "rb") as fh:
        data = _torch_zip_data_pkl(fh.fileno(), path.stat().st_size)
    assert data is not None
    runs = collapse_scalar_runs(bytearray(data))
    assert runs is not None and len(runs.values) >= 4 * 8  # all but the first scalars of 4 epochs

    def storages(pickle: bytes | bytearray) -> int:  # each tensor's storage is one BINPERSID
        return sum(op.name == "BINPERSID" for op, _, _ in pickletools.genops(pickle))

    assert storages(data) > 20 and storages(runs.stream) == 1

    def declined(data: bytes | bytearray, path: object) -> None:
        raise AssertionError("the compiled pass declined a real nnU-Net checkpoint")

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_runs, "check_memo_indices", declined)  # where the plain fallback starts
        fast, fast_objects = read_checkpoint_curves(path), checkpoint_objects(path)
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_runs, "_collapse", None)
        plain, plain_objects = read_checkpoint_curves(path), checkpoint_objects(path)
    assert curves_frame(fast).equals(curves_frame(plain)) and fast.problems == plain.problems == []
    assert fast_objects == plain_objects
