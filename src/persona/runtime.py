"""Process-wide settings of the interpreter for long-running work (the server, bulk imports)."""

from __future__ import annotations

import ctypes
import gc
import sys

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


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
MALLOC_ARENAS = 2


def limit_allocator_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let the C allocator keep at most ``arenas`` heaps (glibc; elsewhere nothing is done).

    glibc gives each thread that allocates while another does a heap of its own, up to eight
    a core, and what one heap frees serves only the threads allocating from it. A server's
    request, ranking and refresh threads allocate arrays of every size, and its memory kept
    growing: in the 10-minute soak of BENCHMARKS.md, +7.5% in the second five minutes, all of
    it heap, none of it in any cache; with two heaps +3.8%, and 260 MB less at the end.
    Returns whether the limit is set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
