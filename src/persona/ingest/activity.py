"""What came in and what was refused, over time: the reads behind the dashboard's overview and
data-quality pages (docs/ui.md). Nothing here writes.

Counts come from the store, so every server process and every import is in them. Events are
placed by their event time (``occurred_at_ms``, the column with an index): a late event or an
import of old data shows where it happened, not when it arrived. Quarantine entries are placed
by the time they were received.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from persona.storage.protocols import Storage
from persona.storage.records import QuarantineRecord

MAX_BUCKETS = 10_000  # a chart's points per line; a wider window needs wider buckets


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per label (an event type, a rejection code) in consecutive buckets of time.

    ``starts_ms`` holds every bucket of the window, empty ones included, so that each list of
    ``counts`` lines up with it."""

    bucket_ms: int
    starts_ms: list[int]
    counts: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.counts.values())


@dataclass(frozen=True, slots=True)
class RejectionCount:
    code: str
    entries: int  # quarantined with this code
    replayed: int  # of which sent back through ingest


@dataclass(frozen=True, slots=True)
class StoredTotals:
    events: int
    profiles: int
    quarantined: int


def series(
    rows: Iterable[tuple[int, str, int]], since_ms: int, until_ms: int, bucket_ms: int
) -> Series:
    """``(bucket start, label, count)`` rows as a ``Series`` over ``[since_ms, until_ms)``."""
    first = since_ms - since_ms % bucket_ms
    starts = list(range(first, until_ms, bucket_ms))
    slot = {start: n for n, start in enumerate(starts)}
    counts: dict[str, list[int]] = {}
    for start, label, count in rows:
        if start in slot:
            counts.setdefault(label, [0] * len(starts))[slot[start]] += count
    return Series(bucket_ms, starts, dict(sorted(counts.items())))


def _check_window(since_ms: int, until_ms: int, bucket_ms: int) -> None:
    if bucket_ms <= 0 or until_ms <= since_ms:
        raise ValueError("a window needs an end after its start and buckets of 1 ms or more")
    if (until_ms - since_ms) // bucket_ms > MAX_BUCKETS:
        raise ValueError(f"at most {MAX_BUCKETS} buckets in a window")


class IngestActivity:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def events_by_type(self, since_ms: int, until_ms: int, bucket_ms: int) -> Series:
        """Stored events per type and bucket of event time in ``[since_ms, until_ms)``."""
        _check_window(since_ms, until_ms, bucket_ms)
        start = since_ms - since_ms % bucket_ms
        with self._storage.read() as uow:
            rows = uow.events.type_counts(start, until_ms, bucket_ms)
        return series(rows, since_ms, until_ms, bucket_ms)

    def rejections_by_code(self, since_ms: int, until_ms: int, bucket_ms: int) -> Series:
        """Quarantine entries per rejection code and bucket of their receipt."""
        _check_window(since_ms, until_ms, bucket_ms)
        start = since_ms - since_ms % bucket_ms
        with self._storage.read() as uow:
            rows = uow.quarantine.code_counts_over_time(start, bucket_ms)
        return series(rows, since_ms, until_ms, bucket_ms)

    def rejection_totals(self) -> list[RejectionCount]:
        """Every rejection code in the quarantine, most entries first."""
        with self._storage.read() as uow:
            rows = uow.quarantine.code_counts()
        return [RejectionCount(code, entries, replayed) for code, entries, replayed in rows]

    def quarantined(
        self, *, after_id: int = 0, limit: int = 50, code: str | None = None
    ) -> list[QuarantineRecord]:
        """Quarantine entries by id, after ``after_id``."""
        with self._storage.read() as uow:
            return uow.quarantine.list(after_id=after_id, limit=limit, code=code)

    def totals(self) -> StoredTotals:
        """How many events, profiles and quarantine entries the store holds. Each is a count
        over a whole table: a second or more on a store of a hundred million events."""
        with self._storage.read() as uow:
            return StoredTotals(uow.events.count(), uow.profiles.count(), uow.quarantine.count())
