"""Time: as a dependency, so tests can hold it still or move it on, and the one vocabulary of
its units. persona keeps every instant as integer milliseconds since the Unix epoch, UTC
(``*_ms``); datetimes appear only at the edges (API documents, files)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
DAY_S = DAY_MS // SECOND_MS


def utc(ms: int) -> datetime:
    """The instant ``ms`` as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / SECOND_MS, UTC)


def utc_or_none(ms: int | None) -> datetime | None:
    return None if ms is None else utc(ms)


def epoch_ms(moment: datetime) -> int:
    """A datetime as milliseconds since the epoch; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * SECOND_MS)


def iso_z(ms: int) -> str:
    """The instant ``ms`` as pydantic writes a UTC datetime (``2026-12-05T03:25:36Z``)."""
    return utc(ms).isoformat().replace("+00:00", "Z")


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> None:
        self._now_ms += int(seconds * 1000)

    def set(self, now_ms: int) -> None:
        self._now_ms = now_ms
