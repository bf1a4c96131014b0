"""Placements and decisions: configuration with versions, choosing variants, attribution.

A decisions request runs in three steps so that no transaction waits on the recommendation
pipeline: the placements (read at most once a second), the person's merged id and segments (from
the profile read, cached until the person changes) and the bandit counts (a short read) are
gathered; the variants are chosen in memory (the recommendation pipeline, when a placement asks
for it, too); one write transaction logs every decision, and only after its commit does the
caller get the answer.

Attribution of what followed a decision is the ingest listener of ``attribution``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import numpy as np

from persona.cache import Refreshed
from persona.clock import Clock
from persona.decide.assignment import (
    HOLDOUT_SALT,
    ExperimentSplit,
    assign,
    split_of,
    unit_uniform,
)
from persona.decide.attribution import Attribution
from persona.decide.bandits import DEFAULT_BUCKET, ThompsonPolicy
from persona.decide.log import DecisionLogWriter
from persona.decide.placements import (
    ACTIVE,
    ARM,
    HOLDOUT,
    OUTSIDE,
    PlacementConfigs,
)
from persona.decide.schema import (
    EXPERIMENT_POLICIES,
    RECOMMENDATIONS_VARIANT,
    DecisionRequest,
    PlacementBody,
    VariantConfig,
)
from persona.decide.settings import DecisionSettings
from persona.decide.targeting import RequestFacts, bucket_of, matches
from persona.errors import ConflictError, UnknownPlacementError
from persona.identity import anonymous_key, user_key
from persona.ids import uuid7_hex
from persona.profiles.service import ProfileService
from persona.recommend import BusinessRule
from persona.recommend.answer import RecommendationQuery, RecommendationResult
from persona.recommend.service import RecommendationService
from persona.storage.protocols import DecisionStore, Storage, UnitOfWork
from persona.storage.records import (
    DecisionRecord,
    PlacementRecord,
    VersionRecord,
)

PLACEMENTS_TTL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    placement: str
    decision_id: str
    variant: str | None
    payload: dict[str, Any] | None
    policy: str
    version: int
    reason: str
    holdout: bool


@dataclass(slots=True)
class _Choice:
    variant: str | None
    cohort: str
    reason: str
    holdout: bool = False
    bucket: str = DEFAULT_BUCKET
    payload: dict[str, Any] | None = None  # set for recommendations; else the variant's


@dataclass(slots=True)
class _Plan:
    """A decisions request with its facts gathered (see ``DecisionService._plan``)."""

    now_ms: int
    unit: str
    found: dict[str, PlacementRecord]
    configs: dict[str, PlacementBody]
    choices: dict[str, _Choice]
    to_recommend: list[str]  # personalized recommendations placements, chosen afterwards
    logged: bool = True  # False for an erased person: answered, never stored
    # `ab` and `thompson` placements whose arms are lists: chosen, their items still to rank
    arm_lists: list[str] = field(default_factory=list)

    def queries(self, request: DecisionRequest) -> Iterator[tuple[str, RecommendationQuery]]:
        """The recommendation query of every placement that still needs its items."""
        for name in self.to_recommend:
            yield name, _recommendation_query(request, self.configs[name])
        for name in self.arm_lists:
            config = self.configs[name]
            variant = config.variant(self.choices[name].variant)
            model = variant.model_version if variant is not None else None
            yield name, _recommendation_query(request, config, model)

    def answered(self, name: str, result: RecommendationResult) -> None:
        if name in self.arm_lists:  # the arm stays chosen: its payload is the list
            self.choices[name].payload = _list_payload(result)
        else:
            self.choices[name] = _recommended(result, self.configs[name])


STATUS_ACTIONS = {"paused": "placement.pause", "active": "placement.resume"}


class DecisionService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        profiles: ProfileService,
        recommendations: RecommendationService,
        settings: DecisionSettings,
        *,
        purchase_types: Iterable[str] = ("purchase",),
        seed: int | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._profiles = profiles
        self._recommendations = recommendations
        self.settings = settings
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self.configs = PlacementConfigs()
        self.attribution = Attribution(settings, purchase_types, self.configs)
        self._splits: dict[tuple[str, int], ExperimentSplit] = {}
        self._log = DecisionLogWriter(storage)
        self._is_erased: Callable[[str], bool] = lambda profile_key: False
        self._scrub: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda context: context
        self._answered: Callable[[str, bool], None] = lambda source, cached: None
        # Changes made through this process show at once, those of another within the second.
        self._placements = Refreshed(self._read_placements, PLACEMENTS_TTL_SECONDS)

    def close(self) -> None:
        """Commit the decisions still pending and stop the log's writer thread."""
        self._log.close()

    def set_context_scrub(self, scrub: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Let privacy transform the personal values of a request's context (an e-mail address
        in its page) before the decision log stores it."""
        self._scrub = scrub

    def set_answer_counter(self, answered: Callable[[str, bool], None]) -> None:
        """Count each recommendation answer a placement used: ``answered(source, cached)``
        (the metrics tell pipeline answers from fallbacks, per route)."""
        self._answered = answered

    def set_erasure_check(self, is_erased: Callable[[str], bool]) -> None:
        """Let privacy say whether a profile key was erased: such a person still gets an answer
        (every placement's fallback), and nothing about the request is stored."""
        self._is_erased = is_erased

    def _audited(self, uow: UnitOfWork, actor: str, action: str, record: PlacementRecord) -> None:
        """Audit a configuration change in the transaction that makes it: the version and policy
        only, since variant payloads and targeting may quote personal values."""
        details = {"version": record.version, "policy": record.policy}
        uow.audit.append(self._clock.now_ms(), actor, action, f"placement:{record.name}", details)

    # -- configuration -------------------------------------------------------------------------
    def create(self, name: str, config: PlacementBody, *, actor: str = "cli") -> PlacementRecord:
        now = self._clock.now_ms()
        with self._storage.write() as uow:
            store = uow.decisions
            if store.placements([name]):
                raise ConflictError(f"a placement named {name!r} exists")
            store.create(name, config.policy, config.model_dump(mode="json"), now)
            record = store.placements([name])[name]
            self._audited(uow, actor, "placement.create", record)
        self._placements_changed()
        return record

    def update(self, name: str, config: PlacementBody, *, actor: str = "cli") -> PlacementRecord:
        """A new version with ``config``; it decides from now on (ab units are reshuffled)."""
        now = self._clock.now_ms()
        with self._storage.write() as uow:
            store = uow.decisions
            current = self._require(store, name)
            store.add_version(
                name, current.version + 1, config.policy, config.model_dump(mode="json"), now
            )
            record = store.placements([name])[name]
            self._audited(uow, actor, "placement.update", record)
        self._placements_changed()
        return record

    def set_status(self, name: str, status: str, *, actor: str = "cli") -> PlacementRecord:
        """Pause or resume; the version stays, so assignments do not change."""
        now = self._clock.now_ms()
        with self._storage.write() as uow:
            store = uow.decisions
            self._require(store, name)
            store.set_status(name, status, now)
            record = store.placements([name])[name]
            self._audited(uow, actor, STATUS_ACTIONS.get(status, "placement.status"), record)
        self._placements_changed()
        return record

    def get(self, name: str) -> PlacementRecord:
        with self._storage.read() as uow:
            return self._require(uow.decisions, name)

    def all(self) -> list[PlacementRecord]:
        with self._storage.read() as uow:
            return list(uow.decisions.placements().values())

    def model_versions_in_use(self) -> set[str]:
        """The stored model sets that placements' arms are served from (a paused placement's
        too: it may be resumed)."""
        found = set()
        for record in self.all():
            config = self.configs.config_of(record.name, record.version, record.config)
            found |= {v.model_version for v in config.variants if v.model_version}
        return found

    def versions(self, name: str) -> tuple[PlacementRecord, list[VersionRecord]]:
        with self._storage.read() as uow:
            store = uow.decisions
            return self._require(store, name), store.versions(name)

    def version(self, name: str, version: int) -> VersionRecord:
        with self._storage.read() as uow:
            store = uow.decisions
            found = store.version(name, version)
        if found is None:
            raise UnknownPlacementError(f"placement {name!r} has no version {version}")
        return found

    def recommendation_rules(self, name: str) -> tuple[BusinessRule, ...]:
        """The business rules of placement ``name``'s recommendations (its current version),
        for a recommendation request that names it; none for an unknown placement."""
        found = self._current([name]).get(name)
        if found is None:
            return ()
        config = self.configs.config_of(name, found.version, found.config)
        if config.recommendations is None:
            return ()
        return config.recommendations.business_rules

    def bandit_state(self, name: str, version: int) -> dict[str, dict[str, list[float]]]:
        """``{bucket: {variant: [successes, failures]}}`` of a thompson placement's version."""
        with self._storage.read() as uow:
            return uow.decisions.all_arm_counts(name, version)

    def _current(self, names: Sequence[str]) -> dict[str, PlacementRecord]:
        """The current version and status of ``names``; a name not seen yet is looked up."""
        known = self._placements.get()
        if any(n not in known for n in names):
            self._placements.forget()
            known = self._placements.get()
        return {n: known[n] for n in names if n in known}

    def _read_placements(self) -> dict[str, PlacementRecord]:
        with self._storage.read() as uow:
            return uow.decisions.placements()

    def _placements_changed(self) -> None:
        self._placements.forget()

    @staticmethod
    def _require(store: DecisionStore, name: str) -> PlacementRecord:
        found = store.placements([name]).get(name)
        if found is None:
            raise UnknownPlacementError(f"no placement named {name!r}")
        return found

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, request: DecisionRequest) -> list[Decision]:
        """Choose and log; returns once the decisions are committed (CLI, tests)."""
        plan = self._plan(request)
        for name, query in plan.queries(request):
            result = self._recommendations.lookup(query) or self._recommendations.recommend(
                query, looked_up=True
            )
            self._answered(result.source, result.cached)
            plan.answered(name, result)
        decisions, records = self._logged(request, plan)
        if plan.logged:
            self._log.write(records)
        return decisions

    async def decide_async(self, request: DecisionRequest) -> list[Decision]:
        """``decide`` for the event loop: only the pipeline and the commit leave it.

        The read transaction and the choices cost a fraction of a millisecond, less than the
        hop to a worker thread (which then competes with the loop for the interpreter lock).
        A cached recommendation answer is taken on the loop; an uncached one is ranked in a
        worker thread. The log's writer thread commits the records, with those of concurrent
        requests (group commit), while the request waits on a future.
        """
        plan = self._plan(request)
        for name, query in plan.queries(request):
            result = self._recommendations.lookup(query)
            if result is None:
                result = await anyio.to_thread.run_sync(self._recommendations.recommend, query)
            self._answered(result.source, result.cached)
            plan.answered(name, result)
        decisions, records = self._logged(request, plan)
        if plan.logged:
            await self._log.write_async(records)
        return decisions

    def _plan(self, request: DecisionRequest) -> _Plan:
        """Every placement chosen except the personalized recommendations, from the current
        placements, the person's unit and segments, and the bandit counts."""
        now = self._clock.now_ms()
        cap = self.settings.page_cap if request.page_cap is None else request.page_cap
        found = self._current(request.placements)
        missing = [n for n in request.placements if n not in found]
        if missing:
            raise UnknownPlacementError(
                f"no placement named {missing[0]!r}", extra={"placements": missing}
            )
        configs = {n: self.configs.config_of(n, r.version, r.config) for n, r in found.items()}
        unit, segments, known = self._person(request)
        if not known and self._is_erased(unit):  # only people without a profile can be erased
            erased = {n: _Choice(c.fallback, OUTSIDE, "subject_erased") for n, c in configs.items()}
            return _Plan(now, unit, found, configs, erased, [], logged=False)
        facts = RequestFacts.of(request.context, segments, now)
        choices: dict[str, _Choice] = {}
        for index, name in enumerate(request.placements):
            record, config = found[name], configs[name]
            if record.status != ACTIVE:
                choices[name] = _Choice(config.fallback, OUTSIDE, "paused")
            elif index >= cap:
                choices[name] = _Choice(config.fallback, OUTSIDE, "page_cap")
            elif unit_uniform(name, record.version, unit, salt=HOLDOUT_SALT) < config.holdout_share:
                choices[name] = _Choice(config.fallback, HOLDOUT, "holdout", holdout=True)
            elif config.policy == "rules":
                choices[name] = _by_rules(config, facts)
            elif config.policy == "ab":
                choices[name] = self._by_split(name, record.version, config, facts, unit)
            elif config.policy == "thompson":
                choices[name] = self._by_bandit(name, record.version, config, facts)
        to_recommend = [n for n in request.placements if n not in choices]
        arm_lists = [
            n
            for n in request.placements
            if configs[n].policy in EXPERIMENT_POLICIES
            and configs[n].recommendations is not None
            and choices[n].variant
        ]
        return _Plan(now, unit, found, configs, choices, to_recommend, arm_lists=arm_lists)

    def _logged(
        self, request: DecisionRequest, plan: _Plan
    ) -> tuple[list[Decision], list[DecisionRecord]]:
        """The answer's decisions and the log's records, one of each per placement."""
        decisions = []
        records = []
        context = request.context.model_dump(exclude_none=True) or None
        if context and plan.logged:
            context = self._scrub(context)
        for name in request.placements:
            record, config, choice = plan.found[name], plan.configs[name], plan.choices[name]
            decision_id = uuid7_hex(plan.now_ms)
            payload = choice.payload
            if payload is None and choice.variant is not None:
                variant = config.variant(choice.variant)
                payload = variant.payload if variant is not None else None
            decisions.append(
                Decision(
                    name,
                    decision_id,
                    choice.variant,
                    payload,
                    config.policy,
                    record.version,
                    choice.reason,
                    choice.holdout,
                )
            )
            records.append(
                DecisionRecord(
                    decision_id,
                    name,
                    record.version,
                    choice.variant,
                    plan.unit,
                    context,
                    config.policy,
                    choice.cohort,
                    choice.holdout,
                    choice.bucket,
                    choice.reason[:64],
                    plan.now_ms,
                )
            )
        return decisions, records

    def _person(self, request: DecisionRequest) -> tuple[str, frozenset[str], bool]:
        """The unit (the merged profile key), the person's segments now, and whether they have
        a profile.

        Both come from the profile read, which is cached until the person changes: a
        decision then reads nothing from the database but the bandit counts it needs.
        """
        if request.user_id is not None:
            unit = user_key(request.user_id)
            found = self._profiles.key_and_segments(request.user_id)
            if found is None or found[0] != unit:
                return unit, frozenset(), False  # not known yet (or only as an anonymous id)
            return unit, frozenset(found[1]), True
        anonymous_id = request.anonymous_id or ""
        found = self._profiles.key_and_segments(anonymous_id)
        if found is None:
            return anonymous_key(anonymous_id), frozenset(), False
        return found[0], frozenset(found[1]), True

    def _by_split(
        self, name: str, version: int, config: PlacementBody, facts: RequestFacts, unit: str
    ) -> _Choice:
        key = (name, version)
        split = self._splits.get(key)
        if split is None:
            split = self._splits[key] = split_of(
                name, version, [(v.id, v.weight) for v in config.variants]
            )
        chosen = assign(split, unit).variant
        variant = config.variant(chosen)
        if variant is None or not matches(variant.targeting, facts):
            return _Choice(config.fallback, OUTSIDE, "not_targeted")
        return _Choice(chosen, ARM, "assigned")

    def _by_bandit(
        self,
        name: str,
        version: int,
        config: PlacementBody,
        facts: RequestFacts,
    ) -> _Choice:
        settings = config.thompson
        assert settings is not None
        eligible = [v.id for v in config.variants if matches(v.targeting, facts)]
        if not eligible:
            return _Choice(config.fallback, OUTSIDE, "no_match")
        bucket = bucket_of(settings, facts)
        with self._storage.read() as uow:
            counts = uow.decisions.arm_counts(name, version, bucket)
        with self._rng_lock:
            if settings.min_exploration > 0 and self._rng.random() < settings.min_exploration:
                chosen = eligible[int(self._rng.integers(len(eligible)))]
                return _Choice(chosen, ARM, "explore", bucket=bucket)
            policy = ThompsonPolicy.from_dict(
                {
                    "policy": ThompsonPolicy.name,
                    "arms": eligible,
                    "buckets": {
                        bucket: {arm: list(counts.get(arm, (0.0, 0.0))) for arm in eligible}
                    },
                },
                self._rng,
            )
            chosen = policy.choose(bucket)
        return _Choice(chosen, ARM, "exploit", bucket=bucket)


