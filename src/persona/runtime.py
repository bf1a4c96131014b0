"""Process-wide settings of the interpreter for long-running work (the server, bulk imports)."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from functools import cache

from threadpoolctl import ThreadpoolController

from persona import libc

# CPython collects its youngest generation of containers after every 700 net allocations. An
# ingest batch of 1000 events makes thousands of objects (a few per event) that live until the
# batch is answered, so with that threshold each of them is traversed by the young pass,
# promoted, and traversed again by the middle one, for nothing: reference counting frees them
# all afterwards.
# A pass every 50,000 allocations traverses one batch's objects at most once, and lets at most
# a few megabytes of cyclic garbage wait for it. BENCHMARKS.md has the measured difference.
YOUNG_GENERATION_THRESHOLD = 50_000
OLDER_GENERATION_THRESHOLD = 20


def tune_collector() -> None:
    """Collect cycles less often: batch work allocates in bursts that die together."""
    gc.set_threshold(
        YOUNG_GENERATION_THRESHOLD, OLDER_GENERATION_THRESHOLD, OLDER_GENERATION_THRESHOLD
    )


def settle_heap() -> None:
    """After start-up: keep what it built (models, catalog, caches' scaffolding, which live as
    long as the process) out of the collector's full passes, which otherwise stall requests;
    and collect less often from now on."""
    gc.freeze()
    tune_collector()


class _WhileAnyBlockIsOpen:
    """A process-wide setting held while any block that asks for it is open, in any thread: made
    when the first block opens, undone when the last one closes. (A setting each block made and
    undid itself would be undone under the other blocks' feet, or left behind: two overlapping
    blocks that each restore what they found leave the setting of the inner one.)"""

    def __init__(self, make: Callable[[], Callable[[], None]]) -> None:
        self._make = make  # makes the setting, returns how to undo it
        self._lock = threading.Lock()
        self._open = 0
        self._undo: Callable[[], None] | None = None

    @contextmanager
    def block(self) -> Iterator[None]:
        with self._lock:
            if self._open == 0:
                self._undo = self._make()
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                if self._open == 0 and self._undo is not None:
                    self._undo()
                    self._undo = None


def _pause_collector() -> Callable[[], None]:
    was_enabled = gc.isenabled()
    gc.disable()
    return gc.enable if was_enabled else lambda: None


_collector_pauses = _WhileAnyBlockIsOpen(_pause_collector)


def collector_paused() -> AbstractContextManager[None]:
    """No cyclic collection inside the block: for a batch whose objects live together until it
    ends and die by reference counting (an ingest batch: its events, and the states of the
    profiles it changes).

    Even at ``YOUNG_GENERATION_THRESHOLD``, a bulk import's batch of 50,000 events keeps
    millions of containers alive at once (15,000 profile states, their lists of recent items
    and sessions), so the young pass ran 46 times a batch, each promoting what it traversed
    into a middle generation traversed again: 9 s of a 41 s import of a million events into a
    10M store, for about 300 objects of cyclic garbage a batch. The collector resumes when the
    last open block ends (blocks may overlap across threads), and its counts then hold only
    what the batch left alive, so the first pass after it is short."""
    return _collector_pauses.block()


@cache
def _blas_libraries() -> ThreadpoolController:
    # Finding the loaded BLAS libraries scans the process's shared objects (milliseconds):
    # once, not on every scored request.
    return ThreadpoolController()


def _one_blas_thread() -> Callable[[], None]:
    limiter = _blas_libraries().limit(limits=1, user_api="blas")
    return lambda: limiter.restore_original_limits()


_blas_single_threaded = _WhileAnyBlockIsOpen(_one_blas_thread)


def blas_single_threaded() -> AbstractContextManager[None]:
    """BLAS on one thread inside the block, for code that parallelizes itself (implicit's ALS),
    whose own threads would otherwise fight BLAS's for the cores. Blocks may overlap across
    threads (the batch ranking scores on a thread per core): BLAS gets its threads back when
    the last one ends. (OpenBLAS 0.3.31 ignores a count set from a thread other than the main
    one once the main thread has set one: there, only the main thread's blocks limit it.)"""
    return _blas_single_threaded.block()


@contextmanager
def scoring_threads(name: str, threads: int | None = None) -> Iterator[ThreadPoolExecutor]:
    """``threads`` threads (default: one per core) for blocks of scoring (the batch ranking,
    the ranker's examples), with BLAS on one thread while it is open: the blocks are the
    parallelism.

    The limit is set here, by the thread that opens the pool, not by each block on its own
    thread: once the main thread has set a limit (a training's fit does), OpenBLAS ignores
    those the other threads set, and each block's BLAS calls would take both cores with
    threads of their own. Measured on the 10M shop: a batch ranking of 20,000 people after a
    fit, 8.6 to 9.0 s and 16.6 to 17.3 s of processor, against 6.7 s and 11.9 s in this pool."""
    with blas_single_threaded(), ThreadPoolExecutor(threads or os.cpu_count(), name) as pool:
        yield pool


# How often a server hands the allocator's free memory back to the system (``trim_heap``).
TRIM_SECONDS = 30.0


# glibc's; None elsewhere (musl, macOS), where there is nothing to trim.
_malloc_trim = libc.function("malloc_trim", ctypes.c_size_t)


def trim_heap() -> None:
    """Give the pages of memory the allocator holds free back to the system.

    glibc keeps an arena per thread it saw allocate (up to 8 per core) and returns little of
    what is freed inside them. A server's requests run on a pool of threads, each allocating
    and freeing answers, rows and batches across arenas, so the free space held grows for as
    long as the load lasts: measured over 10 minutes of mixed load, the memory in use stayed
    at 175 to 195 MB while the free memory held in 16 arenas grew from 128 to 328 MB.
    ``malloc_trim`` releases every arena's free pages (a few milliseconds)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
