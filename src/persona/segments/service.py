"""Rule segments: definitions, reading memberships, and scheduled refresh.

Two paths keep memberships right, and both evaluate the same parsed rule:

- right after ingest stores a batch, in its transaction (``realtime.RealTimeSegments``);
- ``refresh`` evaluates each rule for everyone at once in the store (one SQL query,
  ``storage.sql.segment_rules``) and applies the difference; it is what lets windows expire
  as time passes, and traits changes take effect.

Segments that refer to segments are evaluated in dependency order, so a reference sees the
membership decided just before it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from persona.clock import Clock
from persona.errors import ConflictError, InvalidRequestError, NotFoundError
from persona.rules import (
    Rule,
    parse_rule,
    references,
)
from persona.segments.definitions import (
    RULE,
    check_name,
    check_references,
    dependency_order,
    rules_of,
    with_dependents,
)
from persona.segments.favourites import SegmentFavourites
from persona.segments.realtime import RealTimeSegments
from persona.segments.slots import Slots
from persona.storage.protocols import Storage, UnitOfWork
from persona.storage.records import MembershipRecord, SegmentRecord

Matching = Callable[[Rule, int], set[str]]
"""Who matches a rule at a moment (profile keys): the store's query, or another engine's."""

PREVIEW_SLOTS = 2  # of the server's worker threads (8 by default)
PREVIEW_TIMEOUT_MS = 2_000


class SegmentOwnedByModelError(ConflictError):
    """A segment that a model keeps (the cluster model's ``cluster_<n>``) cannot be deleted."""

    status, code, title = 409, "segment_owned_by_model", "Segment kept by a model"


@dataclass(frozen=True, slots=True)
class Preview:
    size: int
    sample: list[str]


@dataclass(slots=True)
class RefreshSummary:
    """People who entered and left each segment in one refresh."""

    now_ms: int
    changes: dict[str, tuple[int, int]] = field(default_factory=dict)


class SegmentService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self.real_time = RealTimeSegments()
        self.favourites = SegmentFavourites(storage, clock)
        self.preview_slots = Slots(PREVIEW_SLOTS, "previews")

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
        check_name(name)
        rule = parse_rule(rule_text)
        now = self._clock.now_ms()
        with self._storage.write() as uow:
            store = uow.segments
            definitions = {d.name: d for d in store.definitions()}
            if name in definitions:
                raise ConflictError(f"a segment named {name!r} exists")
            check_references(name, rule, definitions)
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
                check_references(name, rule, definitions)
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
                self._recompute(uow, with_dependents(name, definitions), definitions, now)
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
                    " lower PERSONA_PREDICTIONS__CLUSTER_K_MAX) empties it and marks it retired;"
                    " rules that name it stay valid."
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

    def size_history(self, name: str, points: int = 60) -> list[tuple[int, int]]:
        """``(time, size)`` at the end of each of about ``points`` equal steps from the
        segment's creation to now, from the entries and exits its history keeps.

        The history holds the people still stored: an erased person's stays went with them, so
        past sizes leave them out."""
        now = self._clock.now_ms()
        with self._storage.read() as uow:
            record = uow.segments.get(name)
            if record is None:
                raise NotFoundError(f"no segment named {name!r}")
            span = max(now - record.created_at_ms, 1)
            bucket = max(1_000, -(-span // max(points, 1)))
            changes = uow.segments.membership_changes(name, bucket)
        first = record.created_at_ms - record.created_at_ms % bucket
        size = sum(entered - exited for at, entered, exited in changes if at < first)
        by_start = {at: entered - exited for at, entered, exited in changes}
        found = []
        for start in range(first, now + 1, bucket):
            size += by_start.get(start, 0)
            found.append((min(start + bucket, now), size))
        return found

    # -- reading memberships -------------------------------------------------------------------
    def preview(
        self, rule_text: str, sample_size: int = 10, *, timeout_ms: int = PREVIEW_TIMEOUT_MS
    ) -> Preview:
        """How many people a rule selects now, and a few of them, without saving anything.

        At most ``PREVIEW_SLOTS`` run at once and each stops after ``timeout_ms``
        (``BusyError``): a preview evaluates any rule over everyone, on the threads that
        answer cheap reads."""
        with self.preview_slots.taken():  # before parsing: a refusal costs next to nothing
            rule = parse_rule(rule_text)
            now = self._clock.now_ms()
            with self._storage.read() as uow:
                definitions = {d.name: d for d in uow.segments.definitions()}
                check_references(None, rule, definitions)
                total, sample = uow.segments.preview(rule, now, sample_size, timeout_ms)
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

    def profile_facet(self, uow: UnitOfWork, profile_key: str) -> dict[str, list[str]]:
        """The ``segments`` field of a profile read, from the read's own transaction."""
        return {"segments": uow.segments.open_segments_of(profile_key)}

    def history(self, profile_key: str) -> list[MembershipRecord]:
        """Every stay of a profile in a segment, open or closed, oldest first."""
        with self._storage.read() as uow:
            return uow.segments.history(profile_key)

    # -- batch ---------------------------------------------------------------------------------
    def refresh(
        self, now_ms: int | None = None, matching: Matching | None = None
    ) -> RefreshSummary:
        """Re-evaluate every rule segment for everyone, in dependency order; apply the changes.

        Each segment is one write transaction, so ingest waits at most for one rule's query.
        ``matching`` finds who matches a rule elsewhere than in the store (``SparkMatching``);
        the store applies the difference either way.
        """
        now = self._clock.now_ms() if now_ms is None else now_ms
        summary = RefreshSummary(now)
        with self._storage.read() as uow:
            definitions = {d.name: d for d in uow.segments.definitions()}
        rules = rules_of(definitions)
        for name in dependency_order(rules):
            # Another engine's matches are found before the write (it may take seconds),
            # from the rule as read then; the write applies them unless the rule changed.
            matched = None if matching is None else matching(rules[name], now)
            with self._storage.write() as uow:
                store = uow.segments
                record = store.get(name)
                if record is None or record.rule is None:
                    continue  # deleted meanwhile
                rule = parse_rule(record.rule)
                if rule != rules[name]:
                    matched = None  # changed meanwhile: the store's own query, now
                summary.changes[name] = self._apply_batch(uow, name, rule, now, matched)
        return summary

    def _recompute(
        self,
        uow: UnitOfWork,
        names: Sequence[str],
        definitions: Mapping[str, SegmentRecord],
        now: int,
    ) -> None:
        rules = rules_of(definitions)
        wanted = set(names)
        for name in dependency_order(rules):
            if name in wanted:
                self._apply_batch(uow, name, rules[name], now)

    def _apply_batch(
        self, uow: UnitOfWork, name: str, rule: Rule, now: int, matched: set[str] | None = None
    ) -> tuple[int, int]:
        store = uow.segments
        if matched is None:
            matched = store.matching(rule, now)
        current = store.open_members(name)
        entered, exited = matched - current, current - matched
        store.enter(name, entered, now)
        store.exit(name, exited, now)
        return len(entered), len(exited)
