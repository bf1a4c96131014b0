"""Background work inside `persona serve`: a job that runs every so many seconds.

Each domain says what one run does (``run_once``); this class owns the thread, the interval and
the rule that a failing run is logged and retried at the next tick, never fatal to the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)


class PeriodicJob:
    """A daemon thread calling ``run_once`` every ``interval_seconds`` (0 or less: never)."""

    def __init__(self, name: str, interval_seconds: float, run_once: Callable[[], None]) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self.run_once = run_once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if self.interval_seconds > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.run_once()
            except Exception:
                log.exception(
                    "background job %s failed; it runs again in %ss",
                    self.name,
                    self.interval_seconds,
                )


def start_all(jobs: Iterable[PeriodicJob]) -> list[PeriodicJob]:
    started = list(jobs)
    for job in started:
        job.start()
    return started


def stop_all(jobs: Iterable[PeriodicJob]) -> None:
    for job in jobs:
        job.stop()
