"""The change stream: committed events, segment changes, decisions and erasures published
through a transactional outbox (Redis Streams, ``PERSONA_STREAM_URL``), and `persona worker`,
which consumes it: the event lake, webhooks.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.stream.redis_stream import Received, RedisStream
from persona.stream.relay import Relay
from persona.stream.schema import (
    DeadLetter,
    DeadLetterList,
    Webhook,
    WebhookCreated,
    WebhookIn,
    WebhookList,
)
from persona.stream.settings import StreamSettings
from persona.stream.webhooks import KINDS, WebhookService, sign, verify
from persona.stream.worker import Worker, relay_jobs

__all__ = [
    "KINDS",
    "DeadLetter",
    "DeadLetterList",
    "Received",
    "RedisStream",
    "Relay",
    "StreamSettings",
    "Webhook",
    "WebhookCreated",
    "WebhookIn",
    "WebhookList",
    "WebhookService",
    "Worker",
    "relay_jobs",
    "sign",
    "verify",
]
