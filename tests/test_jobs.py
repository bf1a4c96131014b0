"""Background jobs: one leader at a time through the store's lease, and jobs that run only
while their process leads."""

from __future__ import annotations

import threading
import time

from persona.engine import Engine
from persona.jobs import Leadership, PeriodicJob


def test_one_process_leads_and_another_follows_once_the_lease_expires(engine: Engine) -> None:
    first = Leadership(engine.storage, ttl_seconds=1.0)
    second = Leadership(engine.storage, ttl_seconds=1.0)
    first.renew()
    second.renew()
    assert (first.held(), second.held()) == (True, False)
    first.renew()  # renewing keeps it
    assert first.held() and engine.storage.lease_holders(["jobs"]) == {"jobs": first.holder}
    time.sleep(1.1)  # the first stopped renewing (it died): its lease expires
    assert not first.held()  # it stops believing it leads before anyone else can take over
    second.renew()
    assert second.held()
    first.renew()
    assert not first.held()
    second.release()
    first.renew()
    assert first.held()


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
