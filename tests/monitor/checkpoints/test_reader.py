"""monitor.checkpoints.reader: curves read back exactly, nothing in the pickle runs, tensor data is never read."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from checkpoint_objects import checkpoint_objects, curves_frame
from paths import REPO

from monitor.checkpoints import reader as ckpt_mod
from monitor.checkpoints import runs as checkpoint_runs
from monitor.checkpoints.archive import _load_checkpoint_object
from monitor.checkpoints.reader import CheckpointCurves, CheckpointError, read_checkpoint_curves

torch = pytest.importorskip("torch")

V2_KEYS = ("mean_fg_dice", "ema_fg_dice", "dice_per_class_or_region", "train_losses", "val_losses", "lrs",
           "epoch_start_timestamps", "epoch_end_timestamps")
INCOMPLETE = "incomplete (still being written?)"


# ------------------------------------------------------------------------------------------------------------
# builders
# ------------------------------------------------------------------------------------------------------------


def v2_logging(epochs: int, classes: int = 3, seed: int = 0) -> dict[str, list[Any]]:
    """The value types nnU-Net v2 logs: np.float64 Dice, np.float32 losses, python float lr and times,
    with a NaN class at epoch 2 and a few odd-but-legal values (0-d arrays, an ndarray row, python floats)."""
    rng = np.random.default_rng(seed)
    log: dict[str, list[Any]] = {k: [] for k in V2_KEYS}
    for e in range(epochs):
        dice: Any = [np.float64(x) for x in rng.random(classes)]
        if e == 2:
            dice[1] = np.float64("nan")
        mean = np.nanmean(dice)
        if e == 3:
            dice = np.array(dice)  # an ndarray row
        log["mean_fg_dice"].append(mean)
        log["ema_fg_dice"].append(log["ema_fg_dice"][-1] * 0.9 + 0.1 * mean if log["ema_fg_dice"] else mean)
        log["dice_per_class_or_region"].append(dice)
        log["train_losses"].append(np.float32(rng.normal()) if e != 1 else np.array(rng.normal(), np.float32))
        log["val_losses"].append(np.float32(rng.normal()) if e != 4 else float(rng.normal()))
        log["lrs"].append(0.01 * (1 - e / 1000) ** 0.9)
        start = 1.7e9 + 100.0 * e + float(rng.random())
        log["epoch_start_timestamps"].append(start)
        log["epoch_end_timestamps"].append(start + 90.0 + float(rng.random()))
    return log


def v2_checkpoint(log: dict[str, list[Any]], tensor_elems: int = 1000, **extra: Any) -> dict[str, Any]:
    """A dict shaped like nnUNetTrainer.save_checkpoint's."""
    weights = collections.OrderedDict(
        (f"encoder.stages.{i}.conv.weight", torch.randn(tensor_elems // 4)) for i in range(4)
    )
    optimizer = {"state": {i: {"momentum_buffer": torch.zeros_like(w)} for i, w in enumerate(weights.values())},
                 "param_groups": [{"lr": 0.001, "momentum": 0.99, "nesterov": True, "params": [0, 1, 2, 3]}]}
    out = {
        "network_weights": weights,
        "optimizer_state": optimizer,
        "grad_scaler_state": None,
        "logging": log,
        "_best_ema": np.float64(0.5),
        "current_epoch": len(log["mean_fg_dice"]),
        "init_args": {"plans": {"plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {"batch_size": 2}}},
                      "configuration": "3d_fullres", "fold": 0,
                      "dataset_json": {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}},
                      "device": torch.device("cuda", 0)},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    out.update(extra)
    return out


def expected_frame(log: dict[str, list[Any]], n: int | None = None) -> pd.DataFrame:
    n = len(log["mean_fg_dice"]) if n is None else n
    dice = np.array([[float(v) for v in np.ravel(row)] for row in log["dice_per_class_or_region"][:n]])
    cols: dict[str, Any] = {
        "epoch": np.arange(n, dtype=np.int64),
        "lr": [float(v) for v in log["lrs"][:n]],
        "train_loss": [float(v) for v in log["train_losses"][:n]],
        "val_loss": [float(v) for v in log["val_losses"][:n]],
        "mean_fg_dice": [float(v) for v in log["mean_fg_dice"][:n]],
        "ema_fg_dice": [float(v) for v in log["ema_fg_dice"][:n]],
    }
    for k in range(dice.shape[1]):
        cols[f"dice_{k + 1}"] = dice[:, k]
    end = np.array(log["epoch_end_timestamps"][:n], dtype=np.float64)
    cols["epoch_time_s"] = end - np.array(log["epoch_start_timestamps"][:n], dtype=np.float64)
    cols["epoch_end"] = pd.to_datetime(end, unit="s", utc=True)
    return pd.DataFrame(cols)


def data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))


def member_data_ranges(path: Path, part: str) -> list[tuple[int, int]]:
    """(start, stop) byte ranges of the data of zip members whose name contains ``part``."""
    ranges = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
        for info in archive.infolist():
            if part in info.filename:
                fh.seek(info.header_offset)
                header = fh.read(30)
                name_len, extra_len = struct.unpack("<HH", header[26:30])
                start = info.header_offset + 30 + name_len + extra_len
                ranges.append((start, start + info.compress_size))
    return ranges


class Evil:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def rchar() -> int | None:
    try:
        with open("/proc/self/io") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))
    except (OSError, StopIteration):
        return None


