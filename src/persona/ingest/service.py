"""Ingest: validate -> dedupe -> store with profile updates, in one transaction per call.

Nothing acknowledged is lost and nothing is silently dropped: every event of a call ends as
accepted, held (stored aside for lack of consent), duplicate or rejected, and every rejected
event is written to the quarantine with its raw payload, a machine code, a message and the path
of the error, in the same transaction as the accepted ones. The caller only hears back after
the commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from persona.clock import Clock
from persona.documents import Identifier
from persona.errors import BatchTooLargeError, ConflictError, NotFoundError, WriteConflictError
from persona.identity import anonymous_key, user_key
from persona.ids import uuid4
from persona.ingest.activity import IngestActivity
from persona.ingest.schema import (
    EventFields,
    EventIn,
    UnparsableLine,
    plain_event,
    plain_events,
)
from persona.ingest.settings import IngestSettings
from persona.observability.metrics import Metrics
from persona.profiles.aggregate import ProfileState
from persona.profiles.service import ProfileService
from persona.runtime import collector_paused
from persona.storage.protocols import Storage, UnitOfWork
from persona.storage.records import EventRecord, QuarantineRecord

ERROR_CODES = {
    "missing_identity": "missing_identity",
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "invalid_timestamp": "invalid_timestamp",
    "invalid_document": "invalid_document",
}


@dataclass(frozen=True, slots=True)
class AppliedBatch:
    """What one ingest transaction stored and folded, handed to the ingest listeners inside it
    (segments, clusters, predictions, attribution), so none of them reads it back."""

    events: Sequence[ValidEvent]  # the newly stored events, in arrival order
    profile_keys: Mapping[str, str]  # event id -> the profile it was folded into
    states: Mapping[str, ProfileState]  # every profile the events changed, as folded
    documents: Mapping[str, dict[str, Any]]  # the same states as stored
    traits: Mapping[str, dict[str, Any] | None]  # their traits (None: never set)
    merged_away: Sequence[str]  # anonymous profiles merged into a user's by this batch
    now_ms: int

    @property
    def touched(self) -> set[str]:
        """The profiles the batch's events landed in."""
        return set(self.profile_keys.values())


# Called inside the write transaction, right after the events and profiles are stored (how
# segments keep memberships current in the same transaction).
IngestListener = Callable[[UnitOfWork, AppliedBatch], None]


class IngestGate(Protocol):
    """Privacy's part of ingest (persona.privacy.gate): personal values, erasure, consent."""

    def scrub(self, document: dict[str, Any]) -> dict[str, Any] | None:
        """A properties or context object with its personal values transformed."""
        ...

    @property
    def payload_key(self) -> bytes:
        """The key of payload hashes (``PayloadHasher``)."""
        ...

    def scrub_raw(self, raw: str) -> str: ...

    def screen(self, uow: UnitOfWork, events: Sequence[ValidEvent], now_ms: int) -> Any:
        """``used``, ``kept`` (stored aside, answered accepted), ``held`` (stored aside for
        lack of consent, answered held), ``duplicates`` (events) and ``refused``
        (rejections)."""
        ...


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a microsecond per event to build
class ValidEvent:
    """An event that passed validation, normalized, with its id and payload hash."""

    index: int
    event_id: str
    type: str
    user_id: str | None
    anonymous_id: str | None
    item_id: str | None
    occurred_at_ms: int
    value: float | None
    properties: dict[str, Any] | None
    context: dict[str, Any] | None
    decision_id: str | None
    payload_hash: str


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    code: str
    message: str
    path: str | None
    raw: str
    event_id: str | None = None
    quarantine: bool = True  # False: refused for privacy, and not kept (it names a person)


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    held: int = 0  # stored aside for lack of consent, never used (docs/privacy.md)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "held": self.held,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "events": self.events,
        }


Scrub = Callable[[dict[str, Any]], dict[str, Any] | None]
"""Privacy's transformation of a properties or context object into what is stored."""


