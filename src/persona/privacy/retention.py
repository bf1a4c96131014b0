"""Retention: events of a type older than its configured age are deleted.

Profiles fold each event when it arrives, so their counts, affinities and RFM already hold what
the deleted events contributed: deleting the raw events does not change any profile. Models
retrained later no longer see them. Deleting by a cutoff is idempotent: a second run at the same
time finds nothing older than the cutoff left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from persona.clock import Clock
from persona.jobs import PeriodicJob
from persona.privacy.audit import AuditLog
from persona.storage.protocols import Storage

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass(slots=True)
class RetentionReport:
    now_ms: int
    deleted: dict[str, int] = field(default_factory=dict)  # per event type

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class RetentionService:
    def __init__(
        self, storage: Storage, clock: Clock, audit: AuditLog, days: Mapping[str, float]
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._audit = audit
        self.days = dict(days)

    def run(self, *, actor: str = "retention") -> RetentionReport:
        report = RetentionReport(self._clock.now_ms())
        if not self.days:
            return report
        with self._storage.write() as uow:
            for kind, days in sorted(self.days.items()):
                cutoff = report.now_ms - round(days * DAY_MS)
                report.deleted[kind] = uow.subjects.delete_events_before(kind, cutoff)
            if report.total:
                self._audit.write(uow, actor, "retention.run", "events", report.deleted)
        return report


def retention_job(service: RetentionService, interval_seconds: float) -> PeriodicJob:
    def run_once() -> None:
        report = service.run()
        if report.total:
            log.info("retention deleted events (per type): %s", report.deleted)

    return PeriodicJob("retention", interval_seconds, run_once)
