"""Which GPUs this machine has and which one a local job should use.

Labs share multi-GPU workstations, so the default is the GPU with the most free memory right now. NVML
(``nvidia-ml-py``, imported lazily) answers without a subprocess; without it ``nvidia-smi`` is asked and
its CSV is parsed by a pure function that tests can feed strings.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["NVIDIA_SMI_QUERY", "GpuInfo", "choose_gpu", "parse_nvidia_smi", "query_gpus"]

NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as ``CUDA_VISIBLE_DEVICES`` numbers it, with its free memory in MiB."""

    index: int
    free_mib: int


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Parse ``index, memory.free`` lines; lines that are not two integers (``[N/A]``, warnings) are skipped."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 2 or not all(part.isdigit() for part in parts):
            continue
        gpus.append(GpuInfo(index=int(parts[0]), free_mib=int(parts[1])))
    return gpus


def choose_gpu(gpus: list[GpuInfo]) -> int | None:
    """The index with the most free memory (the lowest index on a tie); ``None`` without GPUs."""
    if not gpus:
        return None
    return min(gpus, key=lambda gpu: (-gpu.free_mib, gpu.index)).index


def _query_nvml() -> list[GpuInfo] | None:
    try:
        import pynvml  # type: ignore[import-not-found]  # optional: nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVML present but no driver: same as no GPU
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            memory = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
            gpus.append(GpuInfo(index=index, free_mib=int(memory.free) // (1024 * 1024)))
        return gpus
    finally:
        pynvml.nvmlShutdown()


def query_gpus() -> list[GpuInfo]:
    """The GPUs of this machine; an empty list when there is no driver or no GPU."""
    gpus = _query_nvml()
    if gpus is not None:
        return gpus
    if shutil.which(NVIDIA_SMI_QUERY[0]) is None:
        return []
    try:
        completed = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(completed.stdout) if completed.returncode == 0 else []
