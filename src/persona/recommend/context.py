"""What people in the same context interacted with lately: the cold start of a new person.

Someone with no history gives the pipeline nothing to personalize from but the request's
context (device, country) and, for a known person, their CRM traits. Here the event log is
counted per context value (events of the last ``window_days``, refreshed at most every
``refresh_seconds``), and a newcomer's list is what is trending among people who share their
device and country, each context's counts taken as shares so a large country does not drown a
device.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from persona.cache import Refreshed
from persona.clock import DAY_MS
from persona.recommend.answer import (
    RecommendationQuery,
    RecommendationResult,
    RecommendedItem,
    ServedModel,
    explanation,
)
from persona.recommend.dataset import CONTEXT_FIELDS
from persona.storage.protocols import Storage


@dataclass(frozen=True)
class ContextTrendsConfig:
    window_days: float = 30.0
    refresh_seconds: float = 60.0
    min_events: int = 20  # fewer events in a context, and it says nothing about its people


class ContextTrends:
    def __init__(
        self,
        storage: Storage,
        now_ms: Callable[[], int],
        ignored_types: Sequence[str],
        config: ContextTrendsConfig | None = None,
    ) -> None:
        self._storage = storage
        self._now_ms = now_ms
        self._ignored = sorted(ignored_types)
        self.config = config or ContextTrendsConfig()
        self._counts = Refreshed(self._read_counts, self.config.refresh_seconds)

    def ranked(self, context: Mapping[str, str | None]) -> list[tuple[str, float]]:
        """Items by their share of interactions in each known context value, best first."""
        counts = self._counts.get()
        scores: dict[str, float] = {}
        for name in CONTEXT_FIELDS:
            value = context.get(name)
            found = counts.get((name, value.lower())) if value else None
            if not found:
                continue
            total = sum(found.values())
            if total < self.config.min_events:
                continue
            for item, n in found.items():
                scores[item] = scores.get(item, 0.0) + n / total
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))

    def forget(self) -> None:
        """Read the counts again at the next request (events arrived, or erasure)."""
        self._counts.forget()

    def _read_counts(self) -> dict[tuple[str, str], Counter[str]]:
        since = self._now_ms() - round(self.config.window_days * DAY_MS)
        counts: dict[tuple[str, str], Counter[str]] = {}
        with self._storage.read() as uow:
            for name in CONTEXT_FIELDS:
                for value, item, n in uow.events.context_item_counts(name, since, self._ignored):
                    counts.setdefault((name, value.lower()), Counter())[item] += n
        return counts


def newcomer_answer(
    trends: ContextTrends,
    served: ServedModel,
    query: RecommendationQuery,
    country: str | None,
    unavailable: Sequence[str],
) -> RecommendationResult | None:
    """What is trending on the request's device and in the person's country, for someone
    without history; None when the context is unknown or says too little (fewer items than
    asked for), and the pipeline answers."""
    if query.device is None and country is None:
        return None
    data = served.pipeline.data
    assert data is not None
    blocked = set(query.exclude) | set(unavailable)
    items: list[RecommendedItem] = []
    for item_id, share in trends.ranked({"device": query.device, "country": country}):
        index = data.item_index(item_id)
        if index is None or item_id in blocked:
            continue
        if query.category is not None and query.category not in data.item_table.categories[index]:
            continue
        items.append(
            RecommendedItem(item_id, round(share, 6), ["context_trending"], explanation("context"))
        )
        if len(items) == query.n:
            return RecommendationResult(
                items,
                "context_trending",
                served.version.version,
                "no history yet: what is trending on the same device and in the same country",
            )
    return None
