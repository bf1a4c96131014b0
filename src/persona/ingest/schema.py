"""The event contract: what a client may send, and what it gets back."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from persona.documents import check_json_document

STANDARD_EVENT_TYPES = (
    "view",
    "click",
    "add_to_cart",
    "purchase",
    "rate",
    "impression",
    "identify",
)
MIN_TIMESTAMP_MS = 0  # 1970-01-01
MAX_TIMESTAMP_MS = 7_258_118_400_000  # 2200-01-01
MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 64
MAX_VALUE = 1e12
EVENT_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:-]*$"

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
EventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TYPE_LENGTH, pattern=EVENT_TYPE_PATTERN),
]


def parse_timestamp(value: Any) -> int | None:
    """ISO 8601 text or Unix seconds (number or numeric text) to epoch milliseconds, UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return _in_range(round(moment.timestamp() * 1000))
    if isinstance(value, bool):
        raise PydanticCustomError("invalid_timestamp", "timestamp must be ISO 8601 or Unix seconds")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise PydanticCustomError(
                    "invalid_timestamp", "timestamp must be ISO 8601 or Unix seconds"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            millis = round(moment.timestamp() * 1000)
            return _in_range(millis)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError("invalid_timestamp", "timestamp must be a finite number")
        if not -1e15 < value < 1e15:  # far outside the range, and maybe too big to scale
            raise PydanticCustomError("invalid_timestamp", "timestamp is outside 1970..2200")
        return _in_range(round(value * 1000))
    raise PydanticCustomError("invalid_timestamp", "timestamp must be ISO 8601 or Unix seconds")


def _in_range(millis: int) -> int:
    if not MIN_TIMESTAMP_MS <= millis < MAX_TIMESTAMP_MS:
        raise PydanticCustomError("invalid_timestamp", "timestamp is outside 1970..2200")
    return millis


Timestamp = Annotated[int | None, BeforeValidator(parse_timestamp)]


class EventIn(BaseModel):
    """One behavioural event as a client sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Identifier | None = Field(
        default=None, description="Client id for idempotency; assigned by the server when absent."
    )
    type: EventType = Field(
        description=(
            "view, click, add_to_cart, purchase, rate, impression, identify, or a custom name."
        )
    )
    user_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    item_id: Identifier | None = None
    timestamp: Timestamp = Field(
        default=None,
        description="Event time: ISO 8601 or Unix seconds. Defaults to the time of receipt.",
        json_schema_extra={
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]
        },
    )
    value: float | None = Field(
        default=None,
        allow_inf_nan=False,
        ge=-MAX_VALUE,
        le=MAX_VALUE,
        description="Rating or revenue.",
    )
    properties: dict[str, Any] | None = None
    context: dict[str, Any] | None = Field(
        default=None, description="device, country, locale, page, user_agent, …"
    )
    decision_id: Identifier | None = None

    @field_validator("properties", "context")
    @classmethod
    def _bounded_document(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_json_document(value)

    @model_validator(mode="after")
    def _has_identity(self) -> EventIn:
        if self.user_id is None and self.anonymous_id is None:
            raise PydanticCustomError(
                "missing_identity", "an event needs a user_id or an anonymous_id"
            )
        return self


class EventFields(NamedTuple):
    """The values of a valid event, as ``EventIn`` holds them."""

    event_id: str | None
    type: str
    user_id: str | None
    anonymous_id: str | None
    item_id: str | None
    timestamp: int | None
    value: float | None
    properties: dict[str, Any] | None
    context: dict[str, Any] | None
    decision_id: str | None

    @classmethod
    def of(cls, event: EventIn) -> EventFields:
        return cls(
            event.event_id,
            event.type,
            event.user_id,
            event.anonymous_id,
            event.item_id,
            event.timestamp,
            event.value,
            event.properties,
            event.context,
            event.decision_id,
        )


_FIELD_NAMES = frozenset(EventIn.model_fields)
# fullmatch without the anchors: Python's `$` would also match before a final newline.
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN.removeprefix("^").removesuffix("$"))


_CHECKED_TYPES: set[str] = set()  # event types that matched the pattern


def _plain_document(value: Any) -> bool:
    if type(value) is not dict or not all(type(key) is str for key in value):
        return False
    try:
        check_json_document(value)
    except PydanticCustomError:
        return False
    return True


def plain_event_fields(raw: dict[str, Any]) -> EventFields | None:
    """The fields of an event that plainly meets the contract, without building a model.

    Validating with ``EventIn`` costs several microseconds per event, as much as storing it; this
    checks the common shapes (plain strings, numbers and objects) directly and answers None for
    anything else, which ``EventIn`` then decides with its error messages. It accepts only what
    ``EventIn`` accepts, with the same values; a property test compares the two.
    """
    if not _FIELD_NAMES.issuperset(raw):
        return None
    get = raw.get
    event_id, user_id, anonymous_id = get("event_id"), get("user_id"), get("anonymous_id")
    item_id, decision_id = get("item_id"), get("decision_id")
    if user_id is None and anonymous_id is None:
        return None
    for identifier in (event_id, user_id, anonymous_id, item_id, decision_id):
        # isprintable() excludes every character the Identifier pattern excludes (and more).
        if identifier is not None and (
            type(identifier) is not str
            or not 0 < len(identifier) <= MAX_ID_LENGTH
            or not identifier.isprintable()
        ):
            return None
    kind = get("type")
    if type(kind) is not str:
        return None
    if kind not in _CHECKED_TYPES:
        if len(kind) > MAX_TYPE_LENGTH or not _EVENT_TYPE.fullmatch(kind):
            return None
        if len(_CHECKED_TYPES) < 1024:  # a few kinds recur; a set lookup beats the pattern
            _CHECKED_TYPES.add(kind)
    value = get("value")
    if value is not None:
        # NaN and infinities fail the bounds; ints compare exactly.
        if (type(value) is not float and type(value) is not int) or not (
            -MAX_VALUE <= value <= MAX_VALUE
        ):
            return None
        value = float(value)
    properties, context = get("properties"), get("context")
    if (properties is not None and not _plain_document(properties)) or (
        context is not None and not _plain_document(context)
    ):
        return None
    timestamp = get("timestamp")
    if type(timestamp) is int:
        timestamp *= 1000  # what parse_timestamp computes for whole seconds, without its checks
        if not MIN_TIMESTAMP_MS <= timestamp < MAX_TIMESTAMP_MS:
            return None
    elif timestamp is not None:
        try:
            timestamp = parse_timestamp(timestamp)
        except PydanticCustomError:
            return None
    return EventFields(
        event_id,
        kind,
        user_id,
        anonymous_id,
        item_id,
        timestamp,
        value,
        properties,
        context,
        decision_id,
    )


@dataclass(frozen=True, slots=True)
class UnparsableLine:
    """A line of a JSON Lines file that is not JSON; ingest rejects it as ``malformed_json``."""

    text: str
    line: int


EventStatus = Literal["accepted", "duplicate", "rejected"]


class EventOutcome(BaseModel):
    index: int
    status: EventStatus
    event_id: str | None = None
    code: str | None = None
    message: str | None = None
    path: str | None = None


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    events: list[EventOutcome]


class QuarantineEntry(BaseModel):
    quarantine_id: int
    event_id: str | None
    code: str
    message: str
    path: str | None
    batch_index: int | None
    source: str
    received_at: datetime
    raw: str = Field(description="The event exactly as received (JSON text).")
    replayed_at: datetime | None = None
    replayed_event_id: str | None = None


class QuarantinePage(BaseModel):
    entries: list[QuarantineEntry]
    next_after: int | None = Field(description="Pass as `after` to read the next page.")