# ------------------------------------------------------------------------------------------------------------
# exact curves
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("epochs", [6, 400])  # 6: memo indices below 256, which the compiled pass leaves alone
def test_v2_curves_read_back_exactly(tmp_path: Path, epochs: int) -> None:
    log = v2_logging(epochs)
    path = tmp_path / "checkpoint_final.pth"
    torch.save(v2_checkpoint(log), path)

    curves = read_checkpoint_curves(path)
    assert isinstance(curves, CheckpointCurves)
    assert (curves.path, curves.kind, curves.epochs, curves.current_epoch) == (path, "v2", epochs, epochs)
    assert list(curves_frame(curves).columns) == [
        "epoch", "lr", "train_loss", "val_loss", "mean_fg_dice", "ema_fg_dice", "dice_1", "dice_2", "dice_3",
        "epoch_time_s", "epoch_end"]
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(log), check_exact=True)
    assert np.isnan(curves_frame(curves)["dice_2"].iloc[2])  # the NaN class survives
    assert str(curves_frame(curves)["epoch_end"].dtype) == "datetime64[ns, UTC]"
    assert curves.problems == []
    assert checkpoint_objects(path)["init_args"] == {
        "plans": {"plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {"batch_size": 2}}},
        "configuration": "3d_fullres", "fold": 0,
        "dataset_json": {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}},
        "device": "torch.device('cuda', 0)",
    }


def test_fast_path_and_plain_unpickling_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = v2_logging(1000, classes=5, seed=3)
    log["train_losses"] = [np.float16(v) for v in log["train_losses"]]  # a third float width
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(v2_checkpoint(log), path)
    fast, fast_objects = read_checkpoint_curves(path), checkpoint_objects(path)
    monkeypatch.setattr(checkpoint_runs, "_collapse", None)
    slow, slow_objects = read_checkpoint_curves(path), checkpoint_objects(path)
    pd.testing.assert_frame_equal(curves_frame(fast), curves_frame(slow), check_exact=True)
    pd.testing.assert_frame_equal(curves_frame(fast), expected_frame(log), check_exact=True)
    assert fast_objects == slow_objects and fast.problems == slow.problems == []


@pytest.mark.parametrize("compiled", [True, False])
def test_shared_scalars_and_structure_survive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """Numpy scalars that are referenced twice, sit in tuples or dicts, or are list items all survive."""
    log = v2_logging(600, seed=5)
    log["mean_fg_dice"][300] = log["mean_fg_dice"][299]  # the same object twice: pickled as a memo GET
    spacing = (np.float64(1.5), np.float64(0.75), np.float32(0.5))
    plans = {"spacing": spacing, "median": [np.float64(v) for v in (160.0, 180.5, 150.25)],
             "stats": {"mean": np.float64(400.5), "std": np.float32(120.25)}}
    checkpoint = v2_checkpoint(log, _best_ema=log["ema_fg_dice"][450])  # nnU-Net keeps the same object
    checkpoint["init_args"]["plans"] = plans
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint, path)

    if not compiled:
        monkeypatch.setattr(checkpoint_runs, "_collapse", None)
    obj = _load_checkpoint_object(path)
    assert obj["_best_ema"] == float(log["ema_fg_dice"][450])
    # few tensors: numpy's helpers take short memo indices, so the pass leaves these scalars to the unpickler
    assert obj["logging"]["mean_fg_dice"][300] is obj["logging"]["mean_fg_dice"][299]

    curves = read_checkpoint_curves(path)
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(log), check_exact=True)
    assert checkpoint_objects(path)["init_args"]["plans"] == {
        "spacing": (1.5, 0.75, 0.5), "median": [160.0, 180.5, 150.25], "stats": {"mean": 400.5, "std": 120.25}}


