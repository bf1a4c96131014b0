"""The narrow storage interfaces the domains depend on.

Each need has its own small protocol. A ``UnitOfWork`` groups them over one transaction, so an
ingest call commits its events, quarantine records and profile updates together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from persona.rules import Rule
from persona.storage.records import (
    ApiKeyRecord,
    AuditEntry,
    ConsentChange,
    ConsentEntry,
    DeadLetter,
    DecisionRecord,
    EventRecord,
    HeldEventRecord,
    ItemRecord,
    MembershipRecord,
    OutcomeRecord,
    PlacementRecord,
    PredictionRecord,
    ProfileRecord,
    QuarantineRecord,
    RecentEvent,
    SegmentRecord,
    StreamMessage,
    SubjectRecords,
    VersionRecord,
    WebhookRecord,
)


@dataclass(slots=True)
class Appended:
    """What ``EventLog.appending`` inserted, known once its block has run."""

    ids: set[str] = field(default_factory=set)


INTERACTION_COLUMNS = pa.schema(
    [
        ("profile_key", pa.string()),
        ("item_id", pa.string()),
        ("type", pa.string()),
        ("occurred_at_ms", pa.int64()),
        ("value", pa.float64()),
        ("context", pa.string()),  # JSON text; null when the event has none
    ]
)
"""What ``interaction_columns`` gives: the events training learns from."""

SHOWN_COLUMNS = pa.schema(
    [
        ("profile_key", pa.string()),
        ("item_id", pa.string()),
        ("type", pa.string()),  # impression or click
        ("occurred_at_ms", pa.int64()),
        ("list_id", pa.string()),  # the decision's id, else the list_id property
        ("position", pa.int64()),  # the position property; null when none
    ]
)
"""What ``shown_columns`` gives: the items people were shown in lists, and clicked."""

EVENT_COLUMNS = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("profile_key", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("item_id", pa.string()),
        ("occurred_at_ms", pa.int64()),
        ("received_at_ms", pa.int64()),
        ("value", pa.float64()),
        ("properties", pa.string()),  # JSON text; null when the event has none
        ("context", pa.string()),  # JSON text; null when the event has none
        ("decision_id", pa.string()),
        ("source", pa.string()),
    ]
)
"""Every column of an event as ``Storage.events_after`` reads it and the lake keeps it."""


@dataclass(slots=True)
class WrittenEvents:
    """The events of the writes after a given one, read from one snapshot of the store."""

    log_id: str  # names the event log: another store (or a new one) has another
    write_seq: int  # the last write the snapshot holds
    chunks: Iterator[pa.Table]  # ``EVENT_COLUMNS``, in event-time order (ties in any order)
    messages: list[StreamMessage] = field(default_factory=list)  # the outbox's, when asked


class EventLog(Protocol):
    def payload_hashes(self, event_ids: Sequence[str]) -> dict[str, str]:
        """Stored payload hash of each of ``event_ids`` that is already in the log."""
        ...

    def append(self, events: Sequence[EventRecord]) -> set[str]:
        """Insert events whose id is new; return the ids actually inserted."""
        ...

    def appending(self, events: Sequence[EventRecord]) -> AbstractContextManager[Appended]:
        """``append`` while the block runs (where the backend can overlap it with the block's
        Python); the block must not use the transaction. ``Appended.ids`` is set after it."""
        ...

    def reassign_profiles(self, moves: Mapping[str, str]) -> int:
        """Move every event of each profile key to the key it maps to (profiles merged by an
        identify); returns the events moved."""
        ...

    def for_profile(self, profile_key: str, limit: int) -> list[EventRecord]:
        """The most recent events of a profile, newest first."""
        ...

    def item_history(self, profile_key: str, limit: int) -> list[tuple[str, str, int]]:
        """``(item_id, type, occurred_at_ms)`` of a profile's latest events with an item,
        newest first: what serving a recommendation reads on every request."""
        ...

    def item_signature(self, profile_key: str, not_types: Sequence[str]) -> tuple[int, int]:
        """How many events with an item a profile has (types in ``not_types`` aside), and the
        latest one's ``occurred_at_ms`` (-1 without any): whether anything changed since."""
        ...

    def get(self, event_id: str) -> EventRecord | None: ...

    def count(self) -> int: ...

    def context_item_counts(
        self, field: str, since_ms: int, ignored_types: Sequence[str]
    ) -> list[tuple[str, str, int]]:
        """``(context value, item_id, events)`` for events since ``since_ms`` whose context has
        ``field`` (such as ``device`` or ``country``)."""
        ...

    def value_totals(
        self, profile_keys: Collection[str], types: Collection[str], before_ms: int
    ) -> dict[str, float]:
        """The sum of ``value`` over each profile's events of ``types`` before ``before_ms``
        (profiles without any are left out)."""
        ...

    def scan(
        self,
        fields: Sequence[str],
        *,
        before_ms: int | None = None,
        order_by: Sequence[str] = ("occurred_at_ms", "event_id"),
        batch_size: int = 50_000,
    ) -> Iterator[tuple[Any, ...]]:
        """Every event (only those before ``before_ms`` when given) as a tuple of ``fields``
        (names of ``EventRecord`` fields), in ``order_by`` order: the bulk read of training."""
        ...

    def recent_events(
        self, profile_keys: Collection[str], since_ms: int | None, types: Sequence[str]
    ) -> dict[str, list[RecentEvent]]:
        """Each profile's events of ``types`` at or after ``since_ms`` (None: all time), in no
        particular order; profiles without any are left out."""
        ...

    def popular_items(self, limit: int, ignored_types: Sequence[str]) -> list[str]:
        """Item ids by how many events name them, most first."""
        ...

    def iter_all(self, batch_size: int = 10_000) -> Iterator[EventRecord]:
        """Every event in (occurred_at_ms, event_id) order."""
        ...

    def type_counts(
        self, since_ms: int, until_ms: int, bucket_ms: int
    ) -> list[tuple[int, str, int]]:
        """``(bucket start, type, events)`` of the events whose event time is in
        ``[since_ms, until_ms)``, in buckets of ``bucket_ms`` counted from the epoch, by bucket
        (the dashboard's activity chart; a range of the event-time index)."""
        ...


