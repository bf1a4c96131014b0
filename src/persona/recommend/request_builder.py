"""A served request as the pipeline takes it: the person's history from the store, what must
not be recommended, and the candidates only serving knows (context, segments)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from persona.cache import Refreshed
from persona.clock import Clock
from persona.profiles.service import ProfileService
from persona.recommend.answer import RecommendationQuery
from persona.recommend.context import ContextTrends
from persona.recommend.pipeline import RecommendationPipeline, Request
from persona.recommend.request import History
from persona.recommend.training import NOT_INTERACTIONS
from persona.storage.protocols import Storage

UNAVAILABLE_TTL_SECONDS = 1.0

ItemTimes = list[tuple[str, int]]
"""A person's items with their times (seconds), oldest first."""


class RequestBuilder:
    def __init__(
        self,
        storage: Storage,
        profiles: ProfileService,
        clock: Clock,
        context_trends: ContextTrends,
        *,
        history_limit: int = 500,
    ) -> None:
        self._storage = storage
        self._profiles = profiles
        self._clock = clock
        self.context_trends = context_trends
        self.history_limit = history_limit
        # Changes made through this process show at once (``catalog_changed``), those of
        # another process within the second.
        self._unavailable_ids = Refreshed(self._read_unavailable, UNAVAILABLE_TTL_SECONDS)
        self._segment_favourites: Callable[[str], list[str]] | None = None

    def set_segment_favourites(self, favoured: Callable[[str], list[str]]) -> None:
        """Where the items favoured by a person's segments come from (a candidate source)."""
        self._segment_favourites = favoured

    def history(self, person_id: str) -> tuple[str | None, ItemTimes]:
        """The person's profile key, and their items with their times, oldest first."""
        with self._storage.read() as uow:
            key = self._profiles.resolve(uow, person_id)
            if key is None:
                return None, []
            events = uow.events.item_history(key, self.history_limit)
        return key, [
            (item, at_ms // 1000)
            for item, kind, at_ms in reversed(events)
            if kind not in NOT_INTERACTIONS
        ]

    def request(
        self,
        pipeline: RecommendationPipeline,
        query: RecommendationQuery,
        history_ids: ItemTimes,
        profile_key: str | None = None,
    ) -> Request:
        data = pipeline.data
        assert data is not None
        known = [(data.item_index(item), t) for item, t in history_ids]
        pairs = [(i, t) for i, t in known if i is not None]
        history = History(
            np.asarray([i for i, _ in pairs], dtype=np.int64),
            np.asarray([t for _, t in pairs], dtype=np.int64),
        )
        now_s = self._clock.now_ms() // 1000
        hour = query.hour if query.hour is not None else int(now_s // 3600 % 24)
        return Request(
            history=history,
            as_of_s=now_s,
            hour=hour,
            exclude=self.exclusions(pipeline, query),
            extra=self._serving_candidates(pipeline, query, profile_key),
        )

    def exclusions(
        self, pipeline: RecommendationPipeline, query: RecommendationQuery
    ) -> np.ndarray:
        """Item indices the answer must leave out: ``exclude``, unavailable items, and those
        outside ``category``."""
        data = pipeline.data
        assert data is not None
        excluded = {data.item_index(i) for i in query.exclude} | {
            data.item_index(i) for i in self.unavailable()
        }
        indices = [i for i in excluded if i is not None]
        if query.category is not None:
            categories = data.item_table.categories
            indices += [i for i in range(data.n_items) if query.category not in categories[i]]
        return np.asarray(sorted(set(indices)), dtype=np.int64)

    def _serving_candidates(
        self, pipeline: RecommendationPipeline, query: RecommendationQuery, profile_key: str | None
    ) -> dict[str, np.ndarray]:
        """Candidates only serving knows: what the request's context and the person's
        segments favour lately."""
        data = pipeline.data
        assert data is not None
        found: dict[str, list[str]] = {}
        if query.device or query.country:
            context = {"device": query.device, "country": query.country}
            found["context_trending"] = [i for i, _ in self.context_trends.ranked(context)[:30]]
        if profile_key is not None and self._segment_favourites is not None:
            found["segment_trending"] = self._segment_favourites(profile_key)
        extra: dict[str, np.ndarray] = {}
        for name, ids in found.items():
            indices = [j for j in (data.item_index(i) for i in ids) if j is not None]
            if indices:
                extra[name] = np.asarray(indices, dtype=np.int64)
        return extra

    def unavailable(self) -> list[str]:
        return self._unavailable_ids.get()

    def catalog_changed(self) -> None:
        self._unavailable_ids.forget()

    def _read_unavailable(self) -> list[str]:
        with self._storage.read() as uow:
            return uow.catalog.unavailable_ids()
