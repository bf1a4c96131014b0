"""Rule segments: definitions, memberships kept current in real time, and scheduled refresh.

Two paths keep memberships right, and both evaluate the same parsed rule:

- right after ingest stores a batch (same transaction), every touched profile is evaluated in
  Python against every rule segment (``evaluate``), from its state and the events its rules can
  see, loaded in one query; only memberships that change are written;
- ``refresh`` evaluates each rule for everyone at once in the store (one SQL query,
  ``storage.sql.segment_rules``) and applies the difference; it is what lets windows expire
  as time passes, and traits changes take effect.

Segments that refer to segments are evaluated in dependency order, so a reference sees the
membership decided just before it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from persona.cache import Refreshed
from persona.clock import DAY_MS, Clock
from persona.errors import ConflictError, InvalidRequestError, InvalidRuleError, NotFoundError
from persona.ingest.service import AppliedBatch
from persona.rules import (
    SEGMENT_NAME,
    Comparison,
    Membership,
    Rule,
    SegmentRef,
    event_queries,
    parse_rule,
    references,
    walk,
)
from persona.rules import Field as FieldRef
from persona.segments.evaluate import Predicate, ProfileFacts, compile_rule
from persona.storage.protocols import SegmentStore, Storage, UnitOfWork
from persona.storage.records import MembershipRecord, SegmentRecord

RULE = "rule"
FAVOURITES_TTL_SECONDS = 60.0
FAVOURITES_WINDOW_MS = 30 * DAY_MS
FAVOURITES_PER_SEGMENT = 200


class SegmentOwnedByModelError(ConflictError):
    """A segment that a model keeps (the cluster model's ``cluster_<n>``) cannot be deleted."""

    status, code, title = 409, "segment_owned_by_model", "Segment kept by a model"


def _shares(counts: Mapping[str, int], limit: int) -> list[tuple[str, float]]:
    total = sum(counts.values())
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [(item, n / total) for item, n in best]


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


@dataclass(frozen=True, slots=True)
class Preview:
    size: int
    sample: list[str]


@dataclass(slots=True)
class RefreshSummary:
    """People who entered and left each segment in one refresh."""

    now_ms: int
    changes: dict[str, tuple[int, int]] = field(default_factory=dict)


def dependency_order(rules: Mapping[str, Rule]) -> list[str]:
    """Names ordered so that every segment comes after the segments it refers to."""
    graph = {name: references(rule) & rules.keys() for name, rule in rules.items()}
    return list(TopologicalSorter(graph).static_order())


class SegmentService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._lock = threading.Lock()
        self._plan: RealTimePlan | None = None
        self._favourites = Refreshed(self._read_favourites, FAVOURITES_TTL_SECONDS)

    def _audited(
        self, uow: UnitOfWork, actor: str, action: str, name: str, details: dict[str, Any]
    ) -> None:
        """Audit a definition change in the transaction that makes it: never the rule or the
        description, which may quote personal values."""
        uow.audit.append(self._clock.now_ms(), actor, action, f"segment:{name}", details)

    # -- definitions ---------------------------------------------------------------------------
    def create(
        self, name: str, rule_text: str, description: str = "", *, actor: str = "cli"
    ) -> SegmentRecord:
        """Define a segment and compute its first members; 409 when the name is taken."""
        _check_name(name)
        rule = parse_rule(rule_text)
        now = self._clock.now_ms()
        with self._storage.write() as uow:
            store = uow.segments
            definitions = {d.name: d for d in store.definitions()}
            if name in definitions:
                raise ConflictError(f"a segment named {name!r} exists")
            _check_references(name, rule, definitions)
            record = SegmentRecord(name, RULE, rule_text, description, now, now)
            store.insert(record)
            self._recompute(uow, [name], {**definitions, name: record}, now)
            self._audited(uow, actor, "segment.create", name, {"kind": RULE})
        return record

    def update(
        self, name: str, rule_text: str | None, description: str | None, *, actor: str = "cli"
    ) -> SegmentRecord:
        """Change the rule and/or the description; members (and dependents') are recomputed."""
        now = self._clock.now_ms()
        rule = parse_rule(rule_text) if rule_text is not None else None
        with self._storage.write() as uow:
            store = uow.segments
            definitions = {d.name: d for d in store.definitions()}
            current = definitions.get(name)
            if current is None:
                raise NotFoundError(f"no segment named {name!r}")
            if rule is not None:
                if current.kind != RULE:
                    raise InvalidRequestError(f"segment {name!r} is not defined by a rule")
                _check_references(name, rule, definitions)
            record = SegmentRecord(
                name,
                current.kind,
                rule_text if rule_text is not None else current.rule,
                description if description is not None else current.description,
                current.created_at_ms,
                now,
            )
            store.replace(record)
            if rule is not None:
                definitions[name] = record
                self._recompute(uow, _with_dependents(name, definitions), definitions, now)
            changed = {
                "rule": record.rule != current.rule,
                "description": record.description != current.description,
            }
            self._audited(uow, actor, "segment.update", name, {"changed": changed})
        return record

    def delete(self, name: str, *, actor: str = "cli") -> None:
        """Remove a rule segment and its membership history; 409 while other segments use it,
        and for a segment a model keeps (a cluster)."""
        with self._storage.write() as uow:
            store = uow.segments
            definitions = {d.name: d for d in store.definitions()}
            if name not in definitions:
                raise NotFoundError(f"no segment named {name!r}")
            if definitions[name].kind != RULE:
                raise SegmentOwnedByModelError(
                    f"segment {name!r} is a cluster, kept by the cluster model: it cannot be"
                    " deleted. A training that no longer finds it (with fewer clusters, e.g. a"
                    " lower PERSONA_CLUSTER_K_MAX) empties it and marks it retired; rules that"
                    " name it stay valid."
                )
            users = sorted(
                other
                for other, d in definitions.items()
                if other != name and d.rule and name in references(parse_rule(d.rule))
            )
            if users:
                raise ConflictError(f"segment {name!r} is used by {', '.join(users)}")
            store.delete(name)
            self._audited(uow, actor, "segment.delete", name, {})

    def get(self, name: str) -> SegmentRecord:
        with self._storage.read() as uow:
            record = uow.segments.get(name)
        if record is None:
            raise NotFoundError(f"no segment named {name!r}")
        return record

    def definitions(self) -> list[SegmentRecord]:
        with self._storage.read() as uow:
            return uow.segments.definitions()

    def size(self, name: str) -> int:
        with self._storage.read() as uow:
            return uow.segments.member_count(name)

    # -- reading memberships -------------------------------------------------------------------
    def preview(self, rule_text: str, sample_size: int = 10) -> Preview:
        """How many people a rule selects now, and a few of them, without saving anything."""
        rule = parse_rule(rule_text)
        now = self._clock.now_ms()
        with self._storage.read() as uow:
            _check_references(None, rule, {d.name: d for d in uow.segments.definitions()})
            total, sample = uow.segments.preview(rule, now, sample_size)
        return Preview(total, sample)

    def members(self, name: str, *, after: str | None, limit: int) -> list[MembershipRecord]:
        with self._storage.read() as uow:
            store = uow.segments
            if store.get(name) is None:
                raise NotFoundError(f"no segment named {name!r}")
            return store.members(name, after=after, limit=limit)

    def memberships(self, profile_key: str) -> set[str]:
        """The segments a profile is in now (for the recommendation pipeline and placements)."""
        with self._storage.read() as uow:
            found = uow.segments.open_memberships_of([profile_key])
        return found.get(profile_key, set())

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

    def profile_facet(self, uow: UnitOfWork, profile_key: str) -> dict[str, list[str]]:
        """The ``segments`` field of a profile read, from the read's own transaction."""
        return {"segments": uow.segments.open_segments_of(profile_key)}

    def history(self, profile_key: str) -> list[MembershipRecord]:
        """Every stay of a profile in a segment, open or closed, oldest first."""
        with self._storage.read() as uow:
            return uow.segments.history(profile_key)

    # -- batch ---------------------------------------------------------------------------------
    def refresh(self, now_ms: int | None = None) -> RefreshSummary:
        """Re-evaluate every rule segment for everyone, in dependency order; apply the changes.

        Each segment is one write transaction, so ingest waits at most for one rule's query.
        """
        now = self._clock.now_ms() if now_ms is None else now_ms
        summary = RefreshSummary(now)
        with self._storage.read() as uow:
            definitions = {d.name: d for d in uow.segments.definitions()}
        rules = _rules(definitions)
        for name in dependency_order(rules):
            with self._storage.write() as uow:
                store = uow.segments
                record = store.get(name)
                if record is None or record.rule is None:
                    continue  # deleted meanwhile
                summary.changes[name] = self._apply_batch(uow, name, parse_rule(record.rule), now)
        return summary

    def _recompute(
        self,
        uow: UnitOfWork,
        names: Sequence[str],
        definitions: Mapping[str, SegmentRecord],
        now: int,
    ) -> None:
        rules = _rules(definitions)
        wanted = set(names)
        for name in dependency_order(rules):
            if name in wanted:
                self._apply_batch(uow, name, rules[name], now)

    def _apply_batch(self, uow: UnitOfWork, name: str, rule: Rule, now: int) -> tuple[int, int]:
        store = uow.segments
        matched = store.matching(rule, now)
        current = store.open_members(name)
        entered, exited = matched - current, current - matched
        store.enter(name, entered, now)
        store.exit(name, exited, now)
        return len(entered), len(exited)

    # -- real time -----------------------------------------------------------------------------
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
        rules = _rules({d.name: d for d in definitions})
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


def _rules(definitions: Mapping[str, SegmentRecord]) -> dict[str, Rule]:
    return {
        name: parse_rule(d.rule)
        for name, d in definitions.items()
        if d.kind == RULE and d.rule is not None
    }


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


def _check_name(name: str) -> None:
    if not SEGMENT_NAME.fullmatch(name):
        raise InvalidRequestError(
            f"{name!r} is not a segment name: 1 to 64 of a-z, 0-9, _ and -, starting with a"
            " letter or digit"
        )


def _check_references(
    name: str | None, rule: Rule, definitions: Mapping[str, SegmentRecord]
) -> None:
    """Refuse references to unknown segments, and (for a saved segment) cycles."""
    for node in walk(rule):
        if isinstance(node, SegmentRef) and node.name not in definitions and node.name != name:
            where = node.position
            raise InvalidRuleError(
                f"unknown segment {node.name!r} (line {where.line}, column {where.column})",
                extra={"line": where.line, "column": where.column},
            )
    if name is None:
        return
    rules = _rules(definitions)
    rules[name] = rule
    try:
        dependency_order(rules)
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1]) if len(exc.args) > 1 else name
        raise InvalidRuleError(f"segments would refer to each other in a cycle: {cycle}") from None


def _with_dependents(name: str, definitions: Mapping[str, SegmentRecord]) -> list[str]:
    """``name`` and every segment that refers to it, directly or not."""
    rules = _rules(definitions)
    found = {name}
    changed = True
    while changed:
        changed = False
        for other, rule in rules.items():
            if other not in found and references(rule) & found:
                found.add(other)
                changed = True
    return sorted(found)