class QuarantineLog(Protocol):
    def add(self, records: Sequence[QuarantineRecord]) -> None: ...

    def code_counts(self) -> list[tuple[str, int, int]]:
        """``(code, entries, replayed)`` per rejection code, most entries first."""
        ...

    def code_counts_over_time(self, since_ms: int, bucket_ms: int) -> list[tuple[int, str, int]]:
        """``(bucket start, code, entries)`` of the entries received since ``since_ms``, in
        buckets of ``bucket_ms`` counted from the epoch, by bucket."""
        ...

    def list(
        self, *, after_id: int, limit: int, code: str | None = None
    ) -> list[QuarantineRecord]: ...

    def get(self, quarantine_id: int) -> QuarantineRecord | None: ...

    def mark_replayed(self, quarantine_id: int, event_id: str, at_ms: int) -> bool:
        """Mark an entry replayed; False when it already was (replay happens once)."""
        ...

    def count(self) -> int: ...


class ProfileStore(Protocol):
    def load(self, profile_keys: Sequence[str]) -> dict[str, ProfileRecord]: ...

    def save_states(self, states: Mapping[str, dict[str, Any]], at_ms: int) -> None:
        """Upsert aggregate states, leaving traits as they are."""
        ...

    def set_traits(
        self, profile_key: str, traits: dict[str, Any], empty_state: dict[str, Any], at_ms: int
    ) -> None: ...

    def delete(self, profile_keys: Sequence[str]) -> None: ...

    def resolve_aliases(self, alias_keys: Sequence[str]) -> dict[str, str]: ...

    def add_aliases(self, links: Mapping[str, str], at_ms: int) -> None: ...

    def aliases_of(self, profile_key: str) -> list[str]: ...

    def count(self) -> int: ...

    def all_states(
        self, fields: Sequence[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(profile_key, aggregate state)`` of every profile, in key order; with ``fields``,
        each state holds only those top-level fields (None where it has none)."""
        ...


class Catalog(Protocol):
    def upsert(self, items: Sequence[ItemRecord]) -> None: ...

    def get(self, item_id: str) -> ItemRecord | None: ...

    def categories_for(self, item_ids: Sequence[str]) -> dict[str, list[str]]: ...

    def unavailable_ids(self) -> list[str]: ...

    def all_categories(self) -> dict[str, list[str]]:
        """The categories of every item, by item id."""
        ...

    def written_since(self, since_ms: int, limit: int) -> list[ItemRecord]:
        """Up to ``limit`` items written (created or changed) after ``since_ms``, the latest
        first."""
        ...

    def list(self, *, after_id: str | None, limit: int) -> list[ItemRecord]: ...

    def count(self) -> int: ...


class KeyStore(Protocol):
    def add(self, record: ApiKeyRecord) -> None: ...

    def get(self, key_id: str) -> ApiKeyRecord | None: ...

    def list(self) -> list[ApiKeyRecord]: ...

    def revoke(self, key_id: str, at_ms: int) -> bool: ...


class DecisionStore(Protocol):
    """Placements (versioned configurations), the decision log, outcomes and bandit counts."""

    def placements(self, names: Collection[str] | None = None) -> dict[str, PlacementRecord]:
        """The current version of every placement (or of those in ``names``), by name."""
        ...

    def versions(self, name: str) -> list[VersionRecord]: ...

    def version(self, name: str, version: int) -> VersionRecord | None: ...

    def create(self, name: str, policy: str, config: dict[str, Any], now_ms: int) -> None:
        """A new placement at version 1, active."""
        ...

    def add_version(
        self, name: str, version: int, policy: str, config: dict[str, Any], now_ms: int
    ) -> None:
        """A new version of ``name``, which becomes its current one."""
        ...

    def set_status(self, name: str, status: str, now_ms: int) -> None: ...

    def log(self, records: Sequence[DecisionRecord]) -> None:
        """Add to the decision log (``Storage.log_decisions`` does it in a transaction of its
        own, the way requests do)."""
        ...

    def decisions(self, decision_ids: Collection[str]) -> dict[str, DecisionRecord]: ...

    def for_profile(self, profile_key: str, limit: int) -> list[DecisionRecord]:
        """The latest decisions made for a profile, newest first. The log has no index by
        person (every decision would pay for one): this reads all of it, as an export does."""
        ...

    def exposures(
        self, placement: str, version: int, cohorts: Collection[str]
    ) -> list[tuple[str, str | None, str, int, int]]:
        """``(cohort, variant, profile_key, decisions, first decided_at_ms)`` per unit and arm
        of a placement version, for the decisions of ``cohorts``."""
        ...

    def outcome_totals(
        self, placement: str, version: int, cohorts: Collection[str]
    ) -> list[tuple[str, str | None, str, str, int, float | None]]:
        """``(cohort, variant, profile_key, kind, outcomes, sum of values)`` per unit, arm and
        kind of outcome of a placement version, for ``cohorts``."""
        ...

    def add_outcomes(self, records: Sequence[OutcomeRecord]) -> None:
        """Attributed outcomes; one per event id (a second is ignored)."""
        ...

    def arm_counts(
        self, placement: str, version: int, bucket: str
    ) -> dict[str, tuple[float, float]]:
        """``(successes, failures)`` of each arm of a bandit in one bucket."""
        ...

    def all_arm_counts(self, placement: str, version: int) -> dict[str, dict[str, list[float]]]:
        """``bucket -> arm -> [successes, failures]``."""
        ...

    def applied_rewards(
        self, event_ids: Collection[str], decision_ids: Collection[str]
    ) -> tuple[set[str], dict[str, set[str]]]:
        """Event ids already applied, and the kinds already applied per decision."""
        ...

    def apply_rewards(
        self,
        rewards: Sequence[tuple[str, str, str]],
        deltas: Mapping[tuple[str, int, str, str], tuple[float, float]],
        now_ms: int,
    ) -> None:
        """Record ``(event_id, decision_id, kind)`` rows and add the count deltas per arm
        ``(placement, version, bucket, variant)``, in the database (concurrent writers add
        up)."""
        ...


class SegmentStore(Protocol):
    """Segment definitions and memberships. A membership is a stay: it opens when a profile
    enters a segment and closes (``exited_at_ms``) when it leaves; history keeps both."""

    def definitions(self) -> list[SegmentRecord]:
        """Every segment, by name."""
        ...

    def get(self, name: str) -> SegmentRecord | None: ...

    def insert(self, record: SegmentRecord) -> None: ...

    def replace(self, record: SegmentRecord) -> None:
        """The definition of ``record.name`` becomes ``record``."""
        ...

    def delete(self, name: str) -> None:
        """The definition and its whole membership history."""
        ...

    def open_members(self, segment: str) -> set[str]: ...

    def open_segments_of(self, profile_key: str) -> list[str]:
        """The segments one profile is in now, by name (every profile read asks: keep it
        lean)."""
        ...

    def open_memberships_of(self, profile_keys: Collection[str]) -> dict[str, set[str]]:
        """The segments each profile is in now; profiles in none are left out."""
        ...

    def segment_item_counts(
        self, since_ms: int, ignored_types: Sequence[str]
    ) -> list[tuple[str, str, int]]:
        """``(segment, item_id, events)``: what current members did since ``since_ms``."""
        ...

    def enter(self, segment: str, profile_keys: Collection[str], at_ms: int) -> None:
        """Open a stay for each profile (the caller knows they are not members)."""
        ...

    def exit(self, segment: str, profile_keys: Collection[str], at_ms: int) -> None:
        """Close the open stays of these profiles in ``segment``."""
        ...

    def exit_all(self, profile_keys: Collection[str], at_ms: int) -> None:
        """Close every open stay of these profiles (profiles merged into another)."""
        ...

    def members(self, segment: str, *, after: str | None, limit: int) -> list[MembershipRecord]:
        """Open stays of ``segment`` by profile key, after ``after``."""
        ...

    def member_count(self, segment: str) -> int: ...

    def history(self, profile_key: str) -> list[MembershipRecord]:
        """Every stay of a profile, open or closed, oldest first."""
        ...

    def membership_changes(self, segment: str, bucket_ms: int) -> list[tuple[int, int, int]]:
        """``(bucket start, entries, exits)`` of ``segment``'s stays in buckets of
        ``bucket_ms`` counted from the epoch, by bucket (buckets without any left out): the
        running sum of entries less exits is the segment's size over time."""
        ...

    def matching(self, rule: Rule, now_ms: int) -> set[str]:
        """The profile keys ``rule`` selects at ``now_ms``, evaluated for everyone at once."""
        ...

    def preview(
        self, rule: Rule, now_ms: int, sample_size: int, timeout_ms: int | None = None
    ) -> tuple[int, list[str]]:
        """How many profiles ``rule`` selects, and the first ``sample_size`` of them by key;
        ``BusyError`` when it takes longer than ``timeout_ms``."""
        ...


class PredictionStore(Protocol):
    """Prediction definitions and each profile's calibrated probability for each."""

    def definitions(self) -> list[PredictionRecord]: ...

    def get(self, name: str) -> PredictionRecord | None: ...

    def insert(self, record: PredictionRecord) -> None: ...

    def delete(self, name: str) -> None:
        """The definition and every score of it."""
        ...

    def record_training(self, name: str, at_ms: int, evaluation: dict[str, Any]) -> None: ...

    def replace_scores(
        self, name: str, keys: Sequence[str], probabilities: Sequence[float], at_ms: int
    ) -> None:
        """Every score of ``name`` becomes exactly these (people without one lose theirs)."""
        ...

    def forget(self, profile_keys: Collection[str]) -> None:
        """Remove every score of these profiles."""
        ...

    def scores_of(self, profile_key: str) -> dict[str, float]:
        """One profile's scores by name (every profile read asks: keep it lean)."""
        ...

    def scores_by_profile(self, profile_keys: Collection[str]) -> dict[str, dict[str, float]]:
        """The scores of some profiles; profiles without any are left out."""
        ...

    def all_scores(self) -> Iterator[tuple[str, dict[str, float]]]:
        """``(profile key, {name: probability})`` for everyone with a score, by profile key."""
        ...


class AuditTrail(Protocol):
    """The append-only audit log: there is no update or delete."""

    def append(
        self, at_ms: int, actor: str, action: str, target: str, details: dict[str, Any]
    ) -> None: ...

    def page(self, *, after_id: int, limit: int) -> list[AuditEntry]: ...


class ConsentLog(Protocol):
    """Every consent change per profile key and purpose. Changes are only ever added, so the
    status in force at any past moment can be read back."""

    def add(self, changes: Sequence[ConsentChange]) -> None: ...

    def book(self, profile_keys: Collection[str], linked: Collection[str]) -> list[ConsentEntry]:
        """The changes recorded under ``profile_keys``, and under the profile each anonymous
        key of ``linked`` was merged into (``via`` names it), by ``consent_id``. A change found
        both ways comes twice. Ingest asks once per batch: the backend answers in one query."""
        ...

    def of_person(self, user_key: str, anonymous_key: str, purpose: str) -> list[ConsentEntry]:
        """The changes of ``purpose`` recorded under either key, or under the profile
        ``anonymous_key`` was merged into (``via`` names it), by ``consent_id``: what every
        recommendation asks, in one short query."""
        ...

    def history(self, profile_keys: Collection[str]) -> list[ConsentChange]:
        """The changes recorded under ``profile_keys`` themselves, in recording order."""
        ...

    def holders(self) -> set[str]:
        """Every key ``of_person`` could find a change through: the profile keys with any
        change, and the anonymous keys merged into one of them (one bulk read)."""
        ...


class Tombstones(Protocol):
    """What is left of erased people: keyed hashes of their ids, never the ids."""

    def add(self, id_hashes: Collection[str], at_ms: int) -> None:
        """A tombstone for each hash without one (an existing tombstone keeps its time)."""
        ...

    def erased(self, id_hashes: Collection[str]) -> set[str]:
        """Which of ``id_hashes`` have a tombstone. Ingest asks once per batch."""
        ...

    def any(self) -> bool:
        """Whether there is a tombstone at all: until someone is erased, ingest need not hash
        the ids of each batch to ask."""
        ...


class HeldEvents(Protocol):
    """Events stored aside for lack of consent, where nothing that learns or decides reads
    them; one per event id."""

    def hold(self, records: Sequence[HeldEventRecord]) -> None:
        """Store events whose ids are not held yet (``held`` tells which are)."""
        ...

    def held(self, event_ids: Collection[str]) -> set[str]:
        """Which of ``event_ids`` are held already."""
        ...


class SubjectData(Protocol):
    """Everything stored about people, across the tables of every domain: what erasure,
    export and retention need. A person is a set of profile keys (``u:``/``a:``); a user id
    and an anonymous id with the same text are two people, and the backend knows which of its
    tables hold which."""

    def links(self, profile_keys: Collection[str]) -> list[tuple[str, str]]:
        """The ``(alias key, profile key)`` links with either side among ``profile_keys``: one
        step of finding every key of a person as ingest linked them."""
        ...

    def holding(self, profile_keys: Collection[str]) -> set[str]:
        """The keys among ``profile_keys`` that some row is filed under."""
        ...

    def export(self, profile_keys: Collection[str]) -> SubjectRecords:
        """Every row held under ``profile_keys``."""
        ...

    def delete(self, profile_keys: Collection[str]) -> dict[str, int]:
        """Delete every row filed under one of ``profile_keys`` or holding the id of one of
        them in its own namespace, and the quarantined payloads that name one of them; the
        rows deleted per table, every table that holds people named (zero included), the
        quarantine last."""
        ...

    def delete_events_before(self, event_type: str, before_ms: int) -> int:
        """Delete the events of ``event_type``, used or held, that occurred before
        ``before_ms``; how many there were (retention)."""
        ...


class Outbox(Protocol):
    """The messages a write announces on the change stream, published after it commits."""

    enabled: bool  # False without a stream: ``add`` keeps nothing

    def add(self, messages: Sequence[StreamMessage]) -> None:
        """Add messages in this write's transaction (they are published if it commits)."""
        ...


class WebhookStore(Protocol):
    def add(self, record: WebhookRecord) -> None: ...

    def all(self) -> list[WebhookRecord]:
        """Every webhook, deactivated ones included, oldest first."""
        ...

    def get(self, webhook_id: str) -> WebhookRecord | None: ...

    def deactivate(self, webhook_id: str) -> bool:
        """Stop deliveries to it; False when it is unknown or stopped already."""
        ...

    def handled(self, webhook_id: str, message_ids: Collection[str]) -> set[str]:
        """Which of these messages the webhook was given already, or gave up on."""
        ...

    def record(
        self,
        webhook_id: str,
        message_ids: Sequence[str],
        *,
        status: str,
        attempts: int,
        at_ms: int,
        error: str | None = None,
        bodies: Sequence[str] | None = None,
    ) -> None:
        """Note messages as ``delivered`` or ``dead`` (with their bodies, for a replay)."""
        ...

    def dead_letters(self, webhook_id: str, limit: int) -> list[DeadLetter]: ...

    def prune(self, before_ms: int) -> int:
        """Forget deliveries older than ``before_ms``; dead letters stay."""
        ...


class UnitOfWork(Protocol):
    @property
    def events(self) -> EventLog: ...
    @property
    def quarantine(self) -> QuarantineLog: ...
    @property
    def profiles(self) -> ProfileStore: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def keys(self) -> KeyStore: ...
    @property
    def segments(self) -> SegmentStore: ...
    @property
    def predictions(self) -> PredictionStore: ...
    @property
    def decisions(self) -> DecisionStore: ...
    @property
    def audit(self) -> AuditTrail: ...
    @property
    def consents(self) -> ConsentLog: ...
    @property
    def tombstones(self) -> Tombstones: ...
    @property
    def held_events(self) -> HeldEvents: ...
    @property
    def subjects(self) -> SubjectData: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def webhooks(self) -> WebhookStore: ...

    @property
    def locks_profiles(self) -> bool:
        """Whether this write runs beside others and must lock the profiles it changes
        (a parallel write on PostgreSQL); other writes run alone and hold everything."""
        ...

    def lock_profiles(self, profile_keys: Iterable[str]) -> None:
        """In a write that ``locks_profiles``, hold these profiles until the commit (another
        such write locking one of them waits); call it before reading what will change.
        Elsewhere it does nothing."""
        ...

    def lock_events(self, event_ids: Iterable[str]) -> None:
        """In a write that ``locks_profiles``, hold these event ids until the commit, as
        ``lock_profiles`` holds profiles: a write that stores events locks their ids before it
        looks for them, so that of two writes storing one id, the second finds it stored.
        Elsewhere it does nothing."""
        ...

    def changes_profiles(self, profile_keys: Iterable[str]) -> None:
        """Declare that this write changes what reads show of these profiles, and of no other.

        Without a declaration a write may have changed any profile (its commit listeners hear
        ``None``); a write that changes none declares an empty list. Declared changes reach
        other processes through the change feed (``Storage.follow_changes``).
        """
        ...

    def erases_profiles(self, profile_keys: Iterable[str]) -> None:
        """Declare that this write erases these people: the change feed forgets every mention
        of them, and other processes hear a reset (their caches forget everything)."""
        ...


CommitListener = Callable[[set[str] | None], None]
"""Called after a write commits: the profile keys it declared changed, or None (any)."""


class Storage(Protocol):
    publishes: bool  # writes add their messages to the outbox (a change stream reads it)

    def write(self, *, parallel: bool = False) -> AbstractContextManager[UnitOfWork]:
        """A transaction that holds the write lock; commits on normal exit.

        A ``parallel`` write may run beside other parallel writes (on a store that allows it,
        PostgreSQL): it changes only the profiles it locks (``UnitOfWork.lock_profiles``) and
        rows of its own (appends), and may be refused with ``WriteConflictError`` when the
        database had to give up one of two such writes (nothing of it is stored). Any other
        write runs alone."""
        ...

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener`` after every committed write of this process (caches), and of
        other processes as ``follow_changes`` reads them."""
        ...

    def add_reset_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when this process may have missed other processes' writes."""
        ...

    def follow_changes(self) -> int:
        """Pass other processes' committed changes to the commit listeners; returns how many
        were read (called a few times a second by the servers)."""
        ...

    def take_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew a named lease; True while ``holder`` holds it (one process at a time
        runs the background jobs)."""
        ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def lease_holders(self, names: Sequence[str]) -> dict[str, str]:
        """Who holds each of these leases now (unexpired ones only)."""
        ...

    def read(self) -> AbstractContextManager[UnitOfWork]: ...

    def interaction_columns(self, before_ms: int | None = None) -> pa.Table:
        """Every event that names an item (only those before ``before_ms`` if given), in
        event-time order, ties in event id order, as columns: profile_key, item_id, type,
        occurred_at_ms, value (null when none), context (JSON text, null when none). A
        snapshot read in bulk, for training: no Python object per event."""
        ...

    def shown_columns(self, before_ms: int | None = None) -> pa.Table:
        """Every impression and click naming an item and a list (a ``decision_id``, or a
        ``list_id`` property of printable ASCII), before ``before_ms`` if given, in event-time
        order, ties in event id order, as ``SHOWN_COLUMNS``: what the ranker learns positions
        and clicks from. Read in bulk, like ``interaction_columns``."""
        ...

    def events_after(
        self, write_seq: int, chunk_rows: int = 250_000, *, messages: bool = False
    ) -> AbstractContextManager[WrittenEvents]:
        """The events that writes numbered after ``write_seq`` inserted or changed (-1: every
        event), as tables of at most ``chunk_rows`` rows in event-time order, all from one
        snapshot held while the block runs: what the lake copies. Each write transaction that
        inserts or changes events has a number; the snapshot's (``WrittenEvents.write_seq``)
        is one that every write numbered up to it is in the snapshot, and none numbered up to
        it can commit later. Only the writes numbered up to it are read. With ``messages``,
        also the outbox's messages of the same writes (``WrittenEvents.messages``)."""
        ...

    def snapshot(self, table_names: Sequence[str]) -> dict[str, pa.Table]:
        """Every row of these tables from one snapshot, as Arrow tables with the tables'
        columns, JSON documents as JSON text: what another engine (Spark) reads of the store."""
        ...

    def stream_position(self, name: str) -> int | None:
        """The last write number the relay ``name`` published (None: it never ran)."""
        ...

    def set_stream_position(self, name: str, value: int, *, if_absent: bool = False) -> None:
        """Note writes up to ``value`` as published; their outbox rows are deleted. With
        ``if_absent``, only where nothing is noted yet (the first process wins)."""
        ...

    def log_decisions(self, records: Sequence[DecisionRecord]) -> None:
        """Add to the decision log in a transaction of its own, committed when this returns
        (the hottest write of all: the backend does it in as few steps as it can)."""
        ...

    def read_beside_write(self) -> AbstractContextManager[UnitOfWork]:
        """``read`` for the holder of the write lock, without waiting for the shared pool."""
        ...

    def forget_deleted(self, table_names: Collection[str]) -> None:
        """Make rows deleted by committed writes unreadable from the database files too, not
        only from queries (after an erasure); ``table_names`` are the tables they were in."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class InteractionSource(Protocol):
    """Where training reads interactions from: the store itself, or the lake kept from it."""

    def interaction_columns(self, before_ms: int | None = None) -> pa.Table:
        """As ``Storage.interaction_columns``: the same columns, rows and order."""
        ...


@dataclass(slots=True)
class LakeSync:
    """What one ``EventLake.sync`` did."""

    copied: int = 0  # events copied (new, or changed since the last sync)
    days: list[str] = field(default_factory=list)  # the days (UTC) whose file was written
    write_seq: int = -1  # the store's last write the lake holds now
    removed: int = 0  # rows removed for deletions noted before (erasures, retention)
    rebuilt: bool = False  # started again from nothing (asked, or the lake of another store)
    seconds: float = 0.0


class LakeDeletions(Protocol):
    """Deletions of the store's events that the lake must follow (``EventLake.deleting``)."""

    removed: int  # rows removed from the lake, known once the block has run

    def erase(self, profile_keys: Collection[str], tombstones: Collection[str]) -> None:
        """The person with these keys is being erased, and these tombstones (keyed hashes)
        are written in the same transaction: the lake drops their rows if they are."""
        ...

    def expire(self, event_type: str, before_ms: int) -> None:
        """Events of ``event_type`` that occurred before ``before_ms`` are deleted."""
        ...


class EventLake(InteractionSource, Protocol):
    """A copy of the event log for training and analytics, kept in step with the store."""

    def sync(self, *, rebuild: bool = False) -> LakeSync:
        """Copy what the store's writes added or changed since the last sync."""
        ...

    def files(self) -> list[Path]:
        """The lake's files, one per day in day order: what another reader (Spark) reads."""
        ...

    def deleting(self) -> AbstractContextManager[LakeDeletions]:
        """Hold the lake while the block deletes events from the store, and delete the same
        rows from the lake after it. Each deletion is written down in the lake before the
        store commits, so a crash cannot leave it undone: the next sync or read does it."""
        ...
