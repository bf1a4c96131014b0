"""Recommendations for one person, now: the served pipeline, its answer cache and its
fallback chain.

The person's history is read from the store at request time (``request_builder``), so an event
stored a moment ago changes the answer without a retrain. The pipeline runs under a latency
budget in a worker thread; when the model set is missing, the person has not consented, a stage
fails or the budget runs out, the fallback chain answers (``fallback``) and says so. Someone
without history whose context is known gets what is trending in it
(``context.newcomer_answer``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import datetime

import numpy as np

from persona.cache import AnswerCache
from persona.clock import Clock, epoch_ms
from persona.errors import NotFoundError
from persona.identity import anonymous_key, split_key, user_key
from persona.profiles.service import ProfileService
from persona.recommend.answer import (
    RecommendationQuery,
    RecommendationResult,
    RecommendedItem,
    ServedModel,
    explanation,
    ranked_items,
    served_scores,
)
from persona.recommend.batch import recommend_everyone
from persona.recommend.context import ContextTrends, newcomer_answer
from persona.recommend.fallback import FallbackChain, PopularFallback, Shortfall, TrendingFallback
from persona.recommend.new_items import with_new_item
from persona.recommend.pipeline import PipelineConfig, Ranked, RecommendationPipeline, Request
from persona.recommend.registry import ModelRegistry, ModelVersion
from persona.recommend.request import History
from persona.recommend.request_builder import ItemTimes, RequestBuilder
from persona.recommend.shared_answers import SharedAnswers
from persona.recommend.shortlists import SHORTLIST_SIZE, LiveShortlist
from persona.recommend.training import NOT_INTERACTIONS, NotEnoughDataError
from persona.storage.protocols import Storage

log = logging.getLogger(__name__)

OTHER_MODEL_SETS = 2  # stored model sets kept loaded beside the champion, for experiments

_CacheKey = tuple[str, RecommendationQuery]


def _cache_key(served: ServedModel, query: RecommendationQuery) -> _CacheKey:
    if not isinstance(query.exclude, tuple):  # hashable, as the routes already make it
        query = replace(query, exclude=tuple(query.exclude))
    return served.version.version, query


def _shared_key(shared: SharedAnswers, served: ServedModel, query: RecommendationQuery) -> str:
    """The name of the answer in Redis: the model set in service and the request."""
    return shared.key(served.version.version, served.stamp, query)


def _anyone(key: _CacheKey) -> _CacheKey:
    """The key of the answer shared by everyone without a profile (no person id is empty)."""
    version, query = key
    return version, replace(query, person_id="")


def answer_bytes(key: _CacheKey, result: RecommendationResult) -> int:
    """What a cached answer takes in memory, estimated from CPython's object sizes: the key's
    texts (the person, the excluded ids ...) and each item with its sources and explanation."""
    version, query = key
    texts = [version, query.person_id, *query.exclude, query.category or "", query.placement or ""]
    key_bytes = 400 + sum(57 + len(text) for text in texts)
    item_bytes = sum(
        200 + len(item.item_id) + sum(57 + len(s) for s in item.sources) + _explained(item)
        for item in result.items
    )
    return key_bytes + 300 + item_bytes


def _explained(item: RecommendedItem) -> int:
    """An explanation's bytes: a small dict, and for each item named a dict of two texts."""
    if item.explanation is None:
        return 0
    named = item.explanation.get("items") or ()
    return 250 + sum(300 + len(i["item_id"]) + len(i["title"] or "") for i in named)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