class PayloadHasher:
    """The hash that tells a retry (same payload) from a conflict (same id, another payload).

    It covers what the client sent that is stored (not server-filled fields), after personal
    values are transformed, and it is keyed: a hash read from the database cannot be checked
    against guesses offline, and an id resent with a guessed value tells no more than the stored
    value does (a truncated IP stays truncated). Keyed hashes read ``k:`` and 30 hex digits;
    hashes stored before they were keyed are 32 hex digits of the payload as sent, unkeyed, and
    a retry of such an event is compared with that form (``legacy``).
    """

    PREFIX = "k:"

    def __init__(self, key: bytes | None) -> None:
        # a copied prototype is a third cheaper than a new hasher with its options
        if key:
            self._prototype, self._prefix = hashlib.blake2b(digest_size=15, key=key), self.PREFIX
        else:
            self._prototype, self._prefix = _UNKEYED, ""

    def __call__(
        self,
        event: EventFields,
        properties: dict[str, Any] | None,
        context: dict[str, Any] | None,
    ) -> str:
        return self.of(
            event.type,
            event.user_id,
            event.anonymous_id,
            event.item_id,
            event.timestamp,
            event.value,
            properties,
            context,
            event.decision_id,
        )

    def of(
        self,
        type: str,
        user_id: str | None,
        anonymous_id: str | None,
        item_id: str | None,
        timestamp: int | None,
        value: float | None,
        properties: dict[str, Any] | None,
        context: dict[str, Any] | None,
        decision_id: str | None,
    ) -> str:
        """The hash of an event's fields (its timestamp in milliseconds, None when absent)."""
        canonical = orjson.dumps(
            (
                type,
                user_id,
                anonymous_id,
                item_id,
                timestamp,
                value,
                properties,
                context,
                decision_id,
            ),
            option=orjson.OPT_SORT_KEYS,
        )
        hasher = self._prototype.copy()
        hasher.update(canonical)
        return self._prefix + hasher.hexdigest()

    @staticmethod
    def legacy(event: EventFields) -> str:
        """The unkeyed hash of the payload as sent, as events stored before keying hold it.

        A test pins a known value: those hashes must stay comparable."""
        return UNKEYED(event, event.properties, event.context)

    @classmethod
    def is_legacy(cls, stored: str) -> bool:
        return not stored.startswith(cls.PREFIX)


WRITE_ATTEMPTS = 5  # a batch given up for another is stored again, up to this many times in all
_UNKEYED = hashlib.blake2b(digest_size=16)
UNKEYED = PayloadHasher(None)  # without privacy's key (tests, tools); the engine keys it


def _raw_text(raw: Any) -> str:
    try:
        return orjson.dumps(raw).decode()
    except TypeError:
        return repr(raw)


# A plain event without properties and context is at most about 3 KB: its keys are known, and
# its ids, type and timestamp text are bounded. Under a size limit at least this big, such an
# event needs no size check and so no serialization (a tenth of its validation).
PLAIN_EVENT_MAX_BYTES = 4096


def validate_events(
    raws: Sequence[Any],
    *,
    now_ms: int,
    limits: IngestSettings,
    scrub: Scrub | None = None,
    hasher: PayloadHasher = UNKEYED,
) -> list[ValidEvent | Rejection]:
    """Check a batch against the contract, the events of the plain shape in one pass; the
    valid ones come with their personal values transformed by ``scrub`` and their hash."""
    plain = plain_events(raws)
    if plain is None:
        return [
            validate_event(raw, i, now_ms=now_ms, limits=limits, scrub=scrub, hasher=hasher)
            for i, raw in enumerate(raws)
        ]
    return [
        _validated(raw, i, event, now_ms, limits, scrub, hasher)
        for i, (raw, event) in enumerate(zip(raws, plain, strict=True))
    ]


def validate_event(
    raw: Any,
    index: int,
    *,
    now_ms: int,
    limits: IngestSettings,
    scrub: Scrub | None = None,
    hasher: PayloadHasher = UNKEYED,
) -> ValidEvent | Rejection:
    """Check one raw event against the contract; never raises for bad input."""
    if isinstance(raw, UnparsableLine):
        return Rejection(
            index, "malformed_json", f"line {raw.line} is not valid JSON", None, raw.text
        )
    return _validated(raw, index, plain_event(raw), now_ms, limits, scrub, hasher)


