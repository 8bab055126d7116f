"""Work on many runs in worker processes: one rule for how many workers, one for how runs are split into chunks,
and one pool, for every caller (the scan, the indexed scan, the watcher's first start, the batch reports); and
:func:`collector_paused` for work that builds many long-lived objects in this process.

Parsing is CPU-bound, so large trees are split across processes that return only what the caller keeps. The
caller picks the start method: a single-threaded command line may fork; a multi-threaded server must not (a
forked child inherits locks other threads held), so it asks for ``forkserver`` or ``spawn``. Workers started
that way re-import the parent's ``__main__`` unless told otherwise; a Streamlit app installs its script there,
and that script must not run again in every worker, so workers are started without it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from multiprocessing import spawn
from typing import TypeVar

__all__ = ["PARALLEL_THRESHOLD", "chunked", "collector_paused", "map_chunks", "parallel_method", "worker_count"]

#: Below this many runs the cost of starting workers outweighs parallel parsing.
PARALLEL_THRESHOLD = 24
_MAX_WORKERS = 8
_CHUNK_RUNS = 32  # at most about this many runs per chunk: progress moves often, stragglers stay short
#: Start methods a multi-threaded caller may use, best first.
_THREAD_SAFE = ("forkserver", "spawn")
_MAIN_KEYS = ("init_main_from_path", "init_main_from_name", "main_path")
_patch_lock = threading.Lock()
_starting = threading.local()
_stdlib_preparation_data = spawn.get_preparation_data

T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile. Building thousands of runs that all stay (a start from the run
    index) sets it off again and again, and each time it walks the growing heap and finds nothing to free."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def worker_count(workers: int | None = None) -> int:
    """``workers`` as asked (at least one), or one per CPU this process may run on, at most eight."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(workers, _MAX_WORKERS)
    return max(1, workers)


def chunked(items: Sequence[T], workers: int) -> list[list[T]]:
    """Interleaved chunks (long and short runs mix): a few per worker, and no more than about 32 items each."""
    if not items:
        return []
    n_chunks = min(len(items), max(workers * 4, math.ceil(len(items) / _CHUNK_RUNS)))
    return [list(items[i::n_chunks]) for i in range(n_chunks)]


def parallel_method(n_items: int, workers: int, start_method: str) -> str | None:
    """The start method to work on ``n_items`` runs with in ``workers`` processes, or None where one process does
    better (few runs, one worker) or must (``start_method`` is not available here; for ``forkserver``, neither
    it nor ``spawn``)."""
    if workers <= 1 or n_items < PARALLEL_THRESHOLD:
        return None
    available = multiprocessing.get_all_start_methods()
    candidates = _THREAD_SAFE[_THREAD_SAFE.index(start_method):] if start_method in _THREAD_SAFE else (start_method,)
    return next((method for method in candidates if method in available), None)


def map_chunks(function: Callable[..., R], chunks: list[list[T]], *, workers: int, start_method: str | None,
               args: tuple[object, ...] = ()) -> Iterator[tuple[int, R]]:
    """``(position, function(chunk, *args))`` for every chunk: in worker processes as they finish (the work is under
    way when this returns), or in this process, in order, where ``start_method`` is None.

    ``function`` must be a module-level function; with ``forkserver`` its module is imported once, in the
    server, before the workers fork from it. A worker that dies raises
    :class:`concurrent.futures.process.BrokenProcessPool` from the iterator; the chunks already yielded stand."""
    if start_method is None:
        return ((position, function(chunk, *args)) for position, chunk in enumerate(chunks))
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload([function.__module__])
    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(chunks))), mp_context=context)
    try:
        with _without_main(start_method != "fork"):  # workers start at submit (all of them, for fork at once)
            futures = {pool.submit(function, chunk, *args): position for position, chunk in enumerate(chunks)}
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return _results(pool, futures)


def _results(pool: ProcessPoolExecutor, futures: dict[Future[R], int]) -> Iterator[tuple[int, R]]:
    try:
        for future in as_completed(futures):
            position = futures.pop(future)  # the caller keeps a result only as long as it needs it
            yield position, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _without_main(needed: bool) -> Iterator[None]:
    """Workers this thread starts meanwhile are not told to import the parent's ``__main__``.

    The stdlib's preparation data names the parent's main script for every child started without fork, and
    the child runs it again (as ``__mp_main__``). Streamlit installs the app script as ``__main__`` at every
    rerun, from other threads, so swapping ``__main__`` cannot work; the preparation data is filtered instead,
    for this thread's starts only (other threads' children are prepared as usual)."""
    global _stdlib_preparation_data
    if not needed:
        yield
        return
    with _patch_lock:
        if spawn.get_preparation_data is not _preparation_data:
            _stdlib_preparation_data = spawn.get_preparation_data
            spawn.get_preparation_data = _preparation_data
    _starting.workers = True
    try:
        yield
    finally:
        _starting.workers = False


def _preparation_data(name: str) -> dict[str, object]:
    data: dict[str, object] = _stdlib_preparation_data(name)
    if getattr(_starting, "workers", False):
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data
