"""The JSON of persona's API as the client sends and reads it.

These models mirror the server's schemas field for field (a test compares them with the
OpenAPI document of a running server) without importing the server: the client loads httpx
and pydantic only. Answers ignore fields they do not know, so a newer server does not break
an older client; requests forbid them, so a typo fails here rather than as a rejection later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from persona.client.errors import EventsRejectedError


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- events ---------------------------------------------------------------------------------


class Event(_Request):
    """One behavioural event (README, Events). ``event_id`` is the idempotency key: the client
    assigns one when it is missing, so that a retry is counted as a duplicate."""

    type: str
    event_id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    item_id: str | None = None
    timestamp: datetime | float | str | None = Field(
        default=None, description="Event time; the server's time of receipt when absent."
    )
    value: float | None = None
    properties: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    decision_id: str | None = None


class EventFields(TypedDict, total=False):
    """The fields of an event besides its type, as keyword arguments of ``track``."""

    event_id: str
    user_id: str
    anonymous_id: str
    item_id: str
    timestamp: datetime | float | str
    value: float
    properties: dict[str, Any]
    context: dict[str, Any]
    decision_id: str


EventStatus = Literal["accepted", "held", "duplicate", "rejected"]


class EventOutcome(_Answer):
    """What became of one event of a batch, at its ``index``."""

    index: int
    status: EventStatus
    event_id: str | None = None
    code: str | None = None
    message: str | None = None
    path: str | None = None


class IngestResult(_Answer):
    """The answer to ``POST /v1/events``: counts and every event's outcome, in order.

    ``duplicate`` means stored before (by an earlier call, or by a first attempt whose answer
    was lost): the event counts once either way."""

    accepted: int
    held: int
    duplicates: int
    rejected: int
    events: list[EventOutcome]

    @property
    def rejections(self) -> list[EventOutcome]:
        return [e for e in self.events if e.status == "rejected"]

    def raise_for_rejections(self) -> IngestResult:
        """Raise ``EventsRejectedError`` when an event was rejected; else return the result."""
        rejections = self.rejections
        if rejections:
            raise EventsRejectedError(rejections)
        return self


# --- profiles -------------------------------------------------------------------------------


class RecentItem(_Answer):
    item_id: str
    at: datetime


class Rfm(_Answer):
    recency_days: float | None
    frequency: int
    monetary: float


class Profile(_Answer):
    """One person's profile: aggregates the server computes from their events, and traits."""

    profile_id: str
    kind: str
    aliases: list[str]
    traits: dict[str, Any]
    event_count: int
    counts: dict[str, int]
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    days_since_last_seen: float | None
    rfm: Rfm
    category_affinities: dict[str, float]
    recent_items: list[RecentItem]
    last_context: dict[str, Any] | None
    session_count: int
    segments: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    updated_at: datetime


class TraitsWritten(_Answer):
    """The answer to a traits write for a key that may not read profiles."""

    profile_id: str
    traits: dict[str, Any]


# --- recommendations and decisions ----------------------------------------------------------


class NamedItem(_Answer):
    item_id: str
    title: str | None


class Explanation(_Answer):
    """Why an item is in a list: ``kind`` ``history`` (``items``: the person's items most alike
    to it), ``new`` (with its ``category``), ``trending_in_category``, ``trending``, ``popular``,
    ``segment``, ``context``, ``rule`` or ``taste``."""

    kind: str
    items: list[NamedItem] | None = None
    category: str | None = None


class RecommendedItem(_Answer):
    item_id: str
    score: float  # in [0, 1], never rising down a list
    sources: list[str]
    explanation: Explanation | None = None


class SimilarItems(_Answer):
    """Items like ``item_id`` ("more like this"); ``source`` ``similar``, or what answered."""

    item_id: str
    items: list[RecommendedItem]
    source: str
    reason: str | None = None
    model_version: str | None
    request_id: str | None


class Recommendations(_Answer):
    """Ranked items for a person; ``source`` says whether the pipeline or a fallback answered."""

    user_id: str
    items: list[RecommendedItem]
    source: str
    reason: str | None = None
    model_version: str | None
    request_id: str | None
    cached: bool = False


class DecisionContext(_Request):
    """What a placement's targeting may look at; hour and weekday default to now (UTC)."""

    device: str | None = None
    country: str | None = None
    hour: int | None = None
    weekday: int | None = None
    page: str | None = None


class Decision(_Answer):
    """The variant chosen for one placement. Send ``decision_id`` back on the ``impression``,
    ``click`` and ``purchase`` events it leads to, so they are attributed to the variant."""

    placement: str
    decision_id: str
    variant: str | None
    payload: dict[str, Any] | None
    policy: str
    version: int
    reason: str
    holdout: bool


class Decisions(_Answer):
    decisions: list[Decision]


# --- catalog --------------------------------------------------------------------------------


class ItemIn(_Request):
    """An item to create or replace (every field but the id is optional)."""

    item_id: str
    title: str | None = None
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    price: float | None = None
    available: bool = True
    created_at: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class Item(_Answer):
    item_id: str
    title: str | None
    categories: list[str]
    tags: list[str]
    price: float | None
    available: bool
    created_at: datetime
    attributes: dict[str, Any]
    updated_at: datetime


class UpsertResult(_Answer):
    upserted: int


# --- segments -------------------------------------------------------------------------------


class Segment(_Answer):
    """A segment; ``size`` is None under the k-anonymity threshold for a key without the
    ``members`` scope."""

    name: str
    kind: str
    rule: str | None
    description: str
    size: int | None
    created_at: datetime
    updated_at: datetime


class SegmentList(_Answer):
    segments: list[Segment]


class Member(_Answer):
    profile_id: str
    kind: str
    entered_at: datetime


class MemberPage(_Answer):
    """A page of a segment's members; pass ``next_after`` as ``after`` for the next one."""

    members: list[Member]
    next_after: str | None


class Stay(_Answer):
    segment: str
    entered_at: datetime
    exited_at: datetime | None


class ProfileSegments(_Answer):
    profile_id: str
    segments: list[str]
    history: list[Stay]
