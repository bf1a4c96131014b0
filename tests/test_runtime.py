"""The server and the commands collect cycles less often than the interpreter's default, and
the server gives the allocator's free memory back to the system."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from persona import runtime
from persona.api.app import background_jobs_of, create_app
from persona.engine import Engine
from persona.jobs import Leadership
from persona.runtime import YOUNG_GENERATION_THRESHOLD


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
