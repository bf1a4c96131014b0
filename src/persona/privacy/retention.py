"""Retention: events of a type older than its configured age are deleted.

Profiles fold each event when it arrives, so their counts, affinities and RFM already hold what
the deleted events contributed: deleting the raw events does not change any profile. Models
retrained later no longer see them. Deleting by a cutoff is idempotent: a second run at the same
time finds nothing older than the cutoff left. The event lake deletes the same events: each
cutoff is noted in it before the store commits, and applied to its files after.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field

from persona.clock import Clock
from persona.jobs import PeriodicJob
from persona.privacy.audit import AuditLog
from persona.storage.protocols import EventLake, Storage

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass(slots=True)
class RetentionReport:
    now_ms: int
    deleted: dict[str, int] = field(default_factory=dict)  # per event type
    lake_removed: int = 0  # rows the event lake removed (those the store had, copied there)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class RetentionService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        audit: AuditLog,
        days: Mapping[str, float],
        lake: EventLake | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._audit = audit
        self.days = dict(days)
        self._lake = lake

    def run(self, *, actor: str = "retention") -> RetentionReport:
        report = RetentionReport(self._clock.now_ms())
        if not self.days:
            return report
        deletions = nullcontext() if self._lake is None else self._lake.deleting()
        with deletions as lake, self._storage.write() as uow:
            for kind, days in sorted(self.days.items()):
                cutoff = report.now_ms - round(days * DAY_MS)
                if lake is not None:
                    lake.expire(kind, cutoff)
                report.deleted[kind] = uow.subjects.delete_events_before(kind, cutoff)
            if report.total:
                self._audit.write(uow, actor, "retention.run", "events", report.deleted)
        report.lake_removed = lake.removed if lake is not None else 0
        return report


def retention_job(service: RetentionService, interval_seconds: float) -> PeriodicJob:
    def run_once() -> None:
        report = service.run()
        if report.total:
            log.info("retention deleted events (per type): %s", report.deleted)

    return PeriodicJob("retention", interval_seconds, run_once)
