"""Answers kept in memory until the person they belong to changes.

Recommendations (milliseconds of numpy and LightGBM work) and profile reads (a transaction and
a view) are asked for again and again while nothing changes. An answer is reused until the
first of:

- a commit changes one of the people it belongs to (``invalidate`` with their profile keys,
  called after the commit), so the next answer reflects what they just did;
- something that may change every answer happens (``clear``: a new model set, a catalog
  change, a write whose people are not known);
- its lifetime passes: a random share between half of ``ttl_seconds`` and all of it, which
  bounds how stale time-dependent signals (trending, the hour of day) and other processes'
  writes can make an answer (random, so that answers stored together, after a restart say,
  are not all recomputed in the same instant);
- it is the least recently used entry and room is needed: the cache holds at most
  ``max_entries`` answers and, when answers are weighed, at most ``max_bytes`` of them (an
  estimate of their memory by the caller's ``weigh``);
- it is past its lifetime and grace and nobody asked for it: each ``put`` sweeps a few of the
  least recently used, so answers nobody asks for again do not stay.

A caller may also take an answer whose lifetime has passed (``get_aged``) and serve it while it
computes a new one, for at most one more lifetime; the people's commits still drop it at once.

An answer computed from data read before an invalidation of its person must not be stored
after it. Each computation takes a ticket before it reads anything, and ``put`` refuses it
when one of the person's keys was invalidated (or everything cleared) after the ticket.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

V = TypeVar("V")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    profile_keys: tuple[str, ...]
    expires_at: float
    weight: int


# A change to more people than this (a bulk import's batch touches tens of thousands) empties
# the cache instead of looking up each of them: dropping everything is always correct.
BULK_INVALIDATION = 4096
SWEEP_PER_PUT = 4  # expired entries looked at (and dropped) from the old end on each put


class AnswerCache(Generic[V]):
    """A thread-safe LRU of answers per request, dropped by the people they belong to."""

    def __init__(
        self,
        max_entries: int = 50_000,
        ttl_seconds: float = 60.0,
        now: Callable[[], float] = time.monotonic,
        uniform: Callable[[], float] = random.random,
        *,
        max_bytes: int | None = None,
        weigh: Callable[[Any, V], int] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        self._weigh = weigh
        self.bytes = 0  # the weights of the answers held
        self._now = now
        self._uniform = uniform
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._by_profile: dict[str, set[Hashable]] = {}
        self._sequence = 0  # tickets and invalidations share one counter
        self._invalidated_at: dict[str, int] = {}
        self._floor = 0  # tickets older than this are refused (the map above was trimmed)

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def sizes(self) -> dict[str, int]:
        """Entries of each in-memory table: answers, the profile keys they belong to, and the
        people invalidated recently (kept to refuse answers computed before)."""
        return {
            "answers": len(self._entries),
            "profile_keys": len(self._by_profile),
            "invalidated": len(self._invalidated_at),
        }

    def ticket(self) -> int:
        """Take before reading anything the answer depends on."""
        with self._lock:
            self._sequence += 1
            return self._sequence

    def get(self, key: Hashable) -> V | None:
        found = self._lookup(key, grace_seconds=0.0)
        return None if found is None else found[0]

    def get_aged(self, key: Hashable) -> tuple[V, bool] | None:
        """The answer and whether its lifetime has passed (it is kept: the caller serves it
        while computing a new one); None once it is older than two lifetimes, or gone."""
        return self._lookup(key, grace_seconds=self.ttl_seconds)

    def _lookup(self, key: Hashable, grace_seconds: float) -> tuple[V, bool] | None:
        """The answer and whether it aged; dropped once older than its lifetime plus grace."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            now = self._now()
            if now >= entry.expires_at + grace_seconds:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry.value, now >= entry.expires_at

    def put(self, key: Hashable, profile_keys: Collection[str], ticket: int, value: V) -> bool:
        """Keep ``value`` unless one of ``profile_keys`` was invalidated after ``ticket``."""
        if not self.enabled:
            return False
        with self._lock:
            if ticket <= self._floor:
                return False
            if any(self._invalidated_at.get(k, 0) >= ticket for k in profile_keys):
                return False
            if key in self._entries:
                self._drop(key)
            weight = self._weigh(key, value) if self._weigh is not None else 0
            if self.max_bytes is not None and weight > self.max_bytes:
                return False
            now = self._now()
            lifetime = self.ttl_seconds * (1.0 - 0.5 * self._uniform())
            self._entries[key] = _Entry(value, tuple(profile_keys), now + lifetime, weight)
            self.bytes += weight
            for profile_key in profile_keys:
                self._by_profile.setdefault(profile_key, set()).add(key)
            while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self.bytes > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))
            self._sweep(now)
            return True

    def _sweep(self, now: float) -> None:
        """Drop expired answers (past lifetime and grace) from the least recently used end."""
        for _ in range(SWEEP_PER_PUT):
            oldest = next(iter(self._entries), None)
            if oldest is None:
                return
            if now < self._entries[oldest].expires_at + self.ttl_seconds:
                return
            self._drop(oldest)

    def invalidate(self, profile_keys: Collection[str]) -> None:
        """Drop the answers of these people, and refuse answers computed before this call."""
        if not profile_keys:
            return
        if len(profile_keys) > BULK_INVALIDATION:
            self.clear()  # as correct, and it costs nothing per person
            return
        with self._lock:
            self._sequence += 1
            for profile_key in profile_keys:
                self._invalidated_at[profile_key] = self._sequence
                for key in list(self._by_profile.get(profile_key, ())):
                    self._drop(key)
            if len(self._invalidated_at) > 4 * max(self.max_entries, 1024):
                # Forget who was invalidated when; refuse every ticket taken before now instead.
                self._invalidated_at.clear()
                self._floor = self._sequence

    def clear(self) -> None:
        """Drop everything, and refuse answers computed before this call."""
        with self._lock:
            self._sequence += 1
            self._entries.clear()
            self._by_profile.clear()
            self._invalidated_at.clear()
            self._floor = self._sequence
            self.bytes = 0

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.bytes -= entry.weight
        for profile_key in entry.profile_keys:
            keys = self._by_profile.get(profile_key)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_profile[profile_key]