def _validated(
    raw: Any,
    index: int,
    plain: EventFields | None,
    now_ms: int,
    limits: IngestSettings,
    scrub: Scrub | None,
    hasher: PayloadHasher,
) -> ValidEvent | Rejection:
    """``raw`` checked, given its plain form if it has one."""
    if plain is not None and (
        plain.properties is None
        and plain.context is None
        and limits.max_event_bytes >= PLAIN_EVENT_MAX_BYTES
    ):
        event = plain  # small: no size check needed (see PLAIN_EVENT_MAX_BYTES)
    else:
        checked = _checked_fields(raw, index, limits, plain)
        if isinstance(checked, Rejection):
            return checked
        event = checked
    occurred_at_ms = event.timestamp if event.timestamp is not None else now_ms
    if occurred_at_ms > now_ms + limits.future_tolerance_ms:
        return Rejection(
            index,
            "future_timestamp",
            f"timestamp is more than {limits.future_tolerance_ms // 1000} s in the future",
            "timestamp",
            _raw_text(raw),
            event.event_id,
        )
    properties, context = event.properties, event.context
    if scrub is not None:  # what is stored, and so what is hashed
        if properties:
            properties = scrub(properties)
        if context:
            context = scrub(context)
    # positional, in the order of the fields: keywords cost a microsecond per event here
    return ValidEvent(
        index,
        event.event_id or str(uuid4()),
        event.type,
        event.user_id,
        event.anonymous_id,
        event.item_id,
        occurred_at_ms,
        event.value,
        properties,
        context,
        event.decision_id,
        hasher(event, properties, context),
    )


_IDENTIFIER = TypeAdapter(Identifier)


def _client_id(value: Any) -> str | None:
    """The ``event_id`` of a rejected event, for its quarantine entry when it is a valid id: an
    over-long or NUL-bearing one does not fit the column (the raw payload keeps it anyway)."""
    if not isinstance(value, str):
        return None
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError:
        return None


def _checked_fields(
    raw: Any, index: int, limits: IngestSettings, plain: EventFields | None
) -> EventFields | Rejection:
    """Any event: JSON data, an object, within the size limit, and as ``EventIn`` says (or
    ``plain``, when it has that form already)."""
    try:
        raw_bytes = orjson.dumps(raw)
    except TypeError:
        return Rejection(
            index, "invalid_event", "the event is not valid JSON data", None, repr(raw)
        )
    if not isinstance(raw, dict):
        return Rejection(
            index, "invalid_event", "an event must be a JSON object", None, raw_bytes.decode()
        )
    client_id = _client_id(raw.get("event_id"))
    if len(raw_bytes) > limits.max_event_bytes:
        return Rejection(
            index,
            "event_too_large",
            f"the event is {len(raw_bytes)} bytes; the limit is {limits.max_event_bytes}",
            None,
            raw_bytes.decode(),
            client_id,
        )
    if plain is not None:
        return plain
    try:
        return EventIn.model_validate(raw)
    except ValidationError as exc:
        return _invalid(exc, index, raw_bytes.decode(), client_id)


MAX_PATH_CHARS = 512  # the quarantine's path column


