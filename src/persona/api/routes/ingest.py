"""HTTP routes of the ingest domain: events and the quarantine."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter
from starlette.responses import Response

from persona.access.keys import AnyScope, Scope
from persona.api.deps import KEY_PARAMETER, EngineDep, require
from persona.api.query import MAX_ROW_ID, parse_json
from persona.clock import utc_or_none
from persona.documents import NO_NUL
from persona.engine import Engine
from persona.errors import InvalidRequestError
from persona.ingest.schema import EventIn, IngestResponse, QuarantineEntry, QuarantinePage

router = APIRouter(prefix="/v1", tags=["events"])

_EVENT_SCHEMA = TypeAdapter(EventIn).json_schema()
_BODY_SCHEMA = {
    "oneOf": [
        _EVENT_SCHEMA,
        {"type": "array", "items": _EVENT_SCHEMA, "minItems": 1, "maxItems": 1000},
        {
            "type": "object",
            "properties": {
                "events": {"type": "array", "items": _EVENT_SCHEMA, "minItems": 1, "maxItems": 1000}
            },
            "required": ["events"],
            "additionalProperties": False,
        },
    ]
}
_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
}
_KEY_IN_URL = {
    "name": KEY_PARAMETER,
    "in": "query",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "A `public` key, for a client that cannot set a header (a page's"
    " `navigator.sendBeacon`); any other key is refused here. Read only when the request"
    " carries no key in a header.",
}


def events_of(payload: Any) -> list[Any]:
    """One event, an array of events, or ``{"events": [...]}``."""
    if isinstance(payload, list):
        events = payload
    elif isinstance(payload, dict) and "events" in payload:
        if set(payload) != {"events"} or not isinstance(payload["events"], list):
            raise InvalidRequestError('a batch is {"events": [...]} with no other keys')
        events = payload["events"]
    elif isinstance(payload, dict):
        events = [payload]
    else:
        raise InvalidRequestError("the body must be an event object or an array of events")
    if not events:
        raise InvalidRequestError("the batch holds no events")
    return events


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


@router.post(
    "/events",
    operation_id="ingest_events",
    summary="Ingest one event or a batch of up to 1000",
    response_model=IngestResponse,
    openapi_extra={**_BODY, "parameters": [_KEY_IN_URL]},
    dependencies=[require(AnyScope((Scope.INGEST, Scope.PUBLIC)))],  # a web page's key too
)
async def ingest_events(request: Request, engine: Engine = EngineDep) -> Response:
    """Each event ends as `accepted`, `held` (stored aside for lack of consent, never used),
    `duplicate` or `rejected` (with a code, a message and the path of the error; rejected events
    are kept in the quarantine). The answer comes after the commit: a 200 means every accepted
    and held event is stored."""
    events = events_of(parse_json(await request.body()))
    result = await run_in_threadpool(engine.ingest.ingest, events)
    return _json(result.as_dict())


def _entry(record: Any) -> QuarantineEntry:
    return QuarantineEntry(
        quarantine_id=record.quarantine_id,
        event_id=record.event_id,
        code=record.code,
        message=record.message,
        path=record.path,
        batch_index=record.batch_index,
        source=record.source,
        received_at=utc_or_none(record.received_at_ms),
        raw=record.raw,
        replayed_at=utc_or_none(record.replayed_at_ms),
        replayed_event_id=record.replayed_event_id,
    )


@router.get(
    "/quarantine",
    operation_id="list_quarantine",
    summary="List quarantined events",
    response_model=QuarantinePage,
    tags=["quarantine"],
    dependencies=[require(Scope.ADMIN)],
)
def list_quarantine(
    after: int = Query(0, ge=0, le=MAX_ROW_ID, description="Return entries with a greater id."),
    limit: int = Query(100, ge=1, le=1000),
    code: str | None = Query(None, max_length=64, pattern=NO_NUL),
    engine: Engine = EngineDep,
) -> QuarantinePage:
    with engine.storage.read() as uow:
        records = uow.quarantine.list(after_id=after, limit=limit, code=code)
    entries = [_entry(r) for r in records]
    next_after = entries[-1].quarantine_id if len(entries) == limit else None
    return QuarantinePage(entries=entries, next_after=next_after)


@router.post(
    "/quarantine/{quarantine_id}/replay",
    operation_id="replay_quarantined_event",
    summary="Replay a quarantined event once, as stored or as fixed in the body",
    response_model=IngestResponse,
    tags=["quarantine"],
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": _EVENT_SCHEMA}},
        }
    },
    dependencies=[require(Scope.ADMIN)],
)
async def replay_quarantined_event(
    request: Request, quarantine_id: int = Path(le=MAX_ROW_ID), engine: Engine = EngineDep
) -> Response:
    body = await request.body()
    fixed = parse_json(body) if body.strip() else None
    if fixed is not None and not isinstance(fixed, dict):
        raise InvalidRequestError("the fixed event must be a JSON object")
    result = await run_in_threadpool(engine.ingest.replay, quarantine_id, fixed)
    return _json(result.as_dict())
