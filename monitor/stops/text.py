"""Stop causes in text: a job's console output, a scheduler output file or the tail of a training log.

Pure functions on strings, so every class is tested on real output kept as fixtures. The rules, in order:
the scheduler's own ``slurmstepd`` lines (time limit, preemption, cancellation, OOM kill), then the Python
tracebacks. When nnU-Net reports that its data-augmentation workers died, the exception printed *above*
that line is the real error: it is quoted, and it decides the cause when it is a known kind.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.stops.causes import StopCause, StopDiagnosis, Strength

__all__ = ["ExceptionBlock", "classify_text", "exception_blocks", "last_lines"]

_MAX_LINE = 300
WORKERS_DIED = "background workers are no longer alive"
_SLURM_LINE = re.compile(r"^(?:slurmstepd\S*: )?(?:error: )?\*\*\* (?:JOB|STEP) [\d.]+ ON \S+ CANCELLED AT \S+"
                         r"(?P<rest>.*?)\*\*\*", re.M)
_OOM_KILL = re.compile(r"oom[-_ ]kill|Out of memory: Killed? process|Killed process \d+|"
                       r"memory cgroup out of memory|^Killed\s*$", re.M | re.I)
_EXCEPTION_LINE = re.compile(r"^(?P<name>[A-Za-z_][\w.]*?(?:Error|Exception|Interrupt|Exit|error|Warning)|"
                             r"StopIteration|[\w.]*BadZipFile)(?::\s?(?P<message>.*))?$")
_WORKER_HEADER = re.compile(r"^Exception in background worker (\d+):\s*$")
_CUDA_OOM = re.compile(r"OutOfMemoryError|CUDA out of memory|CUDA error: out of memory|"
                       r"cuda runtime error.*out of memory|CUBLAS_STATUS_ALLOC_FAILED", re.I)
_DISK_FULL = re.compile(r"No space left on device|Disk quota exceeded|\[Errno 28\]|\[Errno 122\]")
_HOST_OOM_EXC = re.compile(r"^MemoryError\b|Unable to allocate [\d.]+ \w+ for an array|"
                           r"DefaultCPUAllocator: (?:can't|not enough memory)", re.M)
#: Reading a preprocessed case failed: truncated or damaged files (#1879, #2277, #1797) or missing ones (#2626).
_DATA_EXC = re.compile(
    r"^(?:EOFError|_pickle\.UnpicklingError|pickle\.UnpicklingError|zipfile\.BadZipFile|zlib\.error|"
    r"BadZipFile)\b|No data left in file|Ran out of input|cannot reshape array of size|Failed to interpret file|"
    r"not a zip file|invalid load key|[Bb]losc2?\b.*(?:error|fail)|Error while decompressing|"
    r"could not decompress|is not a valid b2nd|truncated|blosc2\w*\(.*\) returned NULL", re.M)
#: What a worker prints when the process feeding it is gone: a consequence of that process's death, not a cause.
_PARENT_GONE = re.compile(r"^(?:ConnectionResetError|BrokenPipeError|ConnectionAbortedError)\b")
_DATA_FRAMES = re.compile(r"nnunetv2/training/dataloading|nnunet/training/dataloading|numpy/lib/(?:_)?npyio|"
                          r"numpy/lib/format|blosc2|nnUNet_preprocessed|\.npz|\.npy|\.b2nd|\.pkl")


@dataclass(frozen=True)
class ExceptionBlock:
    """One exception in the output: its lines (traceback or worker message), where it starts, its last line."""

    start: int  # index of its first line in the text's lines
    lines: tuple[str, ...]
    last: str  # "ExceptionName: message"
    name: str

    @property
    def workers_died(self) -> bool:
        return WORKERS_DIED in self.last

    def excerpt(self, max_lines: int = 6) -> str:
        """The exception line with the frames just above it: where it happened and what it was."""
        body = [line for line in self.lines if line.strip().strip("^~")]  # no blank or caret-only lines
        return "\n".join(_clip(line) for line in body[-max_lines:])


def _clip(line: str) -> str:
    line = line.rstrip()
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def last_lines(text: str, n: int = 8) -> str:
    """The last ``n`` non-empty lines (clipped), for evidence where nothing more specific was found."""
    lines: list[str] = []
    for line in reversed(text.splitlines()):
        if len(lines) == n:
            break
        if line.strip():
            lines.append(_clip(line))
    return "\n".join(reversed(lines))


def exception_blocks(lines: Sequence[str]) -> list[ExceptionBlock]:
    """Every traceback (``Traceback (most recent call last):`` … exception line) and every batchgenerators
    worker message (``Exception in background worker N:`` and the message under it), in order."""
    blocks: list[ExceptionBlock] = []
    if not any("Traceback (most recent" in line or line.startswith("Exception in background") for line in lines):
        return blocks
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("Traceback (most recent call last):") or _WORKER_HEADER.match(line):
            start = i
            worker = bool(_WORKER_HEADER.match(line))
            j = i + 1
            found = None
            while j < len(lines) and j - start < 400:
                candidate = lines[j].rstrip()
                if j > start + 1 and candidate.startswith("Traceback (most recent call last):"):
                    break
                match = _EXCEPTION_LINE.match(candidate)
                if match and not candidate.startswith(" "):
                    found = j
                    break
                if worker and j == start + 1 and candidate.strip():
                    found = j  # the worker's message line: " <message>"
                    break
                j += 1
            if found is None:
                i += 1
                continue
            last = lines[found].strip()
            match = _EXCEPTION_LINE.match(last)
            name = match.group("name") if match else "Exception"
            blocks.append(ExceptionBlock(start, tuple(lines[start: found + 1]), last, name))
            i = found + 1
            continue
        i += 1
    return blocks


def _classify_exception(block: ExceptionBlock) -> StopCause:
    text = "\n".join(block.lines)
    if _CUDA_OOM.search(block.last):
        return StopCause.CUDA_OOM
    if _DISK_FULL.search(block.last):
        return StopCause.DISK_FULL
    if _HOST_OOM_EXC.search(block.last):
        return StopCause.HOST_OOM
    if _DATA_EXC.search(block.last) or (
        block.name in ("FileNotFoundError", "OSError", "ValueError", "KeyError", "RuntimeError")
        and _DATA_FRAMES.search(text) and "preprocessed" in text.lower() + block.last.lower()
    ):
        return StopCause.DATA_MISSING_OR_CORRUPT
    if block.name == "KeyboardInterrupt":
        return StopCause.CANCELLED
    if block.workers_died:
        return StopCause.WORKERS_DIED
    return StopCause.EXCEPTION


def _scheduler_line(text: str, source: str) -> StopDiagnosis | None:
    if "***" not in text:
        return None
    matches = list(_SLURM_LINE.finditer(text))
    if not matches:
        return None
    match = matches[-1]  # the last one counts
    line = _clip(match.group(0))
    rest = match.group("rest").upper()
    if "TIME LIMIT" in rest:
        cause, summary = StopCause.TIME_LIMIT, "the scheduler stopped the job at its time limit"
    elif "PREEMPT" in rest or "NODE FAIL" in rest:
        cause, summary = StopCause.PREEMPTED_OR_NODE_FAILURE, "the scheduler preempted the job or its node failed"
    else:
        cause, summary = StopCause.CANCELLED, "the job was cancelled in the scheduler"
    return StopDiagnosis(cause, line, source, Strength.STRONG, summary)


def _summary(cause: StopCause, block: ExceptionBlock) -> str:
    return f"{cause.label}: {_clip(block.last)[:200]}"


def classify_text(text: str, source: str, strength: Strength = Strength.STRONG, *,
                  signalled: bool = False) -> StopDiagnosis | None:
    """The cause that ``text`` (console output or a log's tail) shows, or None when it shows none.

    ``strength`` is that of the source: a job's own output is strong; a training log's tail is medium.
    ``signalled``: the process was ended by a signal, so a worker's broken connection to it printed afterwards
    is a consequence of the kill and is no cause.
    """
    if not text.strip():
        return None
    lowered = text.lower()
    scheduler = _scheduler_line(text, source)
    if scheduler is not None:
        return scheduler
    lines = text.splitlines()
    blocks = exception_blocks(lines)
    if signalled:
        blocks = [block for block in blocks if not _PARENT_GONE.match(block.last)]
    died = next((b for b in blocks if b.workers_died), None)
    died_at = died.start if died is not None else next(
        (i for i, line in enumerate(lines) if WORKERS_DIED in line), None)
    oom = _OOM_KILL.search(text) if "kill" in lowered or "out of memory" in lowered else None
    if died_at is not None:
        real = [b for b in blocks if b.start < died_at and not b.workers_died]
        died_line = _clip(died.last if died is not None else lines[died_at].strip())
        if real:
            kinds = [(_classify_exception(block), block) for block in real]
            cause, block = next(((c, b) for c, b in kinds if c not in (StopCause.EXCEPTION, StopCause.WORKERS_DIED)),
                                (StopCause.WORKERS_DIED, real[0]))
            shown = [real[0].excerpt(3)]
            named = block
            if block is not real[0]:
                shown.append(block.excerpt(3))
            elif len(real) > 1:
                named = real[1]  # the worker's own traceback, under its message: its last line names the error
                shown.append(named.excerpt(2))
            evidence = "\n…\n".join([*shown, died_line])
            return StopDiagnosis(cause, evidence, source, strength, _summary(cause, named),
                                 notes=("nnU-Net's data-augmentation workers died because of the exception above",))
        if oom:
            return StopDiagnosis(StopCause.HOST_OOM, f"{_clip(oom.group(0))}\n…\n{died_line}", source, strength,
                                 "a data-augmentation worker was killed for lack of memory")
        return StopDiagnosis(StopCause.WORKERS_DIED, died_line, source, strength,
                             f"{StopCause.WORKERS_DIED.label}, with no exception printed above (a worker "
                             "killed from outside, often for lack of RAM)")
    if blocks:
        block = blocks[-1]
        cause = _classify_exception(block)
        return StopDiagnosis(cause, block.excerpt(), source, strength, _summary(cause, block))
    if oom:
        return StopDiagnosis(StopCause.HOST_OOM, last_lines(text[: oom.end()], 4), source, strength,
                             "killed by the out-of-memory killer")
    for pattern, cause, hints in ((_CUDA_OOM, StopCause.CUDA_OOM, ("memory", "cublas")),
                                  (_DISK_FULL, StopCause.DISK_FULL, ("space left", "quota", "errno 28", "errno 122"))):
        found = pattern.search(text) if any(hint in lowered for hint in hints) else None
        if found:
            line_start = text.rfind("\n", 0, found.start()) + 1
            line_end = text.find("\n", found.end())
            line = _clip(text[line_start: line_end if line_end >= 0 else len(text)].strip())
            return StopDiagnosis(cause, line, source, strength, f"{cause.label}: {line[:200]}")
    return None