def _invalid(exc: ValidationError, index: int, raw_text: str, client_id: str | None) -> Rejection:
    """The rejection for a validation failure: the first error's code and path, every message.

    A path names the client's keys (an unknown field), so NUL characters in them are written
    as an escape and a path is cut to its column: the raw payload keeps the keys as sent."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    path = _path(first["loc"])[:MAX_PATH_CHARS] or None
    message = "; ".join(f"{_path(e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in errors)
    code = ERROR_CODES.get(first["type"], "invalid_field")
    return Rejection(index, code, message, path, raw_text, client_id)


def _path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location).replace("\x00", "\\u0000")


class IngestService:
    def __init__(
        self,
        storage: Storage,
        profiles: ProfileService,
        clock: Clock,
        limits: IngestSettings,
        metrics: Metrics,
    ) -> None:
        self._storage = storage
        self._profiles = profiles
        self._clock = clock
        self._limits = limits
        self._metrics = metrics
        self._listeners: list[IngestListener] = []
        self._gate: IngestGate | None = None
        self._hasher = UNKEYED
        self.activity = IngestActivity(storage)  # what came in and what was refused

    def set_gate(self, gate: IngestGate) -> None:
        """Let privacy transform, refuse or set aside events before anything is stored."""
        self._gate = gate
        self._hasher = PayloadHasher(gate.payload_key)

    def add_listener(self, listener: IngestListener) -> None:
        """Call ``listener`` inside each write transaction, right after its events are stored."""
        self._listeners.append(listener)

    @property
    def limits(self) -> IngestSettings:
        return self._limits

    def ingest(
        self, raw_events: Sequence[Any], *, source: str = "api", limit: int | None = None
    ) -> IngestResult:
        """Validate, dedupe and store a batch; returns one outcome per event, in order.

        ``limit`` overrides the batch limit for callers that are not clients (bulk imports:
        a transaction costs about as much as a few hundred events, so they take more)."""
        self._check_size(len(raw_events), limit)
        now_ms = self._clock.now_ms()
        with collector_paused():
            batch = _Batch(raw_events)
            self._validate(batch, now_ms)
            return self._commit(batch, now_ms, source)

    def ingest_table(
        self, table: pa.Table, *, source: str, limit: int | None = None
    ) -> IngestResult:
        """``ingest`` of a table's rows (as ``importer.normalize_row`` reads each), validated
        column by column (``persona.ingest.columns``): the same outcomes, for a fraction of
        the time."""
        from persona.ingest.columns import TableRows, validate_table

        self._check_size(table.num_rows, limit)
        now_ms = self._clock.now_ms()
        with collector_paused():
            rows = TableRows(table)
            batch = _Batch(rows)
            checked = validate_table(
                table,
                rows,
                now_ms=now_ms,
                limits=self._limits,
                scrub=self._scrub,
                hasher=self._hasher,
            )
            self._admit(batch, checked)
            return self._commit(batch, now_ms, source)

    def _check_size(self, events: int, limit: int | None) -> None:
        limit = limit or self._limits.max_batch_events
        if events > limit:
            raise BatchTooLargeError(f"{events} events in one batch; the limit is {limit}")

    def _commit(self, batch: _Batch, now_ms: int, source: str) -> IngestResult:
        """Store the batch in one write, beside other batches where the store allows it
        (each locks the profiles it changes); one the database gave up for another is run
        again from its validated events."""
        validated = batch.checkpoint()
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._storage.write(parallel=True) as uow:
                    self._store(uow, batch, now_ms, source)
                    uow.quarantine.add(
                        [
                            _quarantine_record(r, now_ms, source, self._gate)
                            for r in batch.rejections
                            if r.quarantine
                        ]
                    )
                break
            except WriteConflictError:
                if attempt == WRITE_ATTEMPTS:
                    raise
                self._metrics.write_conflicts.inc()
                batch.restart(validated)
        return self._finish(batch)

    def replay(self, quarantine_id: int, fixed_event: Any | None = None) -> IngestResult:
        """Send a quarantined event (as stored, or as fixed by the caller) through ingest, once.

        The check, the store and the mark happen in one transaction, so two concurrent replays
        of one entry cannot both land. A replay that is rejected again leaves the entry open.
        """
        now_ms = self._clock.now_ms()
        with self._storage.write() as uow:
            entry = uow.quarantine.get(quarantine_id)
            if entry is None:
                raise NotFoundError(f"no quarantine entry {quarantine_id}")
            if entry.replayed_at_ms is not None:
                raise ConflictError(f"quarantine entry {quarantine_id} was already replayed")
            raw = fixed_event if fixed_event is not None else orjson.loads(entry.raw)
            batch = _Batch([raw])
            self._validate(batch, now_ms)
            self._store(uow, batch, now_ms, "replay")
            if not batch.rejections:
                event_id = next(iter(batch.candidates))
                uow.quarantine.mark_replayed(quarantine_id, event_id, now_ms)
        return self._finish(batch)

    @property
    def _scrub(self) -> Scrub | None:
        return self._gate.scrub if self._gate is not None else None

    def _validate(self, batch: _Batch, now_ms: int) -> None:
        checked = validate_events(
            batch.raw_events,
            now_ms=now_ms,
            limits=self._limits,
            scrub=self._scrub,
            hasher=self._hasher,
        )
        self._admit(batch, checked)

    def _admit(self, batch: _Batch, validated: Iterable[ValidEvent | Rejection]) -> None:
        """The valid events as candidates (the first of each id; a repeat with another
        payload is a conflict), the rest as rejections."""
        candidates, raws = batch.candidates, batch.raw_events
        for checked in validated:
            if isinstance(checked, Rejection):
                batch.rejections.append(checked)
                continue
            earlier = candidates.get(checked.event_id)
            if earlier is None:
                candidates[checked.event_id] = checked
            elif earlier.payload_hash == checked.payload_hash:
                batch.duplicate(checked)
            else:
                batch.rejections.append(_conflict(checked, raws[checked.index]))

    def _legacy_retry(self, stored: str, batch: _Batch, event: ValidEvent) -> bool:
        """Whether ``event`` resends one stored with an unkeyed hash (before hashes were
        keyed): compared as it was sent, the way that hash was made."""
        if not PayloadHasher.is_legacy(stored):
            return False
        raw = batch.raw_events[event.index]
        fields = plain_event(raw) or _checked_fields(raw, event.index, self._limits, None)
        return not isinstance(fields, Rejection) and PayloadHasher.legacy(fields) == stored

    def _store(self, uow: UnitOfWork, batch: _Batch, now_ms: int, source: str) -> None:
        uow.lock_events(batch.candidates)  # beside other writes: see below
        stored = uow.events.payload_hashes(list(batch.candidates))
        for event in list(batch.candidates.values()):
            known = stored.get(event.event_id)
            if known is None:
                batch.fresh.append(event)
            elif known == event.payload_hash or self._legacy_retry(known, batch, event):
                batch.duplicate(event)
            else:
                batch.rejections.append(_conflict(event, batch.raw_events[event.index]))
        if self._gate is not None and batch.fresh:
            screened = self._gate.screen(uow, batch.fresh, now_ms)
            batch.fresh, batch.kept, batch.held = screened.used, screened.kept, screened.held
            batch.rejections.extend(screened.refused)
            for event in screened.duplicates:
                batch.duplicate(event)
        update = self._profiles.prepare(uow, batch.fresh)
        profile_keys = update.keys
        records = [_record(e, profile_keys[e.event_id], now_ms, source) for e in batch.fresh]
        # Where writes take turns (SQLite), the profiles are read beside the events' write,
        # through another transaction (this one's connection is busy; the write lock keeps
        # them as they are). A write beside others (PostgreSQL) has locked its event ids (a
        # write storing one of them waits; most batches share none) and writes its events
        # before it locks the profiles and reads them (``ProfileService.hold``): the part of
        # it that other writes of the same people wait for (most batches sent side by side
        # share some) is as short as it can be.
        beside = not uow.locks_profiles
        with uow.events.appending(records) as appended:
            if beside:
                with self._storage.read_beside_write() as snapshot:
                    update.load(snapshot)
        if len(appended.ids) != len(records):
            if uow.locks_profiles:  # a write beside this one stored an id of it first
                raise WriteConflictError("an event id was stored meanwhile by another write")
            # Cannot happen under the write lock; refuse to acknowledge rather than guess.
            raise RuntimeError("the event log refused events that passed the duplicate check")
        if not beside:
            update = self._profiles.hold(uow, update)
            profile_keys = update.keys
            update.load(uow)
        update.fold()  # pure computation, as is settling the answer
        batch.settle(profile_keys.values())
        update.save(uow, now_ms)
        # The storage's commit listeners (caches) hear these keys once readers can see the
        # new data: every id the events carry, merged-away anonymous ones included. The
        # ingest listeners below (segments, clusters, attribution) change only these people.
        uow.changes_profiles(batch.touched)
        if not self._listeners:
            return
        applied = AppliedBatch(
            batch.fresh,
            profile_keys,
            update.states,
            update.documents,
            update.traits,
            update.merged_away,
            now_ms,
        )
        for listener in self._listeners:
            listener(uow, applied)

    def _finish(self, batch: _Batch) -> IngestResult:
        outcomes = batch.outcomes
        accepted, rejected = len(batch.fresh) + len(batch.kept), len(batch.rejections)
        held = len(batch.held)
        duplicates = len(outcomes) - accepted - held - rejected
        result = IngestResult(accepted, duplicates, rejected, outcomes, held)
        self._metrics.events_ingested(accepted, duplicates, rejected, held)
        if batch.rejections:
            self._metrics.events_rejected(r.code for r in batch.rejections)
        self._metrics.profile_updates.inc(batch.profiles_updated)
        return result


@dataclass(slots=True)
class _Batch:
    """The working state of one ingest call."""

    raw_events: Sequence[Any]
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    candidates: dict[str, ValidEvent] = field(default_factory=dict)
    fresh: list[ValidEvent] = field(default_factory=list)
    kept: list[ValidEvent] = field(default_factory=list)  # stored aside by privacy, unused
    held: list[ValidEvent] = field(default_factory=list)  # the same, for lack of consent
    rejections: list[Rejection] = field(default_factory=list)
    profiles_updated: int = 0
    touched: set[str] = field(default_factory=set)  # profile keys of the stored events

    def __post_init__(self) -> None:
        self.outcomes = [{} for _ in range(len(self.raw_events))]

    def checkpoint(self) -> tuple[list[dict[str, Any]], list[Rejection]]:
        """The state after validation (outcomes are replaced, never changed in place)."""
        return list(self.outcomes), list(self.rejections)

    def restart(self, validated: tuple[list[dict[str, Any]], list[Rejection]]) -> None:
        """Back to ``checkpoint``'s state, for another attempt at storing the batch."""
        outcomes, rejections = validated
        self.outcomes, self.rejections = list(outcomes), list(rejections)
        self.fresh, self.kept, self.held = [], [], []
        self.profiles_updated, self.touched = 0, set()

    def duplicate(self, event: ValidEvent) -> None:
        self.outcomes[event.index] = {
            "index": event.index,
            "status": "duplicate",
            "event_id": event.event_id,
        }

    def settle(self, profile_keys: Iterable[str]) -> None:
        """The outcomes of the stored and rejected events, and the profiles they touched."""
        outcomes = self.outcomes
        for event in [*self.fresh, *self.kept]:
            outcomes[event.index] = {
                "index": event.index,
                "status": "accepted",
                "event_id": event.event_id,
            }
        for event in self.held:
            outcomes[event.index] = {
                "index": event.index,
                "status": "held",
                "event_id": event.event_id,
            }
        written = [*self.fresh, *self.kept, *self.held]
        for r in self.rejections:
            outcomes[r.index] = {
                "index": r.index,
                "status": "rejected",
                "event_id": r.event_id,
                "code": r.code,
                "message": r.message,
                "path": r.path,
            }
        touched = self.touched
        touched.update(profile_keys)
        self.profiles_updated = len(touched)
        touched.update(user_key(u) for u in {e.user_id for e in written if e.user_id})
        touched.update(
            anonymous_key(a) for a in {e.anonymous_id for e in written if e.anonymous_id}
        )


