"""The behavioural aggregate of one profile, as a commutative fold over events.

This is persona's own logic, so it is hand-written: every field is defined so that folding the
same events in any order, or folding two halves and merging them, gives the same state. That is
what lets ingest update profiles incrementally while events arrive late, out of order, or under
an anonymous id that is merged into a known person later.

- counts, first/last seen, purchases and revenue: sums, minima and maxima;
  revenue is kept in integer micro-units so the sum is exact.
- category affinities: sum of weight * 2^((t - anchor) / half_life), anchored at the newest
  event; rescaling to a new anchor is a multiplication, so the result depends only on the set of
  events (up to floating-point rounding, around 1e-15 relative).
- recent items: the N distinct items with the greatest (event time, event id).
- last context: the context of the event with the greatest (event time, event id).
- sessions: the connected groups of event times no further apart than the gap.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MICROS = 1_000_000
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class AggregateRules:
    session_gap_ms: int = 30 * 60 * 1000
    half_life_ms: float = 30 * 24 * 3600 * 1000.0
    recent_limit: int = 20
    weights: Mapping[str, float] = field(default_factory=dict)
    purchase_types: frozenset[str] = frozenset({"purchase"})


class Foldable(Protocol):
    """What the aggregate reads from an event."""

    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at_ms(self) -> int: ...
    @property
    def item_id(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def context(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class FoldEvent:
    """The part of an event that the aggregate reads."""

    event_id: str
    type: str
    occurred_at_ms: int
    item_id: str | None = None
    value: float | None = None
    context: Mapping[str, Any] | None = None


@dataclass(slots=True)
class ProfileState:
    counts: dict[str, int] = field(default_factory=dict)
    event_count: int = 0
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    purchases: int = 0
    revenue_micros: int = 0
    last_purchase_ms: int | None = None
    affinity: dict[str, float] = field(default_factory=dict)
    affinity_anchor_ms: int | None = None
    recent: list[tuple[str, int, str]] = field(default_factory=list)
    last_context: dict[str, Any] | None = None
    last_context_key: tuple[int, str] | None = None
    sessions: list[tuple[int, int]] = field(default_factory=list)

    # -- folding ---------------------------------------------------------------------------
    def apply(self, event: Foldable, categories: Sequence[str], rules: AggregateRules) -> None:
        self.apply_many([(event, categories)], rules)

    def apply_many(
        self, events: Sequence[tuple[Foldable, Sequence[str]]], rules: AggregateRules
    ) -> None:
        """Fold events (each with its item's categories) in one pass; the same state as applying
        them one by one, in any order (affinities up to floating-point rounding)."""
        if not events:
            return
        counts = self.counts
        weights = rules.weights
        purchase_types = rules.purchase_types
        times: list[int] = []
        scored: list[tuple[int, float, Sequence[str]]] = []
        recent: list[tuple[str, int, str]] = []
        for event, categories in events:
            t = event.occurred_at_ms
            kind = event.type
            counts[kind] = counts.get(kind, 0) + 1
            times.append(t)
            if kind in purchase_types:
                self.purchases += 1
                if event.value is not None:
                    self.revenue_micros += round(event.value * MICROS)
                if self.last_purchase_ms is None or t > self.last_purchase_ms:
                    self.last_purchase_ms = t
            weight = weights.get(kind, 0.0)
            if categories and weight:
                distinct = categories if len(categories) == 1 else tuple(dict.fromkeys(categories))
                scored.append((t, weight / len(categories), distinct))
            if event.item_id is not None:
                recent.append((event.item_id, t, event.event_id))
            if event.context:
                key = (t, event.event_id)
                if self.last_context_key is None or key > self.last_context_key:
                    self.last_context_key = key
                    self.last_context = dict(event.context)
        self.event_count += len(events)
        earliest, latest = min(times), max(times)
        if self.first_seen_ms is None or earliest < self.first_seen_ms:
            self.first_seen_ms = earliest
        if self.last_seen_ms is None or latest > self.last_seen_ms:
            self.last_seen_ms = latest
        if scored:
            self._add_scored(scored, rules.half_life_ms)
        if recent:
            self._merge_recent(recent, rules.recent_limit)
        self._add_times(times, rules.session_gap_ms)

    def merge(self, other: ProfileState, rules: AggregateRules) -> None:
        """Fold ``other`` into this state, as if its events had been applied here."""
        for name, count in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        self.event_count += other.event_count
        self.first_seen_ms = _min(self.first_seen_ms, other.first_seen_ms)
        self.last_seen_ms = _max(self.last_seen_ms, other.last_seen_ms)
        self.purchases += other.purchases
        self.revenue_micros += other.revenue_micros
        self.last_purchase_ms = _max(self.last_purchase_ms, other.last_purchase_ms)
        if other.affinity_anchor_ms is not None:
            self._add_affinity(other.affinity, other.affinity_anchor_ms, rules)
        self._merge_recent(other.recent, rules.recent_limit)
        if other.last_context_key is not None and (
            self.last_context_key is None or other.last_context_key > self.last_context_key
        ):
            self.last_context_key = other.last_context_key
            self.last_context = other.last_context
        for start, end in other.sessions:
            self._add_session(start, end, rules.session_gap_ms)

    def _add_affinity(self, scores: Mapping[str, float], at_ms: int, rules: AggregateRules) -> None:
        anchor = self.affinity_anchor_ms
        if anchor is None or at_ms > anchor:
            if anchor is not None:
                factor = 2.0 ** ((anchor - at_ms) / rules.half_life_ms)
                for name in self.affinity:
                    self.affinity[name] *= factor
            self.affinity_anchor_ms = at_ms
            scale = 1.0
        else:
            scale = 2.0 ** ((at_ms - anchor) / rules.half_life_ms)
        for name, score in scores.items():
            self.affinity[name] = self.affinity.get(name, 0.0) + score * scale

    def _add_scored(
        self, scored: Sequence[tuple[int, float, Sequence[str]]], half_life_ms: float
    ) -> None:
        """Add (time, share, categories) contributions, anchored at the newest time seen."""
        newest = max(t for t, _, _ in scored)
        anchor = self.affinity_anchor_ms
        affinity = self.affinity
        if anchor is None or newest > anchor:
            if anchor is not None:
                factor = 2.0 ** ((anchor - newest) / half_life_ms)
                for name in affinity:
                    affinity[name] *= factor
            self.affinity_anchor_ms = anchor = newest
        for t, share, names in scored:
            amount = share * 2.0 ** ((t - anchor) / half_life_ms)
            for name in names:
                affinity[name] = affinity.get(name, 0.0) + amount

    def _merge_recent(self, entries: Sequence[tuple[str, int, str]], limit: int) -> None:
        best = {item: (t, eid) for item, t, eid in self.recent}
        for item, t, eid in entries:
            if item not in best or (t, eid) > best[item]:
                best[item] = (t, eid)
        ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)[:limit]
        self.recent = [(item, t, eid) for item, (t, eid) in ranked]

    def _add_times(self, times: list[int], gap: int) -> None:
        """Add event times to the sessions: coalesce them first, then add each run once."""
        times.sort()
        start = end = times[0]
        for t in times[1:]:
            if t - end > gap:
                self._add_session(start, end, gap)
                start = t
            end = t
        self._add_session(start, end, gap)

    def _add_session(self, start: int, end: int, gap: int) -> None:
        sessions = self.sessions
        # first session that could touch [start - gap, end + gap]
        i = bisect.bisect_left(sessions, (start - gap, start - gap))
        if i > 0 and sessions[i - 1][1] >= start - gap:
            i -= 1
        j = i
        while j < len(sessions) and sessions[j][0] <= end + gap:
            start = min(start, sessions[j][0])
            end = max(end, sessions[j][1])
            j += 1
        sessions[i:j] = [(start, end)]

    # -- derived values ----------------------------------------------------------------------
    @property
    def revenue(self) -> float:
        return self.revenue_micros / MICROS

    @property
    def session_count(self) -> int:
        return len(self.sessions)

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "counts": self.counts,
            "event_count": self.event_count,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "purchases": self.purchases,
            "revenue_micros": self.revenue_micros,
            "last_purchase_ms": self.last_purchase_ms,
            "affinity": self.affinity,
            "affinity_anchor_ms": self.affinity_anchor_ms,
            # tuples serialize as JSON arrays; copying the lists is all the work
            "recent": list(self.recent),
            "last_context": self.last_context,
            "last_context_key": list(self.last_context_key) if self.last_context_key else None,
            "sessions": list(self.sessions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileState:
        """The state ``to_dict`` wrote (read once per profile a batch changes: its lists become
        tuples in C, without a Python call per entry)."""
        key = data.get("last_context_key")
        return cls(
            dict(data.get("counts", {})),
            int(data.get("event_count", 0)),
            data.get("first_seen_ms"),
            data.get("last_seen_ms"),
            int(data.get("purchases", 0)),
            int(data.get("revenue_micros", 0)),
            data.get("last_purchase_ms"),
            dict(data.get("affinity", {})),
            data.get("affinity_anchor_ms"),
            list(map(tuple, data.get("recent", ()))),
            data.get("last_context"),
            (int(key[0]), str(key[1])) if key else None,
            list(map(tuple, data.get("sessions", ()))),
        )


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