def test_unequal_lengths_use_the_shortest_and_say_so(tmp_path: Path) -> None:
    log = v2_logging(10)
    log["lrs"].append(0.001)  # written mid-epoch: the next epoch's lr and start time already logged
    log["epoch_start_timestamps"].append(2e9)
    log["train_losses"].append(np.float32(0.1))
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(v2_checkpoint(log), path)
    curves = read_checkpoint_curves(path)
    assert curves.epochs == 10 and len(curves_frame(curves)) == 10
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(log, 10), check_exact=True)
    (problem,) = curves.problems
    assert "unequal lengths" in problem
    for name in ("lrs", "epoch_start_timestamps", "train_losses"):
        assert name in problem


def test_missing_and_unconvertible_values_are_reported(tmp_path: Path) -> None:
    log = v2_logging(5)
    del log["lrs"]
    log["val_losses"][3] = torch.tensor(0.5)  # a tensor: its storage is never read
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(v2_checkpoint(log), path)
    curves = read_checkpoint_curves(path)
    frame = curves_frame(curves)
    assert frame["lr"].isna().all()
    assert np.isnan(frame["val_loss"].iloc[3]) and not frame["val_loss"].drop(3).isna().any()
    text = " | ".join(curves.problems)
    assert "'lrs'" in text and "val_losses" in text and "tensor" in text


def v1_checkpoint(n: int, metrics: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    tr = [np.float64(v) for v in rng.random(n)]
    val = [np.float32(v) for v in rng.random(n)]
    eval_metrics = [np.float64(v) for v in rng.random(n)] if metrics else []
    return {
        "epoch": n,
        "state_dict": collections.OrderedDict(w=torch.randn(8, 8), b=torch.zeros(8)),
        "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
        "lr_scheduler_state_dict": None,
        "plot_stuff": (tr, val, [], eval_metrics),
        "best_stuff": (n - 1, 0.3, 0.8),
        "amp_grad_scaler": {"scale": 1024.0, "growth_factor": 2.0},
    }


@pytest.mark.parametrize("legacy", [False, True])
def test_v1_curves(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "model_final_checkpoint.model"
    data = v1_checkpoint(300)
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)

    curves = read_checkpoint_curves(path)
    assert (curves.kind, curves.epochs, curves.current_epoch) == ("v1", 300, 300)
    tr, val, _, metrics = data["plot_stuff"]
    frame = curves_frame(curves)
    assert list(frame.columns) == ["epoch", "lr", "train_loss", "val_loss", "mean_fg_dice", "ema_fg_dice",
                                   "epoch_time_s", "epoch_end"]
    assert frame["train_loss"].tolist() == [float(v) for v in tr]
    assert frame["val_loss"].tolist() == [float(v) for v in val]
    assert frame["mean_fg_dice"].tolist() == [float(v) for v in metrics]
    for col in ("lr", "ema_fg_dice", "epoch_time_s"):
        assert frame[col].isna().all()
    assert frame["epoch_end"].isna().all()
    assert curves.problems == []


def test_v1_without_eval_metrics_and_with_unequal_lengths(tmp_path: Path) -> None:
    data = v1_checkpoint(20, metrics=False)
    data["plot_stuff"][0].append(np.float64(0.1))  # one more train loss than val losses
    path = tmp_path / "model_latest.model"
    torch.save(data, path)
    curves = read_checkpoint_curves(path)
    assert curves.epochs == 20 and curves_frame(curves)["mean_fg_dice"].isna().all()
    text = " | ".join(curves.problems)
    assert "all_val_eval_metrics is empty" in text and "all_tr_losses (1 more)" in text


def test_legacy_format_v2(tmp_path: Path) -> None:
    log = v2_logging(30)
    path = tmp_path / "checkpoint_best.pth"
    torch.save(v2_checkpoint(log), path, _use_new_zipfile_serialization=False)
    assert not path.read_bytes().startswith(b"PK")
    curves = read_checkpoint_curves(path)
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(log), check_exact=True)
    assert checkpoint_objects(path)["init_args"]["device"] == "torch.device('cuda', 0)"