REFRESH_AHEAD = 0.5  # share of a value's lifetime after which a use reads it again aside


class Refreshed(Generic[T]):
    """A value many requests use and few writes change, read again once it is
    ``max_age_seconds`` old or was forgotten, not at every use (unavailable items, popular
    items, what is trending per context or per segment).

    A use past half its lifetime still gets the value and starts a read on a thread of its
    own, so under steady use no request waits for one (a scan of a large catalog, once a
    second, stalled every request behind it); a value past its whole lifetime, or forgotten,
    is read by the use itself. One thread reads at a time while the others wait for its value.
    A value read before a ``forget`` is returned to its reader but not kept: the next use reads
    again.
    """

    def __init__(
        self,
        read: Callable[[], T],
        max_age_seconds: float,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age_seconds = max_age_seconds
        self._now = now
        self._lock = threading.Lock()
        self._entry: tuple[float, T] | None = None  # (read at, value)
        self._generation = 0
        self._reading_aside = False

    def get(self) -> T:
        entry = self._entry
        if entry is not None:
            age = self._now() - entry[0]
            if age < self.max_age_seconds:
                if age > REFRESH_AHEAD * self.max_age_seconds:
                    self._read_aside()
                return entry[1]
        return self._read_if_old(self.max_age_seconds)

    def _read_if_old(self, max_age: float) -> T:
        with self._lock:
            entry = self._entry
            if entry is not None and self._now() - entry[0] < max_age:
                return entry[1]
            generation = self._generation
            started = self._now()
            value = self._read()
            if generation == self._generation:
                self._entry = (started, value)
            return value

    def _read_aside(self) -> None:
        if self._reading_aside:
            return
        self._reading_aside = True  # a second thread started by a race reads nothing new
        threading.Thread(target=self._aside, name="refresh", daemon=True).start()

    def _aside(self) -> None:
        try:
            self._read_if_old(REFRESH_AHEAD * self.max_age_seconds)
        except Exception:
            log.exception("reading a value again failed; the next use past its lifetime retries")
        finally:
            self._reading_aside = False

    def forget(self) -> None:
        """Read again at the next use (this process changed what the value comes from)."""
        self._generation += 1
        self._entry = None