REFRESH_PAUSE_FACTOR = 3.0  # the background refresh of aged answers ranks a quarter of the time
NO_CONSENT = "no personalization consent"


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
        self._clock = clock
        self.registry = registry
        self.budget_ms = budget_ms
        self._served: ServedModel | None = None
        self._others: dict[str, ServedModel] = {}  # stored versions experiments' arms name
        self._loading = threading.Lock()
        self._lock = threading.Lock()
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recommend")
        # Aged answers are ranked again one at a time, each answer once (see ``_from_cache``).
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recommend-refresh")
        self._refreshing: set[_CacheKey] = set()
        self.context_trends = ContextTrends(storage, clock.now_ms, sorted(NOT_INTERACTIONS))
        self.requests = RequestBuilder(
            storage, profiles, clock, self.context_trends, history_limit=history_limit
        )
        self.fallbacks = FallbackChain(
            [TrendingFallback(self.requests), PopularFallback(storage, self.requests)]
        )
        self.cache: AnswerCache[RecommendationResult] = (
            cache if cache is not None else AnswerCache(ttl_seconds=0)
        )
        # Similar items are the same for everyone who names no person: kept as answers are,
        # a tenth of their entries (an item page's list costs ~15 ms to fuse on MovieLens).
        self._similar: AnswerCache[RecommendationResult] = AnswerCache(
            max(1, self.cache.max_entries // 10), self.cache.ttl_seconds
        )
        self._personalization_allowed: Callable[[str], bool] | None = None
        self._shared: SharedAnswers | None = None  # see share_answers
        # The bulk check of the shortlists of the model set loaded last (see ``reload``).
        self.verification: Future[None] | None = None

    def set_personalization_check(self, allowed: Callable[[str], bool]) -> None:
        """Ask ``allowed(person_id)`` before personalizing; False answers from the fallbacks."""
        self._personalization_allowed = allowed

    def set_segment_favourites(self, favoured: Callable[[str], list[str]]) -> None:
        """Where the items favoured by a person's segments come from (a candidate source)."""
        self.requests.set_segment_favourites(favoured)

    # -- the model set in service --------------------------------------------------------------
    def refresh(self) -> ModelVersion | None:
        """Load the champion again even if it is in service (its files were rewritten, as an
        erasure rewrites every stored model set); other loaded model sets are dropped."""
        with self._lock:
            self._served = None
            self._others.clear()
        return self.reload()

    def reload(self) -> ModelVersion | None:
        """Load the champion model set (a no-op when it is already in service)."""
        champion = self.registry.champion()
        if champion is None:
            return None
        with self._lock:
            if self._served and self._served.version.version == champion.version:
                return champion
        served = self._load(champion)
        shortlists = served.shortlists
        with self._lock:
            self._served = served
            self.requests.fresh_since_ms = _trained_ms(champion)
            self.requests.catalog_changed()
        self.cache.clear()
        self._similar.clear()
        log.info("serving model set %s", champion.version)
        if shortlists is not None:
            with contextlib.suppress(RuntimeError):  # shut down: nothing to verify for
                self.verification = self._refresher.submit(self._verify_in_bulk, served)
        return champion

    def _load(self, version: ModelVersion) -> ServedModel:
        stamp = self.registry.stamp(version)
        pipeline = load_pipeline(self.registry, version)
        shortlists = self.registry.load_shortlists(version)
        # Rankings before serving pay the first-call costs outside any request's budget, on
        # the path a request takes: a person with a history, naming a context (filters, the
        # search with exclusions, exploration, the context's candidates, explanations).
        # First on this thread (OpenBLAS keeps the thread count a worker thread set first,
        # and ``runtime.blas_single_threaded`` then no longer holds in the main thread), then
        # on a thread that ranks requests (the ranker's threading runtime starts per thread:
        # tens of milliseconds once per thread). Reading the context counts (once a minute)
        # is then not left to the first request naming a context either.
        try:
            warm_up = self._warm_up_request(pipeline)
            ranked = pipeline.rank([warm_up], 10, explain=True)[0]
            ranked_items(pipeline, ranked)
            with contextlib.suppress(RuntimeError):  # shut down: no thread to warm
                self._workers.submit(pipeline.rank, [warm_up], 10, explain=True).result()
        except Exception:  # slower first requests, not a model set left unserved
            log.exception("warming up model set %s failed", version.version)
        return ServedModel(version, pipeline, shortlists, stamp=stamp)

    def _warm_up_request(self, pipeline: RecommendationPipeline) -> Request:
        """A request as a known person's would be: the first fitted person's, now, with a
        device and a country, built with the reads a request makes (their history and
        signature, their segments' favourites, the items written since training), each
        first read (the statement compiled, the bulk reads behind them) done here."""
        data = pipeline.data
        assert data is not None
        if not data.n_users:
            return Request(History.empty(), self._clock.now_ms() // 1000)
        profile_key = data.user_ids[0]
        person_id = split_key(profile_key)[1]
        self.requests.signature(person_id)
        self.requests.fresh_items()
        key, history = self.requests.history(person_id)
        query = RecommendationQuery(person_id=person_id, device="mobile", country="US")
        return self.requests.request(pipeline, query, history, key)

    def _serving(self, query: RecommendationQuery, *, load: bool = True) -> ServedModel | None:
        """The model set that answers ``query``: the champion, or the stored version it names
        (an experiment's arm; at most ``OTHER_MODEL_SETS`` of them kept loaded, the least
        recently asked dropped). None when it names one that is not stored, or not loaded yet
        and ``load`` is false."""
        served = self._served
        wanted = query.model_version
        if wanted is None or (served is not None and served.version.version == wanted):
            return served
        with self._lock:
            found = self._others.pop(wanted, None)
            if found is not None:
                self._others[wanted] = found  # the most recently asked last
                return found
        if not load:
            return None
        version = self.registry.get(wanted)
        if version is None:
            return None
        with self._loading:  # one load at a time: two requests for a new arm load it once
            with self._lock:
                found = self._others.get(wanted)
            if found is None:
                found = self._load(version)
                log.info("serving model set %s beside the champion", wanted)
            with self._lock:
                self._others[wanted] = found
                while len(self._others) > OTHER_MODEL_SETS:
                    self._others.pop(next(iter(self._others)))
        return found

    def settle(self, timeout_seconds: float) -> bool:
        """Wait up to ``timeout_seconds`` for the bulk check of the shortlists that the last
        load started; whether it is over."""
        verification = self.verification
        if verification is None:
            return True
        try:
            verification.result(timeout=timeout_seconds)
        except TimeoutError:
            return False
        return True

    def _verify_in_bulk(self, served: ServedModel) -> None:
        """Compare everyone's shortlist with the store in one read, in the background: on a
        large store most requests are a person's first in the process, and each would
        otherwise read the store once before its answer."""
        assert served.shortlists is not None
        resets = served.freshness.resets
        started = time.perf_counter()
        try:
            # The change feed's position is noted before the read: every later change is heard.
            self._storage.follow_changes()
            keys, interactions, latest_ms = self.requests.signatures()
        except Exception:
            log.exception("verifying shortlists in bulk failed; each person is checked alone")
            return
        same = served.shortlists.matching(keys, interactions, latest_ms)
        taken = served.freshness.verified_in_bulk(same, resets)
        log.info(
            "%d of %d shortlists verified in %.1f s",
            taken,
            len(served.shortlists),
            time.perf_counter() - started,
        )

    def follow_champion(self) -> None:
        """Serve the champion that another process promoted, or whose files it rewrote (an
        erasure), within a tick of this job (``persona serve`` runs it every second)."""
        served = self._served
        if served is None:
            return  # nothing loaded yet: the first request loads the champion
        champion = self.registry.champion()
        if champion is None:
            return
        if champion.version != served.version.version:
            self.reload()
        elif self.registry.stamp(champion) != served.stamp:
            self.refresh()
        with self._lock:
            others = list(self._others.items())
        for name, other in others:  # rewritten (an erasure) or deleted: loaded again if asked
            if self.registry.get(name) is None or self.registry.stamp(other.version) != other.stamp:
                with self._lock:
                    self._others.pop(name, None)

    @property
    def served_version(self) -> str | None:
        served = self._served
        return served.version.version if served else None

    # -- serving -----------------------------------------------------------------------------
    def lookup(self, query: RecommendationQuery) -> RecommendationResult | None:
        """The answer when nothing needs ranking, else None: an identical earlier request's,
        or one from the person's batch shortlist (see ``shortlists``).

        Cheap enough for an event loop (a few short reads), unlike ``recommend``, which may
        rank: run there, the many short answers never wait for a thread. Consent is not read
        again for a cached answer: only personalized answers, computed with consent, are
        cached, and every consent change (by the API or by an event) drops the person's
        answers.
        """
        started = time.perf_counter()
        served = self._serving(query, load=False)
        if served is None:
            return None
        cache_key = _cache_key(served, query)
        cached = self._from_cache(cache_key, query, started)
        if cached is None:
            cached = self._from_shared(served, cache_key, query, started)
        if cached is not None or served.shortlists is None:
            return self._with_new_item(served, query, cached)
        if not self._allowed(query):
            return None
        return self._with_new_item(
            served, query, self._shortlisted(served, cache_key, query, started)
        )

    def _with_new_item(
        self,
        served: ServedModel,
        query: RecommendationQuery,
        result: RecommendationResult | None,
    ) -> RecommendationResult | None:
        """The pipeline's answer with a place for an item newer than the model set
        (``new_items``)."""
        if result is None or result.source != "pipeline":
            return result
        fresh = self.requests.fresh_items()
        if not fresh:
            return result
        assert served.pipeline.data is not None
        return with_new_item(result, query, fresh, served.pipeline.data)

    def _allowed(self, query: RecommendationQuery) -> bool:
        allowed = self._personalization_allowed
        return allowed is None or allowed(query.person_id)

    def _shortlisted(
        self,
        served: ServedModel,
        cache_key: _CacheKey,
        query: RecommendationQuery,
        started: float,
    ) -> RecommendationResult | None:
        ticket = self.cache.ticket()
        versions = self._shared_versions(query)
        found = self._from_shortlist(served, query, started)
        if found is None:
            return None
        profile_key, result = found
        self.cache.put(cache_key, (profile_key,), ticket, result)
        self._share(served, query, profile_key, versions, result)
        return result

    # Answers shared through Redis (``shared_answers``): looked up after this process's own
    # cache, kept for people whose profile key the request names (the versions taken before
    # the read must be those of the key the answer depends on).
    def share_answers(self, shared: SharedAnswers) -> None:
        self._shared = shared

    def _own_keys(self, query: RecommendationQuery) -> tuple[str, str]:
        return user_key(query.person_id), anonymous_key(query.person_id)

    def _from_shared(
        self,
        served: ServedModel,
        cache_key: _CacheKey,
        query: RecommendationQuery,
        started: float,
    ) -> RecommendationResult | None:
        shared = self._shared
        if shared is None or not query.person_id:
            return None
        ticket = self.cache.ticket()  # before the read: a change meanwhile refuses the put
        found = shared.get(_shared_key(shared, served, query))
        if found is None:
            return None
        self.cache.put(cache_key, self._own_keys(query), ticket, found)
        return replace(found, cached=True, timings_ms={"total": _ms_since(started)})

    def _shared_versions(self, query: RecommendationQuery) -> list[int] | None:
        if self._shared is None or not query.person_id:
            return None
        return self._shared.versions(self._own_keys(query))

    def _share(
        self,
        served: ServedModel,
        query: RecommendationQuery,
        profile_key: str | None,
        versions: list[int] | None,
        result: RecommendationResult,
    ) -> None:
        own = self._own_keys(query)
        if self._shared is None or versions is None or profile_key not in own:
            return
        self._shared.put(_shared_key(self._shared, served, query), own, versions, result)

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
            # Stores the new answer (late ones included).
            self._recommend(query, reuse=False, shared=False)
        except Exception:
            log.exception("refreshing an aged answer failed; it is served until it is dropped")
        finally:
            with self._lock:
                self._refreshing.discard(cache_key)
        # Refreshing works at most a share of the time: rankings hold the interpreter lock
        # for much of their work, and requests come first. An answer not refreshed within its
        # grace lifetime is dropped, and its next request ranks as any uncached one.
        time.sleep((time.perf_counter() - started) * REFRESH_PAUSE_FACTOR)

    def recommend(
        self, query: RecommendationQuery, *, looked_up: bool = False
    ) -> RecommendationResult:
        """The person's answer, ranked live when nothing else holds. ``looked_up``: the caller
        asked ``lookup`` just before, so the cache and the shortlist are not tried again."""
        result = self._recommend(query, reuse=not looked_up, shortlist=not looked_up)
        served = self._serving(query, load=False)
        if served is None:
            return result
        return self._with_new_item(served, query, result) or result

    def _recommend(
        self,
        query: RecommendationQuery,
        *,
        reuse: bool,
        shortlist: bool = True,
        shared: bool = True,
    ) -> RecommendationResult:
        """``reuse``: look in the cache for the person's answer; ``shortlist``: try their
        batch shortlist; ``shared``: for a stranger, look for the answer strangers share."""
        started = time.perf_counter()
        if self._served is None:
            try:
                self.reload()
            except Exception:
                log.exception("the model set could not be loaded")
        served = self._serving(query)
        if not self._allowed(query):
            # Without personalization consent nothing about the person is used, history included.
            return self.fallbacks.answer(Shortfall(query, [], served, NO_CONSENT))
        if served is None:
            history = self.requests.history(query.person_id)[1]
            reason = "no trained model set"
            if query.model_version is not None:
                # An experiment's arm is never answered by another model set unannounced.
                reason = f"model set {query.model_version!r} is not stored"
                return self.fallbacks.answer(Shortfall(query, history, self._served, reason))
            return self.fallbacks.answer(Shortfall(query, history, None, reason))
        cache_key = _cache_key(served, query)
        cached = self._from_cache(cache_key, query, started) if reuse else None
        if cached is None and reuse:
            cached = self._from_shared(served, cache_key, query, started)
        if cached is not None:
            return cached
        shortlisted = self._shortlisted(served, cache_key, query, started) if shortlist else None
        if shortlisted is not None:
            return shortlisted
        ticket = self.cache.ticket()
        versions = self._shared_versions(query)
        read_at = served.freshness.now()  # before the history: see ``Freshness.keep_live``
        profile_key, history_ids = self.requests.history(query.person_id)
        # Someone not seen yet gets a profile under one of these keys with their first event.
        people: tuple[str, ...] = (profile_key,) if profile_key else self._own_keys(query)
        if not history_ids:
            newcomer = self._newcomer_answer(served, query, profile_key)
            if newcomer is not None:
                self.cache.put(cache_key, people, ticket, newcomer)
                return newcomer
        if profile_key is None:
            # Someone never seen: nothing of the answer depends on who asks, so every stranger
            # asking the same shares it (a new visitor's first page would otherwise cost a
            # whole ranking). Their first event gives them a profile and an answer of their own.
            cache_key, people = _anyone(cache_key), ()
            cached = self._from_cache(cache_key, query, started) if shared else None
            if cached is not None:
                return cached

        def answer(ranked: Ranked) -> RecommendationResult:
            return RecommendationResult(
                items=ranked_items(served.pipeline, ranked),
                source="pipeline",
                model_version=served.version.version,
                timings_ms={"total": _ms_since(started)},
            )

        def keep_late(done: Future[Ranked]) -> None:
            # A ranking that missed its budget still finishes; its answer serves the next ask.
            if not done.cancelled() and done.exception() is None:
                self.cache.put(cache_key, people, ticket, answer(done.result()))

        future = self._workers.submit(self._rank, served, query, history_ids, profile_key, read_at)
        budget_ms = query.budget_ms if query.budget_ms is not None else self.budget_ms
        remaining = max(0.0, budget_ms / 1000 - (time.perf_counter() - started))
        try:
            ranked = future.result(timeout=remaining)
        except FutureTimeout:
            future.add_done_callback(keep_late)
            reason = "latency budget exceeded"
            return self.fallbacks.answer(Shortfall(query, history_ids, served, reason))
        except Exception:
            log.exception("the pipeline failed; answering from the fallback chain")
            reason = "pipeline failed"
            return self.fallbacks.answer(Shortfall(query, history_ids, served, reason))
        result = answer(ranked)
        self.cache.put(cache_key, people, ticket, result)
        self._share(served, query, profile_key, versions, result)
        return result

    def _from_shortlist(
        self, served: ServedModel, query: RecommendationQuery, started: float
    ) -> tuple[str, RecommendationResult] | None:
        """The answer from the person's batch shortlist (see ``shortlists``), when it is still
        true of them; None to rank them live. A request that names its context (device,
        country, hour) is ranked live: the batch ranked everyone for no context in particular.
        """
        if served.shortlists is None or _has_context(query):
            return None
        try:
            found = self.requests.shortlisted(
                served.pipeline, served.shortlists, served.freshness, query
            )
            if found is None:
                return None
            profile_key, request, shortlist = found
            ranked = served.pipeline.finish(request, shortlist, query.n, explain=True)
        except Exception:
            log.exception("answering from the shortlist failed; ranking live")
            return None
        return profile_key, RecommendationResult(
            items=ranked_items(served.pipeline, ranked),
            source="pipeline",
            model_version=served.version.version,
            timings_ms={"total": _ms_since(started)},
        )

    def _newcomer_answer(
        self, served: ServedModel, query: RecommendationQuery, profile_key: str | None
    ) -> RecommendationResult | None:
        """For someone without history: what is trending in their context, when it is known
        (the request's device and country; a known person's ``country`` trait otherwise)."""
        country = query.country
        if country is None and profile_key is not None:
            with self._storage.read() as uow:
                record = uow.profiles.load([profile_key]).get(profile_key)
            trait = (record.traits or {}).get("country") if record else None
            country = trait if isinstance(trait, str) else None
        unavailable = self.requests.unavailable()
        return newcomer_answer(self.context_trends, served, query, country, unavailable)

    def forget(self, profile_keys: Collection[str]) -> None:
        """Drop cached answers of these people (their events were committed, or erased), and
        stop answering them from their shortlists."""
        served = self._served
        if served is not None:
            served.freshness.changed(profile_keys)
        self.cache.invalidate(profile_keys)

    def reset(self) -> None:
        """A storage reset listener: this process may have missed other processes' changes."""
        served = self._served
        if served is not None:
            served.freshness.unknown()
        self.cache.clear()

    def committed(self, changed: set[str] | None) -> None:
        """A storage commit listener: drop the answers of the people a write changed.

        A write that names no people (configuration, a segment refresh) leaves answers to their
        lifetime; catalog, consent and erasure changes drop theirs themselves.
        """
        if changed:
            self.forget(changed)

    def _rank(
        self,
        served: ServedModel,
        query: RecommendationQuery,
        history_ids: ItemTimes,
        profile_key: str | None = None,
        read_at: int = 0,
    ) -> Ranked:
        """Rank the person live. Without a context, the ranking is kept as their shortlist
        (``Freshness.keep_live``): their next requests, until they act again, are answered
        from it like everyone else's from the batch."""
        pipeline = served.pipeline
        request = self.requests.request(pipeline, query, history_ids, profile_key)
        if profile_key is None or served.shortlists is None or _has_context(query):
            return pipeline.rank([request], query.n, explain=True)[0]
        # Ranked as the batch ranks (unavailable items left out, no filter of this query),
        # then filtered for this query.
        unfiltered = RecommendationQuery(person_id=query.person_id)
        base = replace(request, exclude=self.requests.exclusions(pipeline, unfiltered))
        [shortlist] = pipeline.shortlists([base], SHORTLIST_SIZE)
        live = LiveShortlist(profile_key, read_at, shortlist, base.history)
        served.freshness.keep_live(query.person_id, live)
        kept = pipeline.refilter(shortlist, request)
        if len(kept.items) < query.n:
            return pipeline.rank([request], query.n, explain=True)[0]
        return pipeline.finish(request, kept, query.n, explain=True)

    def sizes(self) -> dict[str, int]:
        """Entries of this service's in-memory tables (``Metrics.watch_tables``)."""
        sizes = {f"cache.{name}": count for name, count in self.cache.sizes().items()}
        sizes["refreshing"] = len(self._refreshing)
        served = self._served
        if served is not None:
            sizes.update(
                (f"shortlists.{name}", count) for name, count in served.freshness.sizes().items()
            )
        return sizes

    def promote(self, version: str) -> tuple[ModelVersion, ModelVersion | None]:
        """Serve a stored model set, whatever its metrics (a promotion by hand): this process
        at once, the others within a second (``follow_champion``). Returns it and the champion
        it replaced."""
        before = self.registry.champion()
        chosen = self.registry.promote_stored(version)
        self.reload()
        return chosen, before

    def rollback(self) -> tuple[ModelVersion, ModelVersion | None]:
        """Serve again the champion before the present one."""
        previous = self.registry.previous_champion()
        if previous is None:
            raise NotFoundError("no earlier champion is stored to roll back to")
        return self.promote(previous.version)

    def catalog_changed(self) -> None:
        """Forget the cached unavailable items and answers (this process changed the catalog)."""
        self.requests.catalog_changed()
        self.cache.clear()
        self._similar.clear()

    # -- everyone at once ----------------------------------------------------------------------
    def similar(
        self,
        item_id: str,
        n: int = 10,
        *,
        exclude: Collection[str] = (),
        category: str | None = None,
        person_id: str | None = None,
    ) -> RecommendationResult:
        """Items like ``item_id``, filtered as recommendations are (unavailable items,
        ``exclude``, outside ``category``) and, for ``person_id``, without what the person
        already has: the same list for everyone else (``RecommendationPipeline.similar``).

        An item the model set does not know yet (written to the catalog after the training)
        is answered with what is trending, and before any training with nothing: ``source``
        and ``reason`` say so."""
        if self._served is None:
            self.reload()
        served = self._served
        if served is None:
            return RecommendationResult([], "none", None, "no trained model set yet")
        pipeline = served.pipeline
        assert pipeline.data is not None
        query = RecommendationQuery(
            person_id=person_id or "", n=n, category=category, exclude=tuple(exclude)
        )
        excluded = self.requests.exclusions(pipeline, query)
        if person_id is not None and self._allowed(query):
            had = [item for item, _ in self.requests.history(person_id)[1]]
            excluded = np.union1d(excluded, pipeline.data.item_indices(had))
        now_s = self._clock.now_ms() // 1000
        index = pipeline.data.item_index(item_id)
        if index is None:
            request = Request(History.empty(), now_s, now_s // 3600 % 24, exclude=excluded)
            found = pipeline.rank_by_source(request, "trending", n)
            ids = pipeline.data.item_ids
            trending = explanation("trending")
            scores = served_scores([v for _, v in found])
            items = [
                RecommendedItem(ids[i], score, ["trending"], trending)
                for (i, _), score in zip(found, scores, strict=True)
            ]
            reason = "the item is newer than the model set: what is trending"
            return RecommendationResult(items, "trending", served.version.version, reason)
        key = (served.version.version, item_id, n, query.exclude, category)
        if person_id is None:
            kept = self._similar.get(key)
            if kept is not None:
                return replace(kept, cached=True)
        ticket = self._similar.ticket()
        ranked = pipeline.similar(index, n, now_s, excluded)
        source = "similar" if all(s != ["trending"] for s in ranked.sources) else "trending"
        result = RecommendationResult(
            ranked_items(pipeline, ranked, probabilities=False),
            source,
            served.version.version,
            personalized=False,
        )
        if person_id is None:
            self._similar.put(key, (), ticket, result)
        return result

    def recommend_all(
        self,
        n: int,
        weights: Mapping[str, float],
        *,
        as_of_last_event: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[str, list[RecommendedItem]]]:
        """A list for every person in the store (``batch.recommend_everyone``)."""
        if self._served is None:
            self.reload()
        served = self._served
        if served is None:
            raise NotEnoughDataError("no trained model set: run `persona train` first")
        return recommend_everyone(
            served,
            self._storage,
            self.requests,
            self._clock,
            n,
            weights,
            personalization_allowed=self._personalization_allowed,
            as_of_last_event=as_of_last_event,
            progress=progress,
        )

    def close(self) -> None:
        self._refresher.shutdown(wait=False, cancel_futures=True)
        self._workers.shutdown(wait=False, cancel_futures=True)


def _trained_ms(version: ModelVersion) -> int:
    """When the model set was made (what the catalog held then, it knows)."""
    created = version.manifest.get("created_at")
    if not isinstance(created, str):
        return 0
    return epoch_ms(datetime.fromisoformat(created))


def _has_context(query: RecommendationQuery) -> bool:
    """A request that names its context is ranked live: shortlists rank for none."""
    return bool(query.device or query.country or query.hour is not None)


def load_pipeline(registry: ModelRegistry, version: ModelVersion) -> RecommendationPipeline:
    config = pipeline_config_from(version.manifest.get("config", {}))
    pipeline = RecommendationPipeline(config)
    ranker = version.manifest.get("ranker") or {}
    calibration = ranker.get("calibration")
    pipeline.restore(
        registry.load_interactions(version),
        registry.load_source_arrays(version),
        registry.load_ranker_text(version),
        (float(calibration[0]), float(calibration[1])) if calibration else None,
    )
    return pipeline


def pipeline_config_from(raw: dict[str, object]) -> PipelineConfig:
    candidates = raw.get("candidates")
    if isinstance(candidates, dict):
        return PipelineConfig(candidates={str(k): int(v) for k, v in candidates.items()})
    return PipelineConfig()
