"""The fallback chain: who answers when the pipeline cannot (no model set, no consent to
personalize, a failed stage, an exhausted latency budget).

Each stage either answers or passes (``None``); one that fails is logged and passed over, so a
failing fallback never becomes a 5xx. The chain ends with the most popular items in the store,
which need nothing but the event log; an answer always says which stage gave it and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from persona.cache import Refreshed
from persona.recommend.answer import (
    RecommendationQuery,
    RecommendationResult,
    RecommendedItem,
    ServedModel,
    explanation,
    served_scores,
)
from persona.recommend.request_builder import ItemTimes, RequestBuilder
from persona.recommend.training import NOT_INTERACTIONS
from persona.storage.protocols import Storage

log = logging.getLogger(__name__)

POPULAR_TTL_SECONDS = 60.0
POPULAR_LIMIT = 1000


@dataclass(frozen=True)
class Shortfall:
    """A request the pipeline did not answer, and why."""

    query: RecommendationQuery
    history: ItemTimes  # the person's items ([] when their history may not be used)
    served: ServedModel | None
    reason: str


class FallbackStage(Protocol):
    name: str

    def answer(self, shortfall: Shortfall) -> RecommendationResult | None:
        """An answer, or None to let the next stage answer."""
        ...


class TrendingFallback:
    """The served pipeline's trending source alone (recent interactions, decayed), filtered
    as the pipeline filters: cheap, and fresh as of the last training."""

    name = "trending"

    def __init__(self, requests: RequestBuilder) -> None:
        self._requests = requests

    def answer(self, shortfall: Shortfall) -> RecommendationResult | None:
        served = shortfall.served
        if served is None:
            return None
        pipeline, query = served.pipeline, shortfall.query
        assert pipeline.data is not None
        request = self._requests.request(pipeline, query, shortfall.history)
        ids = pipeline.data.item_ids
        found = pipeline.rank_by_source(request, self.name, query.n)
        scores = served_scores([score for _, score in found])
        items = [
            RecommendedItem(ids[item], score, [self.name], explanation("trending"))
            for (item, _), score in zip(found, scores, strict=True)
        ]
        return RecommendationResult(items, self.name, served.version.version, shortfall.reason)


class PopularFallback:
    """The items with the most interactions in the store, read at most once a minute: needs
    no model set at all."""

    name = "popular"

    def __init__(self, storage: Storage, requests: RequestBuilder) -> None:
        self._storage = storage
        self._requests = requests
        self._popular = Refreshed(self._read, POPULAR_TTL_SECONDS)

    def answer(self, shortfall: Shortfall) -> RecommendationResult | None:
        query = shortfall.query
        seen = {item for item, _ in shortfall.history}
        seen |= set(query.exclude) | set(self._requests.unavailable())
        items = self._popular.get()
        if not items:
            self._popular.forget()  # an empty store: look again next time, not in a minute
        chosen = [i for i in items if i not in seen][: query.n]
        version = shortfall.served.version.version if shortfall.served else None
        return RecommendationResult(
            [
                RecommendedItem(item, score, [self.name], explanation("popular"))
                for item, score in zip(chosen, served_scores([0.0] * len(chosen)), strict=True)
            ],
            self.name,
            version,
            shortfall.reason,
        )

    def _read(self) -> list[str]:
        with self._storage.read() as uow:
            return uow.events.popular_items(POPULAR_LIMIT, sorted(NOT_INTERACTIONS))


class FallbackChain:
    def __init__(self, stages: Sequence[FallbackStage]) -> None:
        self.stages = tuple(stages)

    def answer(self, shortfall: Shortfall) -> RecommendationResult:
        for stage in self.stages:
            try:
                found = stage.answer(shortfall)
            except Exception:
                log.exception("the %s fallback failed; the next stage answers", stage.name)
                continue
            if found is not None:
                return found
        version = shortfall.served.version.version if shortfall.served else None
        return RecommendationResult([], "none", version, shortfall.reason)
