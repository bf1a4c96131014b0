"""Every operation of the client as data: what to send and how to read the answer.

A ``Call`` is built here once and performed by either transport (``sync.Persona`` with
``httpx.Client``, ``async_.AsyncPersona`` with ``httpx.AsyncClient``); neither knows a path,
a parameter or a model. This module does no I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from persona import installed_version
from persona.client.errors import PersonaError
from persona.client.models import (
    Decision,
    DecisionContext,
    Decisions,
    Event,
    EventOutcome,
    IngestResult,
    Item,
    ItemIn,
    MemberPage,
    Profile,
    ProfileSegments,
    Recommendations,
    Segment,
    SegmentList,
    SimilarItems,
    TraitsWritten,
    UpsertResult,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# The server's limits (README, Events): 1000 events and 5 MB a request. Batches stay a
# megabyte under the byte limit so that a proxy's own framing never tips one over.
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 4_000_000
JSON_HEADERS = {"content-type": "application/json"}
# Seconds each try may take. A recommendation answers within its 50 ms budget, and a batch of
# 1000 events takes about 25 ms on SQLite and up to 120 ms on PostgreSQL (BENCHMARKS.md:
# 42,579 and 8,213 events/s); the margin is for a server under load, or queued behind others.
DEFAULT_TIMEOUT = 10.0


def client_headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers of every request: the key as a bearer token, the client's name."""
    sent = {
        "user-agent": f"persona-client/{installed_version()}",
        "accept": "application/json, application/problem+json",
    }
    if api_key is not None:
        sent["authorization"] = f"Bearer {api_key}"
    sent.update(headers or {})
    return sent


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the reading of its answer.

    ``idempotent``: sending it twice does what sending it once does, so a try whose answer was
    lost may be repeated. Reads, replacements and events with ids are; a decision is not (each
    one is logged, and a repeat would log another)."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: tuple[tuple[str, str | int], ...] = ()
    content: bytes | None = None
    idempotent: bool = True

    @property
    def headers(self) -> dict[str, str]:
        return JSON_HEADERS if self.content is not None else {}

    def answer(self, response: httpx.Response) -> T:
        """The parsed answer of a 2xx; an answer not of the expected shape (a proxy's page, a
        server of another version) raises ``PersonaError`` ``unexpected_answer``."""
        try:
            return self.read(response)
        except (ValidationError, ValueError) as exc:
            raise PersonaError(
                f"{self.method} {self.path}: the answer is not of the expected shape: {exc}",
                status=response.status_code,
                code="unexpected_answer",
                title="Unexpected answer",
                request_id=response.headers.get("x-request-id"),
            ) from exc


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _segment(value: str) -> str:
    """A path segment: ids are free text (``a/b``, ``?``), so every reserved character is
    escaped."""
    return quote(value, safe="")


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=_encode).encode()


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()  # a zone-less time is UTC to the server
    if isinstance(value, BaseModel):
        # what the caller set, so that the server's defaults stay the server's
        return value.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An event with its id, serialized once. Every try sends these very bytes: the server
    dedupes on ``event_id`` and tells a retry (same payload: ``duplicate``) from a conflict
    (same id, another payload), so a retry must not re-serialize a caller's dict that may
    have changed meanwhile."""

    event_id: str
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


def queue_event(
    event: Event | Mapping[str, Any] | QueuedEvent, *, stamp: datetime | None = None
) -> QueuedEvent:
    """``event`` with an id (a random UUID when it has none) and, when ``stamp`` is given and
    the event has no time, that time; a ``QueuedEvent`` is kept as it is."""
    if isinstance(event, QueuedEvent):
        return event
    if isinstance(event, Event):
        data = event.model_dump(mode="json", exclude_none=True)
    else:
        data = {key: value for key, value in event.items() if value is not None}
    if "event_id" not in data:
        data["event_id"] = str(uuid.uuid4())
    if stamp is not None and "timestamp" not in data:
        data["timestamp"] = stamp
    return QueuedEvent(event_id=str(data["event_id"]), body=_json(data))


def queue_events(
    events: Iterable[Event | Mapping[str, Any] | QueuedEvent],
) -> list[QueuedEvent]:
    return [queue_event(e) for e in events]


def batches(
    events: Sequence[QueuedEvent],
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[QueuedEvent]]:
    """``events`` cut into requests the server takes: at most ``max_events`` each, and at most
    ``max_bytes`` of JSON unless one event alone is larger (the server then rejects that one
    event as ``event_too_large``, not the whole request)."""
    batch: list[QueuedEvent] = []
    size = 2
    for event in events:
        if batch and (len(batch) >= max_events or size + len(event.body) + 1 > max_bytes):
            yield batch
            batch, size = [], 2
        batch.append(event)
        size += len(event.body) + 1
    if batch:
        yield batch


def send_events(events: Sequence[QueuedEvent]) -> Call[IngestResult]:
    body = b"[" + b",".join(e.body for e in events) + b"]"
    return Call("POST", "/v1/events", _model(IngestResult), content=body)


def merge_results(results: Sequence[IngestResult]) -> IngestResult:
    """The results of consecutive batches as one, event indexes counted across them."""
    if len(results) == 1:
        return results[0]
    outcomes: list[EventOutcome] = []
    for result in results:
        offset = len(outcomes)
        outcomes += [e.model_copy(update={"index": e.index + offset}) for e in result.events]
    return IngestResult(
        accepted=sum(r.accepted for r in results),
        held=sum(r.held for r in results),
        duplicates=sum(r.duplicates for r in results),
        rejected=sum(r.rejected for r in results),
        events=outcomes,
    )


# --- profiles -------------------------------------------------------------------------------


def get_profile(person_id: str) -> Call[Profile]:
    return Call("GET", f"/v1/profiles/{_segment(person_id)}", _model(Profile))


def _profile_or_traits(response: httpx.Response) -> Profile | TraitsWritten:
    # the server answers with the whole profile to a key that may read it, else the traits
    data = json.loads(response.content)
    if isinstance(data, dict) and "kind" in data:
        return Profile.model_validate(data)
    return TraitsWritten.model_validate(data)


def put_traits(user_id: str, traits: Mapping[str, Any]) -> Call[Profile | TraitsWritten]:
    return Call(
        "PUT",
        f"/v1/users/{_segment(user_id)}/traits",
        _profile_or_traits,
        content=_json(dict(traits)),
    )


def get_profile_segments(person_id: str) -> Call[ProfileSegments]:
    return Call("GET", f"/v1/profiles/{_segment(person_id)}/segments", _model(ProfileSegments))


# --- recommendations and decisions ----------------------------------------------------------


def get_recommendations(
    person_id: str,
    *,
    n: int = 10,
    category: str | None = None,
    exclude: Iterable[str] = (),
    placement: str | None = None,
    device: str | None = None,
    country: str | None = None,
    hour: int | None = None,
) -> Call[Recommendations]:
    params: list[tuple[str, str | int]] = [("n", n)]
    named: dict[str, str | int | None] = {
        "category": category,
        "placement": placement,
        "device": device,
        "country": country,
        "hour": hour,
    }
    params += [(key, value) for key, value in named.items() if value is not None]
    params += [("exclude", item_id) for item_id in exclude]
    return Call(
        "GET",
        f"/v1/users/{_segment(person_id)}/recommendations",
        _model(Recommendations),
        params=tuple(params),
    )


def get_similar_items(
    item_id: str,
    *,
    n: int = 10,
    category: str | None = None,
    exclude: Iterable[str] = (),
    user_id: str | None = None,
) -> Call[SimilarItems]:
    params: list[tuple[str, str | int]] = [("n", n)]
    named: dict[str, str | None] = {"category": category, "user_id": user_id}
    params += [(key, value) for key, value in named.items() if value is not None]
    params += [("exclude", other) for other in exclude]
    return Call(
        "GET", f"/v1/items/{_segment(item_id)}/similar", _model(SimilarItems), params=tuple(params)
    )


def decide(
    placements: Sequence[str],
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    context: DecisionContext | Mapping[str, Any] | None = None,
    page_cap: int | None = None,
) -> Call[list[Decision]]:
    body: dict[str, Any] = {"placements": list(placements)}
    if user_id is not None:
        body["user_id"] = user_id
    if anonymous_id is not None:
        body["anonymous_id"] = anonymous_id
    if context is not None:
        body["context"] = DecisionContext.model_validate(context)
    if page_cap is not None:
        body["page_cap"] = page_cap
    return Call(
        "POST",
        "/v1/decisions",
        lambda response: Decisions.model_validate_json(response.content).decisions,
        content=_json(body),
        idempotent=False,
    )


# --- catalog --------------------------------------------------------------------------------


def get_item(item_id: str) -> Call[Item]:
    return Call("GET", f"/v1/items/{_segment(item_id)}", _model(Item))


def put_item(item: ItemIn | Mapping[str, Any]) -> Call[Item]:
    fields = ItemIn.model_validate(item).model_dump(mode="json", exclude_unset=True)
    item_id = fields.pop("item_id")
    return Call("PUT", f"/v1/items/{_segment(item_id)}", _model(Item), content=_json(fields))


def upsert_items(items: Sequence[ItemIn | Mapping[str, Any]]) -> Call[int]:
    body = {"items": [ItemIn.model_validate(item) for item in items]}
    return Call(
        "POST",
        "/v1/items",
        lambda response: UpsertResult.model_validate_json(response.content).upserted,
        content=_json(body),
    )


# --- segments -------------------------------------------------------------------------------


def list_segments() -> Call[list[Segment]]:
    return Call(
        "GET",
        "/v1/segments",
        lambda response: SegmentList.model_validate_json(response.content).segments,
    )


def list_segment_members(
    name: str, *, after: str | None = None, limit: int = 100
) -> Call[MemberPage]:
    params: list[tuple[str, str | int]] = [("limit", limit)]
    if after is not None:
        params.append(("after", after))
    return Call(
        "GET", f"/v1/segments/{_segment(name)}/members", _model(MemberPage), params=tuple(params)
    )
