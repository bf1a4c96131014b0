"""Recommendations for one person, now: the served pipeline with its fallback chain.

The person's history is read from the store at request time, so an event stored a moment ago
changes the answer without a retrain. The pipeline runs under a latency budget in a worker
thread; when the model set is missing, a stage fails or the budget runs out, the answer comes
from the next source of the chain (trending, then popular) and says so. Such a fallback never
turns into a 5xx.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace

import numpy as np

from persona.cache import AnswerCache, Refreshed
from persona.clock import Clock
from persona.identity import anonymous_key, user_key
from persona.profiles.service import ProfileService
from persona.recommend.context import ContextTrends
from persona.recommend.pipeline import (
    PipelineConfig,
    Ranked,
    RecommendationPipeline,
    Request,
    histories_of,
)
from persona.recommend.registry import ModelRegistry, ModelVersion
from persona.recommend.request import History, RequestBlock, source_input
from persona.recommend.training import NOT_INTERACTIONS, NotEnoughDataError, load_training_data
from persona.storage.protocols import Storage

log = logging.getLogger(__name__)


_CacheKey = tuple[str, "RecommendationQuery"]


def _cache_key(served: _Served, query: RecommendationQuery) -> _CacheKey:
    return served.version.version, replace(query, exclude=tuple(query.exclude))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


UNAVAILABLE_TTL_SECONDS = 1.0
REFRESH_PAUSE_FACTOR = 3.0  # the background refresh of aged answers ranks a quarter of the time
POPULAR_TTL_SECONDS = 60.0
POPULAR_LIMIT = 1000
NO_CONSENT = "no personalization consent"


@dataclass(frozen=True)
class RecommendationQuery:
    person_id: str
    n: int = 10
    placement: str | None = None
    device: str | None = None
    country: str | None = None
    hour: int | None = None
    category: str | None = None
    exclude: Sequence[str] = ()
    budget_ms: float | None = None  # None: the service's latency budget


@dataclass(frozen=True)
class RecommendedItem:
    item_id: str
    score: float
    sources: list[str]


@dataclass(frozen=True)
class RecommendationResult:
    items: list[RecommendedItem]
    source: str  # "pipeline", or the fallback that answered: "trending", "popular"
    model_version: str | None
    reason: str | None = None  # why a fallback answered
    personalized: bool = True
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False  # reused from an earlier identical request (see cache.py)


@dataclass
class _Served:
    version: ModelVersion
    pipeline: RecommendationPipeline


class RecommendationService:
    def __init__(
        self,
        storage: Storage,
        profiles: ProfileService,
        clock: Clock,
        registry: ModelRegistry,
        *,
        budget_ms: float = 50.0,
        history_limit: int = 500,
        cache: AnswerCache[RecommendationResult] | None = None,
    ) -> None:
        self._storage = storage
        self._profiles = profiles
        self._clock = clock
        self.registry = registry
        self.budget_ms = budget_ms
        self.history_limit = history_limit
        self._served: _Served | None = None
        self._lock = threading.Lock()
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recommend")
        # Aged answers are ranked again one at a time, each answer once (see ``_from_cache``).
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recommend-refresh")
        self._refreshing: set[_CacheKey] = set()
        # Changes made through this process show at once (``catalog_changed``), those of
        # another process within the second.
        self._unavailable_ids = Refreshed(self._read_unavailable, UNAVAILABLE_TTL_SECONDS)
        self._popular = Refreshed(self._read_popular, POPULAR_TTL_SECONDS)
        self.context_trends = ContextTrends(storage, clock.now_ms, sorted(NOT_INTERACTIONS))
        self._segment_favourites: Callable[[str], list[str]] | None = None
        self.cache: AnswerCache[RecommendationResult] = (
            cache if cache is not None else AnswerCache(ttl_seconds=0)
        )
        self._personalization_allowed: Callable[[str], bool] | None = None

    def set_personalization_check(self, allowed: Callable[[str], bool]) -> None:
        """Ask ``allowed(person_id)`` before personalizing; False answers with trending items."""
        self._personalization_allowed = allowed

    def refresh(self) -> ModelVersion | None:
        """Load the champion again even if it is in service (its files were rewritten)."""
        with self._lock:
            self._served = None
        return self.reload()

    # Model set ------------------------------------------------------------------------------

    def reload(self) -> ModelVersion | None:
        """Load the champion model set (a no-op when it is already in service)."""
        champion = self.registry.champion()
        if champion is None:
            return None
        with self._lock:
            if self._served and self._served.version.version == champion.version:
                return champion
        pipeline = load_pipeline(self.registry, champion)
        # One ranking before serving pays the first-call costs outside any request's budget.
        pipeline.rank([Request(History.empty(), self._clock.now_ms() // 1000)], 10)
        with self._lock:
            self._served = _Served(champion, pipeline)
        self.cache.clear()
        log.info("serving model set %s", champion.version)
        return champion

    @property
    def served_version(self) -> str | None:
        served = self._served
        return served.version.version if served else None

    # Serving --------------------------------------------------------------------------------

    def lookup(self, query: RecommendationQuery) -> RecommendationResult | None:
        """The answer when nothing needs computing (an identical earlier request's), else None.

        Cheap enough for an event loop, unlike ``recommend``, which may rank. Consent is not
        read again: only personalized answers, computed with consent, are cached, and every
        consent change (by the API or by an event) drops the person's answers.
        """
        started = time.perf_counter()
        served = self._served
        if served is None:
            return None
        return self._from_cache(_cache_key(served, query), query, started)

    def _from_cache(
        self, cache_key: _CacheKey, query: RecommendationQuery, started: float
    ) -> RecommendationResult | None:
        """The cached answer; one past its lifetime is still served while a background thread
        ranks the person again, so a returning visitor never waits for a re-ranking that only
        time asked for (their own events drop their answers at once)."""
        found = self.cache.get_aged(cache_key)
        if found is None:
            return None
        cached, aged = found
        if aged:
            self._refresh_later(cache_key, query)
        return replace(cached, cached=True, timings_ms={"total": _ms_since(started)})

    def _refresh_later(self, cache_key: _CacheKey, query: RecommendationQuery) -> None:
        with self._lock:
            if cache_key in self._refreshing:
                return
            self._refreshing.add(cache_key)
        try:
            self._refresher.submit(self._refresh, cache_key, query)
        except RuntimeError:  # shut down
            with self._lock:
                self._refreshing.discard(cache_key)

    def _refresh(self, cache_key: _CacheKey, query: RecommendationQuery) -> None:
        started = time.perf_counter()
        try:
            self._recommend(query, reuse=False)  # stores the new answer (late ones included)
        except Exception:
            log.exception("refreshing an aged answer failed; it is served until it is dropped")
        finally:
            with self._lock:
                self._refreshing.discard(cache_key)
        # Refreshing works at most a share of the time: rankings hold the interpreter lock
        # for much of their work, and requests come first. An answer not refreshed within its
        # grace lifetime is dropped, and its next request ranks as any uncached one.
        time.sleep((time.perf_counter() - started) * REFRESH_PAUSE_FACTOR)

    def recommend(self, query: RecommendationQuery) -> RecommendationResult:
        return self._recommend(query, reuse=True)

    def _recommend(self, query: RecommendationQuery, *, reuse: bool) -> RecommendationResult:
        started = time.perf_counter()
        if self._served is None:
            try:
                self.reload()
            except Exception:
                log.exception("the model set could not be loaded")
        served = self._served
        allowed = self._personalization_allowed
        if allowed is not None and not allowed(query.person_id):
            # Without personalization consent nothing about the person is used, history included.
            if served is None:
                return self._popular_fallback(query, [], NO_CONSENT)
            return self._trending_fallback(served, query, [], NO_CONSENT)
        if served is None:
            return self._popular_fallback(
                query, self._history(query.person_id)[1], "no trained model set"
            )
        cache_key = _cache_key(served, query)
        cached = self._from_cache(cache_key, query, started) if reuse else None
        if cached is not None:
            return cached
        ticket = self.cache.ticket()
        profile_key, history_ids = self._history(query.person_id)
        # Someone not seen yet gets a profile under one of these keys with their first event.
        people = (
            (profile_key,)
            if profile_key
            else (user_key(query.person_id), anonymous_key(query.person_id))
        )
        if not history_ids:
            newcomer = self._context_answer(served, query, profile_key)
            if newcomer is not None:
                self.cache.put(cache_key, people, ticket, newcomer)
                return newcomer

        def answer(ranked: Ranked) -> RecommendationResult:
            return RecommendationResult(
                items=_items(served.pipeline, ranked),
                source="pipeline",
                model_version=served.version.version,
                timings_ms={"total": _ms_since(started)},
            )

        def keep_late(done: Future[Ranked]) -> None:
            # A ranking that missed its budget still finishes; its answer serves the next ask.
            if not done.cancelled() and done.exception() is None:
                self.cache.put(cache_key, people, ticket, answer(done.result()))

        future = self._workers.submit(self._rank, served, query, history_ids, profile_key)
        budget_ms = query.budget_ms if query.budget_ms is not None else self.budget_ms
        remaining = max(0.0, budget_ms / 1000 - (time.perf_counter() - started))
        try:
            ranked = future.result(timeout=remaining)
        except FutureTimeout:
            future.add_done_callback(keep_late)
            return self._trending_fallback(served, query, history_ids, "latency budget exceeded")
        except Exception:
            log.exception("the pipeline failed; answering from the fallback chain")
            return self._trending_fallback(served, query, history_ids, "pipeline failed")
        result = answer(ranked)
        self.cache.put(cache_key, people, ticket, result)
        return result

    def _context_answer(
        self, served: _Served, query: RecommendationQuery, profile_key: str | None
    ) -> RecommendationResult | None:
        """For someone without history: what is trending in their context, when it is known
        (the request's device and country; a known person's ``country`` trait otherwise)."""
        country = query.country
        if country is None and profile_key is not None:
            with self._storage.read() as uow:
                record = uow.profiles.load([profile_key]).get(profile_key)
            trait = (record.traits or {}).get("country") if record else None
            country = trait if isinstance(trait, str) else None
        if query.device is None and country is None:
            return None
        ranked = self.context_trends.ranked({"device": query.device, "country": country})
        data = served.pipeline.data
        assert data is not None
        blocked = set(query.exclude) | set(self._unavailable())
        items: list[RecommendedItem] = []
        for item_id, share in ranked:
            index = data.item_index(item_id)
            if index is None or item_id in blocked:
                continue
            if (
                query.category is not None
                and query.category not in data.item_table.categories[index]
            ):
                continue
            items.append(RecommendedItem(item_id, round(share, 6), ["context_trending"]))
            if len(items) == query.n:
                break
        if len(items) < query.n:
            return None  # too little known about this context: the pipeline answers
        return RecommendationResult(
            items,
            "context_trending",
            served.version.version,
            "no history yet: what is trending on the same device and in the same country",
        )

    def forget(self, profile_keys: Collection[str]) -> None:
        """Drop cached answers of these people (their events were committed, or erased)."""
        self.cache.invalidate(profile_keys)

    def committed(self, changed: set[str] | None) -> None:
        """A storage commit listener: drop the answers of the people a write changed.

        A write that names no people (configuration, a segment refresh) leaves answers to their
        lifetime; catalog, consent and erasure changes drop theirs themselves.
        """
        if changed:
            self.forget(changed)

    def _rank(
        self,
        served: _Served,
        query: RecommendationQuery,
        history_ids: list[tuple[str, int]],
        profile_key: str | None = None,
    ) -> Ranked:
        request = self._request(served.pipeline, query, history_ids, profile_key)
        return served.pipeline.rank([request], query.n)[0]

    def set_segment_favourites(self, favoured: Callable[[str], list[str]]) -> None:
        """Where the items favoured by a person's segments come from (a candidate source)."""
        self._segment_favourites = favoured

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

    def _request(
        self,
        pipeline: RecommendationPipeline,
        query: RecommendationQuery,
        history_ids: list[tuple[str, int]],
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
            exclude=self._exclusions(pipeline, query),
            extra=self._serving_candidates(pipeline, query, profile_key),
        )

    def _exclusions(
        self, pipeline: RecommendationPipeline, query: RecommendationQuery
    ) -> np.ndarray:
        data = pipeline.data
        assert data is not None
        excluded = {data.item_index(i) for i in query.exclude} | {
            data.item_index(i) for i in self._unavailable()
        }
        indices = [i for i in excluded if i is not None]
        if query.category is not None:
            categories = data.item_table.categories
            indices += [i for i in range(data.n_items) if query.category not in categories[i]]
        return np.asarray(sorted(set(indices)), dtype=np.int64)

    def _history(self, person_id: str) -> tuple[str | None, list[tuple[str, int]]]:
        """The person's profile key, and items with their times (seconds), oldest first."""
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

    def catalog_changed(self) -> None:
        """Forget the cached unavailable items and answers (this process changed the catalog)."""
        self._unavailable_ids.forget()
        self.cache.clear()

    def _unavailable(self) -> list[str]:
        return self._unavailable_ids.get()

    def _read_unavailable(self) -> list[str]:
        with self._storage.read() as uow:
            return uow.catalog.unavailable_ids()

    # Batch ----------------------------------------------------------------------------------

    def recommend_all(
        self,
        n: int,
        weights: Mapping[str, float],
        *,
        as_of_last_event: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[str, list[RecommendedItem]]]:
        """A list for every person in the store, ranked in blocks with the served pipeline.

        Each person is ranked as of their latest event (what comes next for them), or as of
        now with ``as_of_last_event=False``. Histories come from the store, not the model set.
        """
        if self._served is None:
            self.reload()
        served = self._served
        if served is None:
            raise NotEnoughDataError("no trained model set: run `persona train` first")
        pipeline = served.pipeline
        model_data = pipeline.data
        assert model_data is not None
        current = load_training_data(self._storage, weights).interactions
        mapping = np.asarray(
            [-1 if (j := model_data.item_index(i)) is None else j for i in current.item_ids],
            dtype=np.int64,
        )
        now_s = self._clock.now_ms() // 1000
        unavailable = self._exclusions(pipeline, RecommendationQuery(person_id=""))
        histories = histories_of(current)
        allowed = self._personalization_allowed
        block = pipeline.config.block_size
        for start in range(0, current.n_users, block):
            people = range(start, min(start + block, current.n_users))
            requests = []
            for person in people:
                if allowed is not None and not allowed(_external_id(current.user_ids[person])):
                    # no personalization consent: ranked on no history, as a newcomer would be
                    requests.append(
                        Request(History.empty(), now_s, now_s // 3600 % 24, unavailable)
                    )
                    continue
                h = histories[person]
                mapped = mapping[h.items]
                known = mapped >= 0
                as_of = int(h.times_s[-1]) if as_of_last_event and len(h.times_s) else now_s
                requests.append(
                    Request(
                        History(mapped[known], h.times_s[known]),
                        as_of,
                        hour=as_of // 3600 % 24,
                        exclude=unavailable,
                    )
                )
            for person, ranked in zip(people, pipeline.rank(requests, n), strict=True):
                yield _external_id(current.user_ids[person]), _items(pipeline, ranked)
            if progress:
                progress(len(people))

    # Fallbacks ------------------------------------------------------------------------------

    def _trending_fallback(
        self,
        served: _Served,
        query: RecommendationQuery,
        history_ids: list[tuple[str, int]],
        reason: str,
    ) -> RecommendationResult:
        try:
            pipeline = served.pipeline
            request = self._request(pipeline, query, history_ids)
            trending = next(s for s in pipeline.sources if s.name == "trending")
            block = RequestBlock(
                [request.history], np.asarray([request.as_of_s]), np.asarray([request.hour])
            )
            assert pipeline.data is not None
            scores = trending.score(source_input(block, pipeline.data.n_items))[0]
            blocked = pipeline.excluded_mask(request.history, request.exclude)
            scores = np.where(blocked, -np.inf, scores)
            top = np.argsort(-scores, kind="stable")[: query.n]
            items = [
                RecommendedItem(pipeline.data.item_ids[i], float(scores[i]), ["trending"])
                for i in top
                if np.isfinite(scores[i])
            ]
            return RecommendationResult(items, "trending", served.version.version, reason)
        except Exception:
            log.exception("the trending fallback failed; answering with popular items")
            return self._popular_fallback(query, history_ids, reason)

    def _popular_fallback(
        self, query: RecommendationQuery, history_ids: list[tuple[str, int]], reason: str
    ) -> RecommendationResult:
        seen = {item for item, _ in history_ids} | set(query.exclude) | set(self._unavailable())
        items = [i for i in self._popular_items() if i not in seen][: query.n]
        return RecommendationResult(
            [RecommendedItem(item, 0.0, ["popular"]) for item in items],
            "popular",
            self.served_version,
            reason,
        )

    def _popular_items(self) -> list[str]:
        """The most interacted-with items in the store (the last fallback)."""
        items = self._popular.get()
        if not items:
            self._popular.forget()  # an empty store: look again next time, not in a minute
        return items

    def _read_popular(self) -> list[str]:
        with self._storage.read() as uow:
            return uow.events.popular_items(POPULAR_LIMIT, sorted(NOT_INTERACTIONS))

    def close(self) -> None:
        self._refresher.shutdown(wait=False, cancel_futures=True)
        self._workers.shutdown(wait=False, cancel_futures=True)


def _items(pipeline: RecommendationPipeline, ranked: Ranked) -> list[RecommendedItem]:
    assert pipeline.data is not None
    ids = pipeline.data.item_ids
    return [
        RecommendedItem(ids[slot.item], _json_score(slot.score), sources)
        for slot, sources in zip(ranked.items, ranked.sources, strict=True)
    ]


def _external_id(profile_key: str) -> str:
    """The id a client knows: the user id, or the anonymous id of an unidentified person."""
    return profile_key.split(":", 1)[1] if ":" in profile_key else profile_key


def _json_score(score: float) -> float:
    """Scores are finite in JSON: pinned items rank above all, explored ones below."""
    if score == float("inf"):
        return 1e9
    if not np.isfinite(score):
        return -1e9
    return float(score)


def load_pipeline(registry: ModelRegistry, version: ModelVersion) -> RecommendationPipeline:
    config = pipeline_config_from(version.manifest.get("config", {}))
    pipeline = RecommendationPipeline(config)
    pipeline.restore(
        registry.load_interactions(version),
        registry.load_source_arrays(version),
        registry.load_ranker_text(version),
    )
    return pipeline


def pipeline_config_from(raw: dict[str, object]) -> PipelineConfig:
    candidates = raw.get("candidates")
    if isinstance(candidates, dict):
        return PipelineConfig(candidates={str(k): int(v) for k, v in candidates.items()})
    return PipelineConfig()
