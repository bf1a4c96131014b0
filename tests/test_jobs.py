"""Background jobs: one leader at a time through a lease (the store's, or Redis's), and jobs
that run only while their process leads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from persona.clock import FakeClock
from persona.engine import Engine
from persona.jobs import Leadership, PeriodicJob
from persona.leases import Leases, RedisLeases
from tests.conftest import open_engine


@pytest.fixture(params=["store", "redis"])
def leases(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Leases]:
    if request.param == "store":
        yield engine.storage
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisLeases(client)
    client.close()


def test_one_process_leads_and_another_follows_once_the_lease_expires(leases: Leases) -> None:
    first = Leadership(leases, ttl_seconds=1.0)
    second = Leadership(leases, ttl_seconds=1.0)
    first.renew()
    second.renew()
    assert (first.held(), second.held()) == (True, False)
    first.renew()  # renewing keeps it
    assert first.held() and leases.lease_holders(["jobs", "other"]) == {"jobs": first.holder}
    time.sleep(1.1)  # the first stopped renewing (it died): its lease expires
    assert not first.held()  # it stops believing it leads before anyone else can take over
    second.renew()
    assert second.held()
    first.renew()
    assert not first.held()
    second.release()
    first.renew()
    assert first.held()


def test_with_redis_the_engine_keeps_its_leases_there(
    tmp_path: Path, redis_url: str, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", clock, redis_url=redis_url)
    try:
        assert isinstance(engine.leases, RedisLeases)
        leader = Leadership(engine.leases)
        leader.renew()
        assert leader.held()
        assert engine.storage.lease_holders(["jobs"]) == {}  # the store is not asked
        client = redis.Redis.from_url(redis_url)
        assert client.get("persona:lease:jobs") == leader.holder.encode()
        assert 0 < client.pttl("persona:lease:jobs") <= 10_000  # it expires with the lease
        client.close()
    finally:
        engine.close()


def test_a_process_that_cannot_reach_redis_stops_leading(tmp_path: Path, clock: FakeClock) -> None:
    unreachable = redis.Redis(port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    leader = Leadership(RedisLeases(unreachable), ttl_seconds=5.0)
    leader.renew()  # the error is logged, not raised
    assert not leader.held()


def test_a_leader_only_job_runs_while_its_process_leads() -> None:
    leading = threading.Event()
    runs: list[float] = []
    job = PeriodicJob("work", 0.01, lambda: runs.append(time.monotonic()), when=leading.is_set)
    job.start()
    try:
        time.sleep(0.2)
        assert runs == []  # not the leader: never ran
        leading.set()
        deadline = time.monotonic() + 5
        while len(runs) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        leading.clear()
        time.sleep(0.05)  # a run in progress may end
        count = len(runs)
        time.sleep(0.2)
        assert len(runs) == count  # no longer the leader: no more runs
    finally:
        job.stop()
