"""Benchmark ``monitor.checkpoints.reader.read_checkpoint_curves`` against ``torch.load`` on a large nnU-Net checkpoint.

Run: ``.venv/bin/python bench/bench_checkpoint.py [--size-mb 500] [--epochs 1000] [--classes 3] [--runs 5] [--plain]``.
``--size-mb`` is the whole file (network weights + the SGD momentum buffers nnU-Net keeps, half each);
``--size-mb 1000`` gives a 500 MB state dict plus its 500 MB of momentum.

Why: the dashboard polls ``checkpoint_latest.pth`` of every running training; the requirement is that reading
the curves is >= 100x faster than ``torch.load(path, weights_only=False)`` and reads <= 1 MB of the file.

What it does: builds a checkpoint the way nnU-Net v2's ``nnUNetTrainer.save_checkpoint`` does (network
weights shaped like a 3d_fullres PlainConvUNet, scaled to the requested size, SGD momentum buffers of the
same shapes, grad scaler state, a ``logging`` dict of ``--epochs`` epochs with the value types nnU-Net logs
(numpy float32 pseudo Dice and losses, python float lr and timestamps), ``init_args`` with plans,
dataset.json and a ``torch.device``), writes it with ``torch.save`` into a temporary directory (removed at the
end), then times both readers (median of ``--runs``) and counts the bytes each one reads from /proc/self/io
(``rchar``), twice:

* page cache warm (the file was just written or read): the case most favourable to ``torch.load``, which then
  copies its 500 MB from memory; this is the requirement's comparison;
* page cache cold (``posix_fadvise(DONTNEED)`` on the file before every call, no root needed): what a
  dashboard meets when it opens a results tree that was not read recently.

``--plain`` reads as an install without a C compiler does: plain restricted unpickling of ``data.pkl``,
without the compiled pass and without the memo guard.

torch's import time is not counted for ``torch.load``.  The time of ``torch.load`` differs between processes
(it depends on whether its tensors land in memory the process already holds), so every run is printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.checkpoints import runs as checkpoint_runs
from monitor.checkpoints.reader import read_checkpoint_curves


def rchar() -> int | None:
    """Bytes this process has read through read()-like system calls so far (Linux only)."""
    try:
        with open("/proc/self/io") as fh:
            for line in fh:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f", {int(fh.readline().split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs{mem}, {platform.system()} {platform.release()}"


def unet_state_dict(torch: Any, target_bytes: int) -> dict[str, Any]:
    """Float32 tensors shaped like nnU-Net's 3d_fullres PlainConvUNet (6 stages), widened to ``target_bytes``."""
    base = [32, 64, 128, 256, 320, 320]
    # bytes of the base network; the conv weights dominate and scale with width**2
    def build(scale: float) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        widths = [max(1, round(w * scale)) for w in base]
        in_ch = 1
        for s, w in enumerate(widths):
            for c in range(2):
                prefix = f"encoder.stages.{s}.0.convs.{c}"
                shapes[f"{prefix}.conv.weight"] = (w, in_ch if c == 0 else w, 3, 3, 3)
                shapes[f"{prefix}.conv.bias"] = (w,)
                shapes[f"{prefix}.norm.weight"] = (w,)
                shapes[f"{prefix}.norm.bias"] = (w,)
                in_ch = w
        for s in range(len(widths) - 1):
            hi, lo = widths[-1 - s], widths[-2 - s]
            shapes[f"decoder.transpconvs.{s}.weight"] = (hi, lo, 2, 2, 2)
            shapes[f"decoder.transpconvs.{s}.bias"] = (lo,)
            for c in range(2):
                prefix = f"decoder.stages.{s}.convs.{c}"
                shapes[f"{prefix}.conv.weight"] = (lo, 2 * lo if c == 0 else lo, 3, 3, 3)
                shapes[f"{prefix}.conv.bias"] = (lo,)
                shapes[f"{prefix}.norm.weight"] = (lo,)
                shapes[f"{prefix}.norm.bias"] = (lo,)
            shapes[f"decoder.seg_layers.{s}.weight"] = (4, lo, 1, 1, 1)
            shapes[f"decoder.seg_layers.{s}.bias"] = (4,)
        return shapes

    def nbytes(shapes: dict[str, tuple[int, ...]]) -> int:
        return sum(4 * int(np.prod(s)) for s in shapes.values())

    scale = (target_bytes / nbytes(build(1.0))) ** 0.5
    shapes = build(scale)
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=gen) * 0.01 for k, s in shapes.items()}