def test_real_nnunet_objects(tmp_path: Path) -> None:
    """Network, optimizer, scheduler and logger are nnU-Net's own classes, the dict is save_checkpoint's."""
    pytest.importorskip("nnunetv2")
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.training.logging.nnunet_logger import MetaLogger
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    net = PlainConvUNet(1, 3, (8, 16, 32), torch.nn.Conv2d, 3, (1, 2, 2), 2, 3, (1, 1), conv_bias=True,
                        norm_op=torch.nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True})
    optimizer = torch.optim.SGD(net.parameters(), 0.01, weight_decay=3e-5, momentum=0.99, nesterov=True)
    scheduler = PolyLRScheduler(optimizer, 0.01, 50)
    logger = MetaLogger(str(tmp_path), resume=False)
    rng = np.random.default_rng(0)
    for epoch in range(50):  # the trainer's logging calls, in its order, with its value types
        logger.log("epoch_start_timestamps", time.time(), epoch)
        scheduler.step(epoch)
        logger.log("lrs", optimizer.param_groups[0]["lr"], epoch)
        out = net(torch.randn(1, 1, 16, 16))
        loss = out[0].mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        logger.log("train_losses", np.mean([loss.detach().cpu().numpy()]), epoch)
        tp, fp, fn = rng.integers(1, 100, (3, 2)).astype(np.float64)
        dice = [2 * i / (2 * i + j + k) for i, j, k in zip(tp, fp, fn)]
        logger.log("mean_fg_dice", np.nanmean(dice), epoch)
        logger.log("dice_per_class_or_region", dice, epoch)
        logger.log("val_losses", np.mean([np.float32(rng.normal())]), epoch)
        logger.log("epoch_end_timestamps", time.time(), epoch)
    checkpoint = {
        "network_weights": net.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": None,
        "logging": logger.get_checkpoint(),
        "_best_ema": logger.get_value("ema_fg_dice", -1),
        "current_epoch": 50,
        "init_args": {"plans": {"dataset_name": "Dataset001_X", "configurations": {"2d": {"patch_size": [16, 16]}}},
                      "configuration": "2d", "fold": 0, "dataset_json": {"labels": {"background": 0, "a": 1, "b": 2}},
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1),
    }
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint, path)
    curves = read_checkpoint_curves(path)
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(checkpoint["logging"]), check_exact=True)
    assert checkpoint_objects(path)["init_args"]["device"] == "torch.device('cpu')"
    assert (curves.epochs, curves.current_epoch, curves.problems) == (50, 50, [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.load(path, weights_only=False)
    assert curves_frame(curves)["ema_fg_dice"].tolist() == [float(v) for v in reference["logging"]["ema_fg_dice"]]


# ------------------------------------------------------------------------------------------------------------
# nothing in the pickle runs
# ------------------------------------------------------------------------------------------------------------


def _payloads(marker: Path) -> dict[str, Evil]:
    return {
        "os.system": Evil(os.system, f"touch {marker}"),
        "builtins.eval": Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": Evil(subprocess.Popen, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.Popen"])
@pytest.mark.parametrize("where", ["init_args", "inside_a_long_curve", "legacy"])
def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path: Path, name: str, where: str) -> None:
    marker = tmp_path / "pwned"
    evil = _payloads(marker)[name]
    path = tmp_path / "checkpoint_final.pth"
    log = v2_logging(500 if where == "inside_a_long_curve" else 5)
    if where == "inside_a_long_curve":
        log["mean_fg_dice"][250] = evil  # among the numpy scalars the compiled pass hides
        torch.save(v2_checkpoint(log), path)
    else:
        torch.save(v2_checkpoint(log, init_args={"evil": evil}), path, _use_new_zipfile_serialization=where != "legacy")

    with pytest.raises(CheckpointError) as info:
        read_checkpoint_curves(path)
    assert str(info.value) == f"refused: checkpoint tries to call {name}"
    assert info.value.path == path
    time.sleep(0.2)
    assert not marker.exists()

    # the file really is malicious: torch.load runs the payload
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=False)
    for _ in range(100):
        if marker.exists():
            break
        time.sleep(0.05)
    assert marker.exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"c__builtin__\neval\n(S'1+1'\ntR.", "builtins.eval"),  # Python 2 names are mapped first
        (b"cposix\nsystem\n(S'true'\ntR.", "os.system"),
        (b"cfunctools\npartial\n(cbuiltins\nprint\ntR.", "functools.partial"),
        (b"c__builtin__\ngetattr\n(S'x'\nS'upper'\ntR.", "builtins.getattr"),
        (b"coperator\nattrgetter\n(S'x'\ntR.", "operator.attrgetter"),
        (b"cimportlib\nimport_module\n(S'os'\ntR.", "importlib.import_module"),
        (b"c__builtin__\n__import__\n(S'os'\ntR.", "builtins.__import__"),
        (b"cnumpy\nload\n(S'x.npy'\ntR.", "numpy.load"),
        (b"ccopyreg\n_reconstructor\n(cos\nsystem\nc__builtin__\nobject\nNtR.", "os.system"),
    ],
)
def test_refused_globals_in_a_handmade_archive(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "checkpoint_final.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", raw)
        archive.writestr("archive/version", "3\n")
    with pytest.raises(CheckpointError, match=r"^refused: .*" + message.replace(".", r"\.")):
        read_checkpoint_curves(path)


