"""Plain records that cross the storage interfaces (no SQLAlchemy types leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(slots=True)  # not frozen: ingest builds one per event, and frozen costs 2 µs each
class EventRecord:
    event_id: str
    type: str
    profile_key: str
    user_id: str | None
    anonymous_id: str | None
    item_id: str | None
    occurred_at_ms: int
    received_at_ms: int
    value: float | None
    properties: dict[str, Any] | None
    context: dict[str, Any] | None
    decision_id: str | None
    payload_hash: str
    source: str


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    code: str
    message: str
    raw: str
    source: str
    received_at_ms: int
    event_id: str | None = None
    path: str | None = None
    batch_index: int | None = None
    quarantine_id: int | None = None
    replayed_at_ms: int | None = None
    replayed_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    profile_key: str
    state: dict[str, Any]
    traits: dict[str, Any] | None
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class ItemRecord:
    item_id: str
    title: str | None
    categories: list[str]
    tags: list[str]
    price: float | None
    available: bool
    created_at_ms: int
    attributes: dict[str, Any]
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    name: str
    secret_hash: str
    scopes: list[str] = field(default_factory=list)
    created_at_ms: int = 0
    revoked_at_ms: int | None = None


# -- decisions: placements, their versions, the decision log and its outcomes --------------


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    name: str
    version: int
    status: str
    policy: str
    config: dict[str, Any]
    created_at_ms: int
    updated_at_ms: int
    version_created_at_ms: int


@dataclass(frozen=True, slots=True)
class VersionRecord:
    placement: str
    version: int
    policy: str
    config: dict[str, Any]
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision_id: str
    placement: str
    version: int
    variant: str | None
    profile_key: str
    context: dict[str, Any] | None
    policy: str
    cohort: str
    holdout: bool
    bucket: str
    reason: str
    decided_at_ms: int


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    event_id: str
    decision_id: str
    placement: str
    version: int
    variant: str | None
    cohort: str
    profile_key: str
    kind: str
    value: float | None
    occurred_at_ms: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    audit_id: int
    at_ms: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]


# -- segments ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    name: str
    kind: str
    rule: str | None
    description: str
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    segment: str
    profile_key: str
    entered_at_ms: int
    exited_at_ms: int | None


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """What the real-time segment evaluator reads of one of a person's events."""

    type: str
    item_id: str | None
    occurred_at_ms: int


# -- predictions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    name: str
    event_type: str
    horizon_days: int
    description: str
    created_at_ms: int
    trained_at_ms: int | None
    evaluation: dict[str, Any] | None


# -- privacy: consent, erasure, held events, everything held about a person ------------------


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One recorded change of one purpose for one profile key; nothing is ever overwritten."""

    profile_key: str
    purpose: str
    status: str  # granted | denied | revoked
    effective_at_ms: int
    source: str  # api | event
    recorded_at_ms: int


class ConsentEntry(NamedTuple):
    """A consent change as a consent book loads it: found under ``profile_key`` directly
    (``via`` None), or through the anonymous key ``via`` that was linked to that profile."""

    consent_id: int  # recording order; the same change found twice has the same id
    profile_key: str
    purpose: str
    status: str
    effective_at_ms: int
    via: str | None


@dataclass(frozen=True, slots=True)
class HeldEventRecord:
    """An event stored aside for lack of consent: never folded, learned from or decided on."""

    event_id: str
    type: str
    profile_key: str
    user_id: str | None
    anonymous_id: str | None
    item_id: str | None
    occurred_at_ms: int
    received_at_ms: int
    value: float | None
    properties: dict[str, Any] | None
    context: dict[str, Any] | None
    reason: str


@dataclass(slots=True)
class SubjectRecords:
    """Every row held about the profile keys of one person, as an export reads them."""

    events: list[EventRecord] = field(default_factory=list)  # by event time
    held_events: list[HeldEventRecord] = field(default_factory=list)  # by event time
    consents: list[ConsentChange] = field(default_factory=list)  # in recording order
    traits: list[dict[str, Any] | None] = field(default_factory=list)  # one per profile row
    memberships: list[MembershipRecord] = field(default_factory=list)  # in entry order
    scores: list[tuple[str, float]] = field(default_factory=list)  # (prediction, probability)
    decisions: list[DecisionRecord] = field(default_factory=list)  # by decision time


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message of the change stream: ``message_id`` is the same each time the message is
    published again (consumers drop the ones they have seen), ``body`` its JSON document."""

    message_id: str
    kind: str  # "event", "segment", "decision" or "erasure"
    body: dict[str, Any]
    profile_key: str | None = None  # whose change it is


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    webhook_id: str
    url: str
    kinds: tuple[str, ...]
    secret: str
    created_at_ms: int
    active: bool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message a webhook could not be given after every attempt."""

    webhook_id: str
    message_id: str
    attempts: int
    at_ms: int
    error: str
    body: str  # the message as it was posted, JSON
