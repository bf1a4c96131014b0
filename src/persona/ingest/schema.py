"""The event contract: what a client may send, and what it gets back."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from persona.documents import (
    MAX_ID_LENGTH,
    EventType,
    Id,
    Identifier,
    check_json_document,
)

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
MAX_VALUE = 1e12


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

    event_id: Id | None = Field(
        default=None, description="Client id for idempotency; assigned by the server when absent."
    )
    type: EventType = Field(
        description=(
            "view, click, add_to_cart, purchase, rate, impression, identify, or a custom name."
        )
    )
    user_id: Id | None = None
    anonymous_id: Id | None = None
    item_id: Id | None = None
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
    decision_id: Id | None = None

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


class EventFields(Protocol):
    """The values of a valid event: what ``EventIn`` and ``PlainEvent`` both hold (the
    timestamp in milliseconds)."""

    @property
    def event_id(self) -> str | None: ...
    @property
    def type(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def anonymous_id(self) -> str | None: ...
    @property
    def item_id(self) -> str | None: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def properties(self) -> dict[str, Any] | None: ...
    @property
    def context(self) -> dict[str, Any] | None: ...
    @property
    def decision_id(self) -> str | None: ...


def _integer_id(value: int) -> str:
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise ValueError("id too long")  # EventIn says so, with its message
    return text


class _OrInteger:
    """Makes a strict id also take an integer (not a boolean), as its decimal text, inside
    pydantic-core: a text id costs no Python call."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [
                handler(source),
                core_schema.no_info_after_validator_function(
                    _integer_id, core_schema.int_schema(strict=True)
                ),
            ]
        )


# The fast path's id: text, or an integer (``id_text``; other numbers go to ``EventIn``).
StrictIdentifier = Annotated[Identifier, Strict(), _OrInteger()]
# ISO 8601 text is far shorter; the bound keeps the size of a plain event bounded (see ingest).
TimestampText = Annotated[str, Strict(), StringConstraints(max_length=64)]


@dataclass(slots=True)
class PlainEvent:
    """An event of the common shape: JSON strings, numbers and objects where ``EventIn`` wants
    them, nothing coerced.

    Validating with ``EventIn`` costs several microseconds per event, more than storing it:
    its timestamp, documents and identity are checked by Python functions. This shape is
    checked by pydantic-core alone, a whole batch in one call (types, lengths, patterns,
    bounds, unknown keys), and ``settle`` adds the checks a schema cannot state. It accepts
    only what ``EventIn`` accepts, with the same values; a property test compares the two.
    Anything else goes to ``EventIn``, which decides with its error messages.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    type: Annotated[EventType, Strict()]
    event_id: StrictIdentifier | None = None
    user_id: StrictIdentifier | None = None
    anonymous_id: StrictIdentifier | None = None
    item_id: StrictIdentifier | None = None
    timestamp: Annotated[int, Strict()] | Annotated[float, Strict()] | TimestampText | None = None
    value: (
        Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-MAX_VALUE, le=MAX_VALUE)] | None
    ) = None
    properties: Annotated[dict[str, Any], Strict()] | None = None
    context: Annotated[dict[str, Any], Strict()] | None = None
    decision_id: StrictIdentifier | None = None

    def settle(self) -> EventFields | None:
        """Identity, the timestamp in milliseconds (in place: call once), bounded documents;
        None when ``EventIn`` must decide."""
        if self.user_id is None and self.anonymous_id is None:
            return None
        timestamp = self.timestamp
        if type(timestamp) is int:
            timestamp *= 1000  # what parse_timestamp computes for whole seconds, unchecked
            if not MIN_TIMESTAMP_MS <= timestamp < MAX_TIMESTAMP_MS:
                return None
            self.timestamp = timestamp
        elif timestamp is not None:
            try:
                self.timestamp = parse_timestamp(timestamp)
            except PydanticCustomError:
                return None
        for document in (self.properties, self.context):
            if document is not None:
                try:
                    check_json_document(document)
                except PydanticCustomError:
                    return None
        return cast(EventFields, self)  # its timestamp is in milliseconds now


_PLAIN_EVENT = TypeAdapter(PlainEvent)
_PLAIN_EVENTS = TypeAdapter(list[PlainEvent])


def plain_event(raw: Any) -> EventFields | None:
    """``raw`` as a settled ``PlainEvent``, or None when it is not one."""
    try:
        event = _PLAIN_EVENT.validate_python(raw)
    except ValidationError:
        return None
    return event.settle()


def plain_events(raws: Sequence[Any]) -> list[EventFields | None] | None:
    """Each event as a settled ``PlainEvent`` (None where ``EventIn`` must decide), or None
    when some event is not of the plain shape at all (then ask ``plain_event`` one by one)."""
    try:
        events = _PLAIN_EVENTS.validate_python(raws)
    except ValidationError:
        return None
    return [event.settle() for event in events]


@dataclass(frozen=True, slots=True)
class UnparsableLine:
    """A line of a JSON Lines file that is not JSON; ingest rejects it as ``malformed_json``."""

    text: str
    line: int


EventStatus = Literal["accepted", "held", "duplicate", "rejected"]


class EventOutcome(BaseModel):
    index: int
    status: EventStatus
    event_id: str | None = None
    code: str | None = None
    message: str | None = None
    path: str | None = None


class IngestResponse(BaseModel):
    accepted: int
    held: int = Field(
        description="Events stored aside for lack of consent and never used (docs/privacy.md)."
    )
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
