"""The server and the commands collect cycles less often than the interpreter's default (and
not at all inside an ingest batch), and the server gives the allocator's free memory back to
the system."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_info

from persona import runtime
from persona.api.app import background_jobs_of, create_app
from persona.engine import Engine
from persona.jobs import Leadership
from persona.runtime import YOUNG_GENERATION_THRESHOLD
from tests.conftest import NOW_MS


@pytest.fixture
def default_collector() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("default_collector")
def test_the_server_raises_the_young_threshold_at_start(engine: Engine) -> None:
    with TestClient(create_app(engine)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(runtime._malloc_trim is None, reason="the C library has no malloc_trim")
def test_trimming_gives_the_free_memory_a_thread_left_back_to_the_system() -> None:
    """What a pool thread frees stays in its arena until trimmed: here 200 MB allocated in
    blocks of 4 KB (past the interpreter's own small-object allocator), one in 64 kept so
    that no stretch of the arena is free at its top."""
    kept: list[bytes] = []

    def churn() -> None:
        blocks = [bytes(4096) for _ in range(50_000)]
        kept.extend(blocks[::64])

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    before = _resident_bytes()
    runtime.trim_heap()
    assert before - _resident_bytes() > 100 * 2**20
    assert len(kept) == 782


def test_every_server_process_trims_its_heap(engine: Engine) -> None:
    jobs = {job.name: job for job in background_jobs_of(engine, Leadership(engine.storage))}
    assert jobs["trim-heap"].interval_seconds == runtime.TRIM_SECONDS
    assert jobs["trim-heap"].when is None


@pytest.fixture
def collections_counted() -> Iterator[list[int]]:
    """The generation of every cyclic collection while the test runs, the collector made
    eager (a young pass every 10 allocations) so that any work that allocates triggers one."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    before = gc.get_threshold()
    gc.set_threshold(10, 10, 10)
    gc.callbacks.append(count)
    yield seen
    gc.callbacks.remove(count)
    gc.set_threshold(*before)


def test_no_collection_runs_while_paused_and_the_collector_resumes(
    collections_counted: list[int],
) -> None:
    with runtime.collector_paused():
        collections_counted.clear()
        assert not gc.isenabled()
        garbage = [[i] for i in range(10_000)]
        del garbage
        assert collections_counted == []
    assert gc.isenabled()
    _ = [[i] for i in range(1_000)]
    assert collections_counted != []


def test_overlapping_pauses_in_two_threads_resume_when_the_last_ends() -> None:
    """The first pause ends while the second is open: the collector stays off until the second
    ends (a pause that restored what it found on entry would leave it off: the second found it
    off)."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    enabled_after_first: list[bool] = []

    def first() -> None:
        with runtime.collector_paused():
            first_in.set()
            second_in.wait()
        enabled_after_first.append(gc.isenabled())
        first_out.set()

    def second() -> None:
        first_in.wait()
        with runtime.collector_paused():
            second_in.set()
            first_out.wait()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert enabled_after_first == [False]
    assert gc.isenabled()


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_runs_on_one_thread_inside_nested_blocks_and_gets_its_threads_back() -> None:
    """Checked from the main thread: OpenBLAS (0.3.31) ignores a thread count set from another
    thread once the main thread has set one, so a worker's view of it proves nothing. The
    blocks count their openings as the collector's pauses do (the test above)."""
    before = _blas_threads()
    if max(before) == 1:
        pytest.skip("BLAS runs on one thread already here: nothing to tell apart")
    with runtime.blas_single_threaded():
        with runtime.blas_single_threaded():
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_a_pause_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with runtime.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_ingest_batch_is_stored_with_the_collector_paused(engine: Engine) -> None:
    """Its objects die by reference counting when it is answered (``collector_paused``): the
    collector is off when the batch commits, and on again once it is answered."""
    at_commit: list[bool] = []
    engine.storage.add_commit_listener(lambda keys: at_commit.append(gc.isenabled()))
    events = [{"type": "view", "user_id": f"u{i % 40}", "item_id": f"i{i % 7}"} for i in range(400)]
    assert engine.ingest.ingest(events).accepted == 400
    table = pa.table(
        {
            "event_id": [f"t{i}" for i in range(len(events))],
            "type": [e["type"] for e in events],
            "user_id": [e["user_id"] for e in events],
            "item_id": [e["item_id"] for e in events],
            "timestamp": pa.array([NOW_MS] * len(events), pa.timestamp("ms", tz="UTC")),
        }
    )
    assert engine.ingest.ingest_table(table, source="import").accepted == 400
    assert at_commit == [False, False]
    assert gc.isenabled()
