"""Background work inside `persona serve`: a job that runs every so many seconds.

Each domain says what one run does (``run_once``); this class owns the thread, the interval and
the rule that a failing run is logged and retried at the next tick, never fatal to the server.

Several server processes may share one store; the scheduled work (retraining, segment refresh,
retention, cluster reassignment) must run in one of them at a time. ``Leadership`` holds a
lease (``persona.leases``: the store's, or Redis's) and renews it; jobs marked ``leader_only``
run only while it is held.
When the holder dies, its lease expires and another process takes it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from persona.leases import Leases

log = logging.getLogger(__name__)


class PeriodicJob:
    """A daemon thread calling ``run_once`` every ``interval_seconds`` (0 or less: never);
    with ``when``, only at the ticks where ``when()`` is true (this process leads); with
    ``at_start``, also once as soon as it starts."""

    def __init__(
        self,
        name: str,
        interval_seconds: float,
        run_once: Callable[[], object],
        *,
        when: Callable[[], bool] | None = None,
        at_start: bool = False,
    ) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self.run_once = run_once
        self.when = when
        self.at_start = at_start
        self.counted: Callable[[str, bool], object] | None = None  # (name, ok) after each run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if self.interval_seconds > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self.at_start:
            self._tick()
        while not self._stop.wait(self.interval_seconds):
            self._tick()

    def _tick(self) -> None:
        if self.when is not None and not self.when():
            return
        ok = False
        try:
            self.run_once()
            ok = True
        except Exception:
            log.exception(
                "background job %s failed; it runs again in %ss", self.name, self.interval_seconds
            )
        if self.counted is not None:
            self.counted(self.name, ok)


def start_all(
    jobs: Iterable[PeriodicJob], counted: Callable[[str, bool], object] | None = None
) -> list[PeriodicJob]:
    """Start ``jobs``; ``counted`` hears each run's job name and whether it succeeded."""
    started = list(jobs)
    for job in started:
        job.counted = counted
        job.start()
    return started


def stop_all(jobs: Iterable[PeriodicJob]) -> None:
    for job in jobs:
        job.stop()


class Leadership:
    """Whether this process runs the leader-only jobs: it holds the lease ``name``.

    ``renew`` (a job of its own, every process) takes or renews the lease; ``held`` is true
    only while the last successful renewal is recent enough that the lease cannot have
    expired, so two processes never both believe they lead.
    """

    def __init__(self, leases: Leases, name: str = "jobs", ttl_seconds: float = 10.0) -> None:
        self._leases = leases
        self.name = name
        self.ttl_seconds = ttl_seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held_until = 0.0  # monotonic time until which the lease is surely ours

    def renew(self) -> None:
        started = time.monotonic()
        try:
            taken = self._leases.take_lease(self.name, self.holder, self.ttl_seconds)
        except Exception:
            log.exception("the jobs lease could not be renewed; this process stops leading")
            taken = False
        was = self.held()
        # A margin for clocks and the time the renewal took: stop believing a little early.
        self._held_until = started + self.ttl_seconds * 0.8 if taken else 0.0
        if taken and not was:
            log.info("this process (%s) now runs the background jobs", self.holder)

    def held(self) -> bool:
        return time.monotonic() < self._held_until

    def job(self) -> PeriodicJob:
        """The renewal, three times per lease lifetime."""
        return PeriodicJob(f"{self.name}-lease", self.ttl_seconds / 4, self.renew)

    def release(self) -> None:
        self._held_until = 0.0
        try:
            self._leases.release_lease(self.name, self.holder)
        except Exception:
            log.exception("the jobs lease could not be released; it expires on its own")