def _recommendation_query(
    request: DecisionRequest, config: PlacementBody, model_version: str | None = None
) -> RecommendationQuery:
    """The pipeline's query for a placement's list (``model_version``: an arm's model set).

    It carries no per-request budget, so that identical requests share the recommendation
    service's cached answer (dropped when the person's events are committed).
    """
    settings = config.recommendations
    assert settings is not None
    return RecommendationQuery(
        person_id=request.user_id or request.anonymous_id or "",
        n=settings.n,
        device=request.context.device,
        country=request.context.country,
        hour=request.context.hour,
        category=settings.category,
        exclude=tuple(settings.exclude),
        rules=settings.business_rules,
        model_version=model_version,
    )


def _list_payload(result: RecommendationResult) -> dict[str, Any]:
    return {
        "items": [{"item_id": i.item_id, "score": i.score} for i in result.items],
        "source": result.source,
        "reason": result.reason,
        "model_version": result.model_version,
    }


def _recommended(result: RecommendationResult, config: PlacementBody) -> _Choice:
    """The choice of a ``recommendations`` placement: the pipeline's items, or the fallback."""
    if not result.items and config.fallback is not None:
        return _Choice(config.fallback, OUTSIDE, "no_items")
    payload = _list_payload(result)
    reason = result.source if result.reason is None else f"{result.source}: {result.reason}"
    return _Choice(RECOMMENDATIONS_VARIANT, ARM, reason, payload=payload)


def _by_rules(config: PlacementBody, facts: RequestFacts) -> _Choice:
    """The matching variant of highest priority; ties go to the one listed first."""
    best: VariantConfig | None = None
    for variant in config.variants:
        if matches(variant.targeting, facts) and (best is None or variant.priority > best.priority):
            best = variant
    if best is None:
        return _Choice(config.fallback, OUTSIDE, "no_match")
    return _Choice(best.id, ARM, "matched")