def nnunet_logging(epochs: int, classes: int, seed: int = 0) -> dict[str, list[Any]]:
    """Per-epoch lists with the value types nnU-Net v2 (2.8) logs, as read back from a real training:
    numpy float32 Dice per class, their np.nanmean and EMA, numpy float32 losses, python float lr and times."""
    rng = np.random.default_rng(seed)
    log: dict[str, list[Any]] = {k: [] for k in (
        "mean_fg_dice", "ema_fg_dice", "dice_per_class_or_region", "train_losses", "val_losses", "lrs",
        "epoch_start_timestamps", "epoch_end_timestamps")}
    t = 1.7e9
    for epoch in range(epochs):
        progress = epoch / epochs
        dice = [np.float32(min(1.0, max(0.0, 0.9 * (1 - np.exp(-8 * progress)) + rng.normal(0, 0.02))))
                for _ in range(classes)]
        mean = np.nanmean(dice)
        log["mean_fg_dice"].append(mean)
        log["ema_fg_dice"].append(log["ema_fg_dice"][-1] * 0.9 + 0.1 * mean if log["ema_fg_dice"] else mean)
        log["dice_per_class_or_region"].append(dice)
        log["train_losses"].append(np.float32(-0.8 * progress + rng.normal(0, 0.02)))
        log["val_losses"].append(np.float32(-0.7 * progress + rng.normal(0, 0.03)))
        log["lrs"].append(0.01 * (1 - epoch / epochs) ** 0.9)
        log["epoch_start_timestamps"].append(t)
        t += 95.0 + float(rng.normal(0, 3))
        log["epoch_end_timestamps"].append(t)
        t += 0.01
    return log


def make_checkpoint(torch: Any, path: Path, size_mb: float, epochs: int, classes: int) -> None:
    """Write a checkpoint shaped like nnUNetTrainer.save_checkpoint's: weights + momentum = ``size_mb``."""
    weights = unet_state_dict(torch, int(size_mb * 2**20 / 2))
    params = list(weights.values())
    optimizer_state = {
        "state": {i: {"momentum_buffer": torch.zeros_like(p)} for i, p in enumerate(params)},
        "param_groups": [{"lr": 0.0, "momentum": 0.99, "dampening": 0, "weight_decay": 3e-05, "nesterov": True,
                          "maximize": False, "foreach": None, "differentiable": False, "fused": None,
                          "initial_lr": 0.01, "params": list(range(len(params)))}],
    }
    plans = {
        "dataset_name": "Dataset004_Hippocampus", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [1.0, 1.0, 1.0], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": [128, 128, 128], "median_image_size_in_voxels": [160.0, 180.0, 150.0],
            "spacing": [1.0, 1.0, 1.0], "normalization_schemes": ["ZScoreNormalization"],
            "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                             "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
                                             "kernel_sizes": [[3, 3, 3]] * 6, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
                                             "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5,
                                             "conv_bias": True}},
            "batch_dice": False}},
        "experiment_planner_used": "ExperimentPlanner",
        "foreground_intensity_properties_per_channel": {"0": {"max": 3000.0, "mean": 400.0, "median": 380.0,
                                                              "min": 0.0, "std": 120.0}},
    }
    checkpoint = {
        "network_weights": weights,
        "optimizer_state": optimizer_state,
        "grad_scaler_state": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                              "growth_interval": 2000, "_growth_tracker": 113},
        "logging": nnunet_logging(epochs, classes),
        "_best_ema": None,
        "current_epoch": epochs,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0,
                      "dataset_json": {"channel_names": {"0": "CT"},
                                       "labels": {"background": 0, **{f"c{k}": k for k in range(1, classes + 1)}},
                                       "numTraining": 260, "file_ending": ".nii.gz"},
                      "device": torch.device("cuda", 0)},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    ema = checkpoint["logging"]["ema_fg_dice"]
    checkpoint["_best_ema"] = ema[int(np.argmax(ema))]  # nnU-Net keeps the very object (a memo reference)
    torch.save(checkpoint, path)


