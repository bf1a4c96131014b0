"""What the members of a person's segments interacted with lately: a candidate source of
recommendations (``segment_trending``)."""

from __future__ import annotations

from collections.abc import Mapping

from persona.cache import Refreshed
from persona.clock import DAY_MS, Clock
from persona.storage.protocols import Storage

FAVOURITES_TTL_SECONDS = 60.0
FAVOURITES_WINDOW_MS = 30 * DAY_MS
FAVOURITES_PER_SEGMENT = 200


class SegmentFavourites:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._favourites = Refreshed(self._read_favourites, FAVOURITES_TTL_SECONDS)

    def favoured_items(self, profile_key: str, limit: int = 30) -> list[str]:
        """What the members of this person's segments interacted with in the last 30 days,
        by share within each segment, best first (a candidate source of recommendations)."""
        with self._storage.read() as uow:
            mine = uow.segments.open_segments_of(profile_key)
        if not mine:
            return []
        by_segment = self._favourites.get()
        scores: dict[str, float] = {}
        for segment in mine:
            for item, share in by_segment.get(segment, ()):
                scores[item] = scores.get(item, 0.0) + share
        return [item for item, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]

    def _read_favourites(self) -> dict[str, list[tuple[str, float]]]:
        since = self._clock.now_ms() - FAVOURITES_WINDOW_MS
        counts: dict[str, dict[str, int]] = {}
        with self._storage.read() as uow:
            store = uow.segments
            for segment, item, n in store.segment_item_counts(since, ["impression"]):
                counts.setdefault(segment, {})[item] = n
        return {
            segment: _shares(found, FAVOURITES_PER_SEGMENT) for segment, found in counts.items()
        }


def _shares(counts: Mapping[str, int], limit: int) -> list[tuple[str, float]]:
    total = sum(counts.values())
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [(item, n / total) for item, n in best]