def _conflict(event: ValidEvent, raw: Any) -> Rejection:
    return Rejection(
        event.index,
        "event_id_conflict",
        "an event with this event_id and a different payload was already received",
        "event_id",
        _raw_text(raw),
        event.event_id,
    )


def _record(event: ValidEvent, profile_key: str, now_ms: int, source: str) -> EventRecord:
    # positional, in the order of EventRecord's fields: keywords cost 1.5 µs an event (6% of
    # ingest); tests/ingest/test_event_record.py fails on a misplaced field
    return EventRecord(
        event.event_id,
        event.type,
        profile_key,
        event.user_id,
        event.anonymous_id,
        event.item_id,
        event.occurred_at_ms,
        now_ms,
        event.value,
        event.properties,
        event.context,
        event.decision_id,
        event.payload_hash,
        source,
    )


def _quarantine_record(
    rejection: Rejection, now_ms: int, source: str, gate: IngestGate | None
) -> QuarantineRecord:
    return QuarantineRecord(
        code=rejection.code,
        message=rejection.message,
        raw=rejection.raw if gate is None else gate.scrub_raw(rejection.raw),
        source=source,
        received_at_ms=now_ms,
        event_id=rejection.event_id,
        path=rejection.path,
        batch_index=rejection.index,
    )
