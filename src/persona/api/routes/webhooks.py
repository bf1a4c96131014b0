"""HTTP routes of webhooks (admin): the change stream's messages posted to a URL."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Path, Query, Response

from persona.access.keys import Principal
from persona.api.deps import AdminKey, EngineDep
from persona.clock import utc
from persona.engine import Engine
from persona.storage.records import WebhookRecord
from persona.stream import (
    DeadLetter,
    DeadLetterList,
    Webhook,
    WebhookCreated,
    WebhookIn,
    WebhookList,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])

WebhookId = Path(pattern=r"^wh_[0-9a-f]{16}$")


def _public(record: WebhookRecord) -> Webhook:
    return Webhook(
        webhook_id=record.webhook_id,
        url=record.url,
        kinds=list(record.kinds),
        created_at=utc(record.created_at_ms),
    )


@router.post(
    "/webhooks", operation_id="create_webhook", response_model=WebhookCreated, status_code=201
)
def create_webhook(
    body: WebhookIn, principal: Principal = AdminKey, engine: Engine = EngineDep
) -> WebhookCreated:
    """Post the change stream's messages of these kinds to a URL (`persona worker` delivers
    them; docs/stream.md). The answer holds the signing secret, shown this once."""
    record = engine.webhooks.create(body.url, body.kinds, body.secret)
    return WebhookCreated(**_public(record).model_dump(), secret=record.secret)


@router.get("/webhooks", operation_id="list_webhooks", response_model=WebhookList)
def list_webhooks(principal: Principal = AdminKey, engine: Engine = EngineDep) -> WebhookList:
    return WebhookList(webhooks=[_public(hook) for hook in engine.webhooks.active()])


@router.get("/webhooks/{webhook_id}", operation_id="get_webhook", response_model=Webhook)
def get_webhook(
    webhook_id: str = WebhookId, principal: Principal = AdminKey, engine: Engine = EngineDep
) -> Webhook:
    return _public(engine.webhooks.get(webhook_id))


@router.delete("/webhooks/{webhook_id}", operation_id="delete_webhook", status_code=204)
def delete_webhook(
    webhook_id: str = WebhookId, principal: Principal = AdminKey, engine: Engine = EngineDep
) -> Response:
    """Stop delivering to it (messages already posted stay posted)."""
    engine.webhooks.delete(webhook_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/dead-letters",
    operation_id="list_dead_letters",
    response_model=DeadLetterList,
)
def dead_letters(
    webhook_id: str = WebhookId,
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = AdminKey,
    engine: Engine = EngineDep,
) -> DeadLetterList:
    """Messages every attempt failed to deliver, newest first."""
    letters = engine.webhooks.dead_letters(webhook_id, limit)
    return DeadLetterList(
        dead_letters=[
            DeadLetter(
                message_id=d.message_id,
                attempts=d.attempts,
                failed_at=utc(d.at_ms),
                error=d.error,
                message=orjson.loads(d.body),
            )
            for d in letters
        ]
    )
