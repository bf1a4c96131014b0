"""The event contract: what a client may send, and what it gets back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

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

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
EventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_.:-]*$"),
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
        if not math.isfinite(value):
            raise PydanticCustomError("invalid_timestamp", "timestamp must be a finite number")
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
        default=None, allow_inf_nan=False, ge=-1e12, le=1e12, description="Rating or revenue."
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