def drop_cache(path: Path) -> None:
    """Evict the file from the page cache (written back first: only clean pages can be dropped)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(
    fn: Callable[[], Any], runs: int, walls: list[float] | None = None, before: Callable[[], None] | None = None
) -> tuple[float, float, int | None]:
    """Median wall time and median CPU time over ``runs`` calls, and the bytes read by the first call.

    CPU time (``time.process_time``) is reported too because on a shared machine the wall time of a
    millisecond-long call mostly measures how often it was preempted.  Like ``timeit``, the garbage
    collector is run once before the series, not before every call: a full collection also empties
    CPython's free lists, and a process that polls checkpoints does not run one before every poll.
    """
    wall, cpu = [], []
    read: int | None = None
    gc.collect()
    for i in range(runs):
        if before is not None:
            before()  # not timed
        read_before = rchar()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = fn()
        wall.append(time.perf_counter() - wall0)
        cpu.append(time.process_time() - cpu0)
        after = rchar()
        del result
        if i == 0 and read_before is not None and after is not None:
            read = after - read_before
    if walls is not None:
        walls.extend(wall)
    return statistics.median(wall), statistics.median(cpu), read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=500.0,
                        help="checkpoint size: network weights + SGD momentum buffers (half each)")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plain", action="store_true",
                        help="read as an install without a C compiler does: plain restricted unpickling of data.pkl, "
                             "no compiled pass and no memo-index guard")
    args = parser.parse_args()
    if args.plain:
        checkpoint_runs._collapse = checkpoint_runs._memo_bound = None
    implementation = ("plain restricted unpickling" if checkpoint_runs._collapse is None
                      else "compiled pass (monitor/checkpoints/_scalar_runs.c)")

    t0 = time.perf_counter()
    import torch  # only the benchmark needs torch; the module under test never imports it

    torch_import_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="nnwatch-bench-") as tmp:
        path = Path(tmp) / "checkpoint_latest.pth"
        t0 = time.perf_counter()
        make_checkpoint(torch, path, args.size_mb, args.epochs, args.classes)
        size = path.stat().st_size
        print(f"wrote {path.name}: {size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")
        with open(path, "rb") as fh:  # warm the page cache: both readers then read from memory
            while fh.read(1 << 24):
                pass

        curves = read_checkpoint_curves(path)
        assert curves.epochs == args.epochs, curves
        reference = torch.load(path, weights_only=False)
        assert np.array_equal(curves.columns["mean_fg_dice"],
                              np.asarray(reference["logging"]["mean_fg_dice"], dtype=np.float64))
        del reference

        load_before = os.getloadavg()[0]
        fast_s, fast_cpu, fast_read = measure(lambda: read_checkpoint_curves(path), max(args.runs, 5) * 4)
        slow_walls: list[float] = []
        slow_s, slow_cpu, slow_read = measure(lambda: torch.load(path, weights_only=False), args.runs, slow_walls)
        fast2_s, fast2_cpu, _ = measure(lambda: read_checkpoint_curves(path), max(args.runs, 5) * 4)
        fast_s, fast_cpu = min(fast_s, fast2_s), min(fast_cpu, fast2_cpu)  # before and after torch.load
        load_after = os.getloadavg()[0]
        drop = lambda: drop_cache(path)  # noqa: E731
        cold_fast = measure(lambda: read_checkpoint_curves(path), max(args.runs, 5), before=drop)
        cold_slow_walls: list[float] = []
        cold_slow = measure(lambda: torch.load(path, weights_only=False), 3, cold_slow_walls, before=drop)

    def mib(n: int | None) -> str:
        return "n/a" if n is None else f"{n / 2**20:10.3f}"

    print(f"machine: {machine()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
          f" (torch import: {torch_import_s:.2f} s, not counted)")
    print(f"data.pkl read by: {implementation}")
    print(f"checkpoint: {size / 2**20:.1f} MiB, {args.epochs} epochs, {args.classes} classes;"
          " page cache warm for both readers")
    print(f"load average during the timings: {load_before:.1f} .. {load_after:.1f}"
          f" (on {os.cpu_count()} CPUs; above ~1 per CPU the wall times are inflated)")
    print()
    print(f"{'reader':40} {'wall ms':>9} {'CPU ms':>9} {'MiB read':>10}")
    print(f"{'torch.load(path, weights_only=False)':40} {slow_s * 1e3:9.1f} {slow_cpu * 1e3:9.1f} {mib(slow_read)}")
    print(f"{'read_checkpoint_curves(path)':40} {fast_s * 1e3:9.2f} {fast_cpu * 1e3:9.2f} {mib(fast_read)}")
    print(f"{'speed-up':40} {slow_s / fast_s:8.0f}x {slow_cpu / fast_cpu:8.0f}x")
    print(f"torch.load runs (ms): {', '.join(f'{w * 1e3:.0f}' for w in slow_walls)}")
    print()
    print("page cache cold (dropped for the file before every call)")
    print(f"{'torch.load(path, weights_only=False)':40} {cold_slow[0] * 1e3:9.1f} {cold_slow[1] * 1e3:9.1f}"
          f" {mib(cold_slow[2])}")
    print(f"{'read_checkpoint_curves(path)':40} {cold_fast[0] * 1e3:9.2f} {cold_fast[1] * 1e3:9.2f}"
          f" {mib(cold_fast[2])}")
    print(f"{'speed-up':40} {cold_slow[0] / cold_fast[0]:8.0f}x")
    print(f"torch.load runs (ms): {', '.join(f'{w * 1e3:.0f}' for w in cold_slow_walls)}")


if __name__ == "__main__":
    main()