#: Every module the reader refuses outright, written out here rather than imported, so that dropping one from
#: the reader's list fails a test.
REFUSED_MODULES = (
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "sys", "importlib", "imp",
    "runpy", "shutil", "pickle", "_pickle", "cPickle", "copy_reg", "dill", "cloudpickle", "joblib", "marshal",
    "code", "codeop", "ctypes", "_ctypes", "socket", "_socket", "ssl", "pty", "webbrowser", "functools",
    "_functools", "operator", "_operator", "multiprocessing", "_multiprocessing", "signal", "threading", "_thread",
    "asyncio", "concurrent", "tempfile", "io", "_io", "glob", "zipimport", "pkgutil", "site", "platform",
    "commands", "popen2", "types", "inspect", "gc", "timeit", "trace", "pdb", "bdb", "cProfile", "profile",
    "doctest", "pydoc", "urllib", "urllib2", "http", "httplib", "ftplib", "smtplib", "telnetlib", "requests",
    "venv", "ensurepip", "distutils", "setuptools", "pip", "sqlite3", "shelve", "dbm", "tarfile", "zipfile",
    "_winapi", "msvcrt", "winreg", "resource", "fcntl", "mmap", "select", "selectors", "xmlrpc", "logging",
    "contextlib", "weakref", "sysconfig",
    # and every global of these but a short allow-list (set, frozenset, bytes, _codecs.encode latin-1...)
    "builtins", "__builtin__", "_codecs", "codecs", "copyreg",
)
#: Real submodules of refused modules whose members run code or reach the network.
REFUSED_SUBMODULE_GLOBALS = (
    ("urllib.request", "urlopen"), ("importlib.machinery", "SourceFileLoader"), ("importlib.util", "exec_module"),
    ("os.path", "expanduser"), ("concurrent.futures", "ThreadPoolExecutor"), ("multiprocessing.util", "spawnv_passfds"),
    ("http.server", "CGIHTTPRequestHandler"), ("xmlrpc.client", "ServerProxy"), ("logging.config", "listen"),
    ("distutils.spawn", "spawn"), ("setuptools.sandbox", "run_setup"),
    ("asyncio.subprocess", "create_subprocess_shell"), ("ctypes.util", "find_library"), ("sqlite3.dbapi2", "connect"),
    ("dbm.dumb", "open"), ("pip._internal", "main"), ("joblib.externals.loky", "cpu_count"),
)


