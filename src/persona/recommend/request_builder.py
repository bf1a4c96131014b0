"""A served request as the pipeline takes it: the person's history from the store, what must
not be recommended, and the candidates only serving knows (context, segments)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from persona.cache import Refreshed
from persona.clock import Clock
from persona.identity import user_key
from persona.profiles.service import ProfileService
from persona.recommend.answer import RecommendationQuery
from persona.recommend.business import RuleTargets, business_rules
from persona.recommend.context import ContextTrends
from persona.recommend.dataset import IntArray
from persona.recommend.new_items import FRESH_LIMIT, FRESH_TTL_SECONDS
from persona.recommend.pipeline import RecommendationPipeline, Request, Shortlist
from persona.recommend.request import History, known_candidates
from persona.recommend.rerank import BusinessRules
from persona.recommend.shortlists import Freshness, ShortlistTable, Signature
from persona.recommend.training import NOT_INTERACTIONS, interaction_rows
from persona.storage.protocols import Storage
from persona.storage.records import ItemRecord

UNAVAILABLE_TTL_SECONDS = 1.0
CATEGORY_MEMO_ENTRIES = 256  # categories asked for, whose complements are kept per model set
_NOT_INTERACTIONS = sorted(NOT_INTERACTIONS)

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
        self.fresh_since_ms = 0  # the model set's training moment (``new_items``)
        self._fresh_items = Refreshed(self._read_fresh_items, FRESH_TTL_SECONDS)
        self._segment_favourites: Callable[[str], list[str]] | None = None
        self._unavailable_memo: tuple[list[str], RecommendationPipeline, IntArray] | None = None
        self._rule_targets: RuleTargets | None = None  # of the model set in service
        self._category_memo: tuple[RecommendationPipeline | None, dict[str, IntArray]] = (
            None,
            {},
        )

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

    def signature(self, person_id: str) -> tuple[str, Signature] | None:
        """The person's profile key and what their shortlist must match (one short read);
        None for someone without a profile."""
        with self._storage.read() as uow:
            # Most requests name a user id, whose events are kept under its own key: their
            # signature is one read, without loading the profile to resolve the id.
            key = user_key(person_id)
            count, latest_ms = uow.events.item_signature(key, _NOT_INTERACTIONS)
            if not count:
                found = self._profiles.resolve(uow, person_id)
                if found is None:
                    return None
                key = found
                count, latest_ms = uow.events.item_signature(key, _NOT_INTERACTIONS)
        return key, Signature(count, latest_ms)

    def signatures(self) -> tuple[list[str], IntArray, IntArray]:
        """Every profile's ``Signature`` as of now, in one bulk read of the event log: profile
        keys, interactions, latest times (what ``signature`` reads for one person)."""
        per_key = (
            interaction_rows(self._storage)
            .group_by("profile_key")
            .aggregate([("occurred_at_ms", "count"), ("occurred_at_ms", "max")])
        )
        return (
            per_key["profile_key"].to_pylist(),
            np.asarray(per_key["occurred_at_ms_count"], dtype=np.int64),
            np.asarray(per_key["occurred_at_ms_max"], dtype=np.int64),
        )

    def shortlisted(
        self,
        pipeline: RecommendationPipeline,
        table: ShortlistTable,
        freshness: Freshness,
        query: RecommendationQuery,
    ) -> tuple[str, Request, Shortlist] | None:
        """The person's request with the shortlist still true of them (ranked live after
        their latest change, or the batch's), filtered for this query, when it holds enough
        items; None to rank them live."""
        data = pipeline.data
        assert data is not None
        live = freshness.live(query.person_id)
        if live is not None:
            profile_key, shortlist, history = live.profile_key, live.shortlist, live.history
        else:
            known = freshness.known(query.person_id)
            if known is None:
                read_at = freshness.now()
                found = self.signature(query.person_id)
                if found is None or freshness.is_stale(found[0]):
                    return None
                known, now = found
                if not table.matches(known, now):
                    return None
                freshness.verified(query.person_id, known, read_at)
            batch = table.get(known)
            person = data.user_index(known)
            if batch is None or person is None:
                return None
            profile_key, shortlist, history = known, batch, pipeline.histories()[person]
        now_s = self._clock.now_ms() // 1000
        request = Request(
            history=history,
            as_of_s=now_s,
            hour=int(now_s // 3600 % 24),
            exclude=self.exclusions(pipeline, query),
            rules=self.rules(pipeline, query),
        )
        kept = pipeline.refilter(shortlist, request)
        if len(kept.items) < query.n:
            return None
        return profile_key, request, kept

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
            rules=self.rules(pipeline, query),
            context=self.context(pipeline, query, profile_key),
            extra=self._serving_candidates(pipeline, query, profile_key),
        )

    def context(
        self, pipeline: RecommendationPipeline, query: RecommendationQuery, profile_key: str | None
    ) -> dict[str, int]:
        """The request's device and country as the model set's codes: what the query names,
        else what the person's latest interaction in the training data had."""
        data = pipeline.data
        assert data is not None
        person = None if profile_key is None else data.user_index(profile_key)
        own = {} if person is None else pipeline.person_context(person)
        named = {"device": query.device, "country": query.country}
        return {**own, **pipeline.context_codes({k: v for k, v in named.items() if v})}

    def rules(
        self, pipeline: RecommendationPipeline, query: RecommendationQuery
    ) -> BusinessRules | None:
        """The query's business rules in force now, by the model set's item indices."""
        if not query.rules:
            return None
        data = pipeline.data
        assert data is not None
        targets = self._rule_targets
        if targets is None or targets.data is not data:
            targets = self._rule_targets = RuleTargets(data)
        return business_rules(query.rules, targets, self._clock.now_ms())

    def exclusions(
        self, pipeline: RecommendationPipeline, query: RecommendationQuery
    ) -> np.ndarray:
        """Item indices the answer must leave out: ``exclude``, unavailable items, and those
        outside ``category``."""
        data = pipeline.data
        assert data is not None
        parts = [self._unavailable_indices(pipeline)]
        if query.exclude:
            parts.append(data.item_indices(query.exclude))
        if query.category is not None:
            parts.append(self._outside_category(pipeline, query.category))
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))

    def _unavailable_indices(self, pipeline: RecommendationPipeline) -> IntArray:
        """Indices of the unavailable items, converted once per list read (``unavailable``)."""
        ids = self.unavailable()
        memo = self._unavailable_memo
        if memo is None or memo[0] is not ids or memo[1] is not pipeline:
            data = pipeline.data
            assert data is not None
            memo = self._unavailable_memo = (ids, pipeline, np.unique(data.item_indices(ids)))
        return memo[2]

    def _outside_category(self, pipeline: RecommendationPipeline, category: str) -> IntArray:
        """Indices of the items not in ``category``, per model set (its catalog is fixed)."""
        if self._category_memo[0] is not pipeline:
            self._category_memo = (pipeline, {})
        outside = self._category_memo[1]
        if category not in outside:
            data = pipeline.data
            assert data is not None
            categories = data.item_table.categories
            if len(outside) >= CATEGORY_MEMO_ENTRIES:
                outside.clear()
            outside[category] = np.asarray(
                [i for i in range(data.n_items) if category not in categories[i]], dtype=np.int64
            )
        return outside[category]

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
        if profile_key is not None:
            found.update(self.person_candidates(profile_key))
        return known_candidates(data, found)

    def person_candidates(self, profile_key: str) -> dict[str, list[str]]:
        """The person's candidates that only serving knows, item ids by source: what their
        segments favour lately (the batch ranking asks too, see ``shortlists``)."""
        if self._segment_favourites is None:
            return {}
        return {"segment_trending": self._segment_favourites(profile_key)}

    def unavailable(self) -> list[str]:
        return self._unavailable_ids.get()

    def catalog_changed(self) -> None:
        self._unavailable_ids.forget()
        self._fresh_items.forget()

    def fresh_items(self) -> list[ItemRecord]:
        """The items written to the catalog since the model set was trained, latest first."""
        return self._fresh_items.get()

    def _read_fresh_items(self) -> list[ItemRecord]:
        with self._storage.read() as uow:
            return uow.catalog.written_since(self.fresh_since_ms, FRESH_LIMIT)

    def _read_unavailable(self) -> list[str]:
        with self._storage.read() as uow:
            return uow.catalog.unavailable_ids()
