"""Process-wide settings of the interpreter for long-running work (the server, bulk imports)."""

from __future__ import annotations

import gc

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
