"""Memberships kept current in real time: right after ingest stores a batch, in the same
transaction, every touched profile is evaluated in Python against every rule segment
(``evaluate``), from the state ingest folded and the events its rules can see, loaded in one
query; only memberships that change are written."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from persona.ingest.service import AppliedBatch
from persona.rules import Comparison, Membership, Rule, event_queries, walk
from persona.rules import Field as FieldRef
from persona.segments.definitions import dependency_order, rules_of
from persona.segments.evaluate import Predicate, ProfileFacts, compile_rule
from persona.storage.protocols import SegmentStore, UnitOfWork


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    name: str
    rule: Rule
    predicate: Predicate


@dataclass(frozen=True, slots=True)
class RealTimePlan:
    """The active rule segments in dependency order, and what their rules need to read."""

    signature: tuple[tuple[str, str, str | None], ...]
    segments: tuple[CompiledSegment, ...]
    event_types: tuple[str, ...]
    longest_window_ms: int | None  # None: some rule looks at all time
    uses_categories: bool
    uses_scores: bool = False


class RealTimeSegments:
    """The ingest listener that keeps rule segments current (``on_events``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: RealTimePlan | None = None

    def on_events(self, uow: UnitOfWork, applied: AppliedBatch) -> None:
        """Ingest listener: re-decide every rule segment for the profiles a batch touched,
        from the states it folded."""
        store = uow.segments
        plan = self._real_time_plan(store)
        if applied.merged_away:
            store.exit_all(applied.merged_away, applied.now_ms)
        touched = applied.touched
        if not plan.segments or not touched:
            return
        profiles = {k: (applied.documents[k], applied.traits.get(k)) for k in touched}
        self._evaluate_profiles(uow, store, plan, profiles, applied.now_ms)

    def _evaluate_profiles(
        self,
        uow: UnitOfWork,
        store: SegmentStore,
        plan: RealTimePlan,
        profiles: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any] | None]],
        now_ms: int,
    ) -> None:
        """Decide every rule segment for ``profiles`` (key -> (state, traits))."""
        events = {}
        if plan.event_types:
            since = None if plan.longest_window_ms is None else now_ms - plan.longest_window_ms
            events = uow.events.recent_events(profiles.keys(), since, plan.event_types)
        categories: dict[str, list[str]] = {}
        if plan.uses_categories:
            item_ids = {e.item_id for evs in events.values() for e in evs if e.item_id}
            categories = uow.catalog.categories_for(list(item_ids))
        current = store.open_memberships_of(profiles.keys())
        scores = uow.predictions.scores_by_profile(profiles.keys()) if plan.uses_scores else {}
        entered: dict[str, list[str]] = {}
        exited: dict[str, list[str]] = {}
        for key, (state, traits) in profiles.items():
            facts = ProfileFacts(
                key,
                state,
                traits,
                events.get(key, ()),
                set(current.get(key, ())),
                categories,
                scores.get(key, {}),
            )
            for segment in plan.segments:
                inside = segment.predicate(facts, now_ms)
                if inside != (segment.name in facts.segments):
                    if inside:
                        facts.segments.add(segment.name)
                        entered.setdefault(segment.name, []).append(key)
                    else:
                        facts.segments.discard(segment.name)
                        exited.setdefault(segment.name, []).append(key)
        for name, members in entered.items():
            store.enter(name, members, now_ms)
        for name, members in exited.items():
            store.exit(name, members, now_ms)

    def _real_time_plan(self, store: SegmentStore) -> RealTimePlan:
        definitions = store.definitions()
        signature = tuple((d.name, d.kind, d.rule) for d in definitions)
        with self._lock:
            if self._plan is not None and self._plan.signature == signature:
                return self._plan
        rules = rules_of({d.name: d for d in definitions})
        ordered = [
            CompiledSegment(n, rules[n], compile_rule(rules[n])) for n in dependency_order(rules)
        ]
        queries = [q for s in ordered for q in event_queries(s.rule)]
        windows = [q.window_ms for q in queries]
        plan = RealTimePlan(
            signature=signature,
            segments=tuple(ordered),
            event_types=tuple(sorted({q.event_type for q in queries})),
            longest_window_ms=None if None in windows else max(windows, default=0),  # type: ignore[type-var]
            uses_categories=any(q.category is not None for q in queries),
            uses_scores=any(_reads_scores(s.rule) for s in ordered),
        )
        with self._lock:
            self._plan = plan
        return plan


def _reads_scores(rule: Rule) -> bool:
    """Whether the rule reads ``profile.scores.<name>`` (the real-time path then loads them)."""
    for node in walk(rule):
        target = (
            node.left
            if isinstance(node, Comparison)
            else node.target
            if isinstance(node, Membership)
            else None
        )
        if isinstance(target, FieldRef) and target.root == "profile" and target.path[0] == "scores":
            return True
    return False