def test_every_refused_module_and_its_submodules_are_refused(tmp_path: Path) -> None:
    """A global from a refused module, or from any submodule of one at any depth, is refused, never stood in."""
    cases = [(module, "anything") for module in REFUSED_MODULES]
    cases += [(f"{module}.sub", "anything") for module in REFUSED_MODULES]
    cases += [(f"{module}.sub.deeper", "anything") for module in REFUSED_MODULES]
    cases += list(REFUSED_SUBMODULE_GLOBALS)
    accepted = []
    path = tmp_path / "checkpoint_final.pth"
    for module, name in cases:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", f"c{module}\n{name}\n(tR.".encode())
            archive.writestr("archive/version", "3\n")
        try:
            read_checkpoint_curves(path)
        except CheckpointError as exc:
            if str(exc).startswith("refused: checkpoint tries to call ") and str(exc).endswith(f".{name}"):
                continue
            accepted.append(f"{module}.{name}: {exc}")
        else:
            accepted.append(f"{module}.{name}: read")
    assert accepted == []


def test_raw_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint_best.pth"
    path.write_bytes(pickle.dumps(Evil(os.system, f"touch {marker}")))
    with pytest.raises(CheckpointError, match=r"^refused: checkpoint tries to call os\.system$"):
        read_checkpoint_curves(path)
    assert not marker.exists()


def test_unknown_classes_become_inert_stand_ins(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(v2_checkpoint(v2_logging(4), init_args={"fold": 1, "when": collections.Counter(a=2),
                                                       "weights": torch.ones(2, 3)}), path)
    raw = data_pkl(path).replace(b"ccollections\nCounter", b"cmy_trainers\nSecret_")  # a class we lack
    rebuilt = tmp_path / "rebuilt.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(rebuilt, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, raw if info.filename.endswith("/data.pkl") else src.read(info))
    assert read_checkpoint_curves(rebuilt).epochs == 4
    args = checkpoint_objects(rebuilt)["init_args"]
    assert args["fold"] == 1
    assert args["when"].startswith("my_trainers.Secret_(")
    assert args["weights"].startswith("torch._utils._rebuild_tensor_v2(<storage, not read>, 0, (2, 3),")


class Node:
    """A class the reader does not have (it becomes a stand-in) that pickles as Node(left, right)."""

    def __init__(self, left: Any = None, right: Any = None) -> None:
        self.left, self.right = left, right

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Node, (self.left, self.right)


def test_shared_cyclic_and_deep_structures_stay_cheap(tmp_path: Path) -> None:
    """A small pickle can describe exponentially large trees by sharing: reading it and describing what it
    holds stay linear."""
    shared: Any = [1.5]
    node: Any = Node()
    for _ in range(60):
        shared = [shared, shared]
        node = Node(node, node)
    cyclic: list[Any] = [0]
    cyclic.append(cyclic)
    deep: Any = []
    for _ in range(200):
        deep = [deep]
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(v2_checkpoint(v2_logging(3), init_args={"shared": shared, "node": node, "cyclic": cyclic,
                                                       "deep": deep}), path)
    start = time.perf_counter()
    assert read_checkpoint_curves(path).epochs == 3
    node_text = repr(_load_checkpoint_object(path)["init_args"]["node"])
    assert time.perf_counter() - start < 5
    assert node_text.startswith(f"{Node.__module__}.Node({Node.__module__}.Node(") and len(node_text) <= 300


def test_module_does_not_import_torch() -> None:
    code = "import sys; import monitor.checkpoints.reader; assert 'torch' not in sys.modules, 'torch imported'"
    root = REPO
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ------------------------------------------------------------------------------------------------------------
# tensor data is never read
# ------------------------------------------------------------------------------------------------------------


def test_storages_are_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = v2_logging(300)
    path = tmp_path / "checkpoint_final.pth"
    torch.save(v2_checkpoint(log, tensor_elems=4_000_000), path)  # 32 MB of float32 weights + momentum
    storages = member_data_ranges(path, "/data/")
    assert len(storages) == 8 and path.stat().st_size > 30_000_000
    # overwrite every storage with garbage: the curves do not depend on a single byte of it
    with open(path, "r+b") as fh:
        for start, stop in storages:
            fh.seek(start)
            fh.write(os.urandom(stop - start))

    reads: list[tuple[int, int]] = []
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        reads.append((offset, offset + size))
        return real_pread(fd, size, offset)

    monkeypatch.setattr(ckpt_mod.os, "pread", pread)
    before = rchar()
    curves = read_checkpoint_curves(path)
    after = rchar()
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(log), check_exact=True)
    assert reads and not any(a < stop and start < b for a, b in reads for start, stop in storages)
    if before is not None and after is not None:
        assert after - before < 1_000_000


def test_storages_are_never_read_legacy(tmp_path: Path) -> None:
    log = v2_logging(50)
    path = tmp_path / "checkpoint_final.pth"
    torch.save(v2_checkpoint(log, tensor_elems=2_000_000), path, _use_new_zipfile_serialization=False)
    size = path.stat().st_size
    before = rchar()
    curves = read_checkpoint_curves(path)
    after = rchar()
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(log), check_exact=True)
    if before is not None and after is not None:
        assert after - before < 200_000 < size


# ------------------------------------------------------------------------------------------------------------
# broken files
# ------------------------------------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_latest.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"^empty file \(0 bytes; still being written\?\)$"):
        read_checkpoint_curves(path)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("fraction", [0.5, 0.02, 0.999])
def test_truncated_file_is_incomplete(tmp_path: Path, legacy: bool, fraction: float) -> None:
    full = tmp_path / "full.pth"
    torch.save(v2_checkpoint(v2_logging(200), tensor_elems=200_000), full, _use_new_zipfile_serialization=not legacy)
    data = full.read_bytes()
    path = tmp_path / "checkpoint_latest.pth"
    path.write_bytes(data[: int(len(data) * fraction)])
    if legacy and fraction >= 0.5:  # the object pickle is complete; only storage bytes are missing
        assert read_checkpoint_curves(path).epochs == 200
        return
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_curves(path)
    assert str(info.value) == INCOMPLETE


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_best.pth"
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    path.write_bytes(b"\x13" + data)
    with pytest.raises(CheckpointError, match=r"^not a checkpoint"):
        read_checkpoint_curves(path)
    path.write_bytes(b"PK\x03\x04" + data)  # starts like a zip: a save in progress
    with pytest.raises(CheckpointError, match=r"^incomplete \(still being written\?\)$"):
        read_checkpoint_curves(path)
    path.write_bytes(b"\x80\x02" + data)  # starts like a legacy torch file
    with pytest.raises(CheckpointError):
        read_checkpoint_curves(path)


def test_garbled_data_pkl_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_final.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00(X\x01\x00\x00\x00a\xff\xff")
    with pytest.raises(CheckpointError, match=r"^corrupt checkpoint data"):
        read_checkpoint_curves(path)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"network_weights": {}, "current_epoch": 3}, "without a 'logging' dict"),
        ({"state_dict": {}, "epoch": 3}, "without 'plot_stuff'"),
        ({"a": 1}, "no 'logging' or 'plot_stuff'"),
        ([1, 2, 3], "top-level object is list"),
        ({"logging": {"foo": [1]}}, "none of nnU-Net's curves"),
    ],
)
def test_not_an_nnunet_checkpoint(tmp_path: Path, obj: Any, message: str) -> None:
    path = tmp_path / "checkpoint_final.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_curves(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="file not found"):
        read_checkpoint_curves(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="directory"):
        read_checkpoint_curves(tmp_path)


def test_empty_logging_gives_an_empty_frame_with_all_columns(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(v2_checkpoint({k: [] for k in V2_KEYS}), path)
    curves = read_checkpoint_curves(path)
    assert curves.epochs == 0 and len(curves_frame(curves)) == 0
    assert list(curves_frame(curves).columns) == ["epoch", "lr", "train_loss", "val_loss", "mean_fg_dice",
                                                  "ema_fg_dice", "epoch_time_s", "epoch_end"]


def test_reads_from_a_file_being_rewritten_in_place(tmp_path: Path) -> None:
    """nnU-Net truncates and rewrites the same file: every prefix is either readable or 'incomplete'."""
    full = io.BytesIO()
    torch.save(v2_checkpoint(v2_logging(50), tensor_elems=20_000), full)
    data = full.getvalue()
    path = tmp_path / "checkpoint_latest.pth"
    for cut in [*range(0, len(data), max(1, len(data) // 97)), len(data)]:
        path.write_bytes(data[:cut])
        try:
            curves = read_checkpoint_curves(path)
        except CheckpointError as exc:
            assert str(exc) in (INCOMPLETE, "empty file (0 bytes; still being written?)"), (cut, str(exc))
        else:
            assert cut == len(data) and curves.epochs == 50


def test_scalar_shared_across_lists(tmp_path: Path) -> None:
    """A list item that is the same object as an item of another list (a memo GET) keeps its value."""
    log = v2_logging(400, seed=9)
    log["ema_fg_dice"][200] = log["mean_fg_dice"][350]
    path = tmp_path / "checkpoint_final.pth"
    torch.save(v2_checkpoint(log), path)
    curves = read_checkpoint_curves(path)
    pd.testing.assert_frame_equal(curves_frame(curves), expected_frame(log), check_exact=True)
