"""Webhooks: the change stream's messages posted to a URL, signed, retried, dead-lettered.

A webhook names the kinds of message it wants (``segment``, ``event``, ``decision``,
``erasure``). `persona worker` reads the stream as one consumer group per webhook (a slow or
failing server delays only its own deliveries) and posts up to ``webhook_batch`` messages a
request::

    POST <url>
    Content-Type: application/json
    Persona-Webhook-Id: wh_…
    Persona-Signature: t=1767225600,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>

    {"webhook_id": "wh_…", "messages": [{"id": "segment:vip:u:42:enter:1767225600000",
                                          "kind": "segment", "data": {…}}, …]}

A 2xx answer delivers the request's messages; anything else, or no answer within the timeout,
is retried with a doubling wait, and after the last attempt the messages become dead letters
(``GET /v1/webhooks/{id}/dead-letters``). A message is posted at least once: a worker that dies
after the post and before noting the delivery posts it again, with the same id (receivers drop
ids they have seen); a noted delivery is never posted again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Sequence

import httpx
import orjson

from persona.clock import Clock
from persona.errors import NotFoundError
from persona.storage.protocols import Storage
from persona.storage.records import DeadLetter, WebhookRecord
from persona.stream.redis_stream import Received, RedisStream
from persona.stream.settings import StreamSettings

log = logging.getLogger(__name__)

KINDS = ("event", "segment", "decision", "erasure")
GROUP_PREFIX = "webhook:"  # a webhook's consumer group is this and its id
SIGNATURE_HEADER = "Persona-Signature"
WEBHOOK_HEADER = "Persona-Webhook-Id"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Persona-Signature`` header of a request posted at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, tolerance_seconds: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` under ``secret``, posted within the tolerance of now:
    what a receiver checks before trusting a delivery."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def webhook_group(webhook_id: str) -> str:
    """The consumer group of the stream that a webhook's deliveries read."""
    return GROUP_PREFIX + webhook_id


class WebhookService:
    """Webhooks as the API manages them (admin)."""

    def __init__(self, storage: Storage, clock: Clock, stream: RedisStream | None = None) -> None:
        self._storage = storage
        self._clock = clock
        self._stream = stream

    def create(self, url: str, kinds: Sequence[str], secret: str | None = None) -> WebhookRecord:
        record = WebhookRecord(
            webhook_id=f"wh_{secrets.token_hex(8)}",
            url=url,
            kinds=tuple(sorted(set(kinds))),
            secret=secret or f"whsec_{secrets.token_urlsafe(32)}",
            created_at_ms=self._clock.now_ms(),
            active=True,
        )
        # Its consumer group is made now, not when a worker first sees the webhook: every
        # change published from its creation on reaches it, however late a worker looks.
        group = webhook_group(record.webhook_id)
        if self._stream is not None:
            self._stream.join(group)
        try:
            with self._storage.write() as uow:
                uow.webhooks.add(record)
                uow.changes_profiles(())
        except BaseException:
            if self._stream is not None:
                self._stream.leave(group)
            raise
        return record

    def active(self) -> list[WebhookRecord]:
        with self._storage.read() as uow:
            return [hook for hook in uow.webhooks.all() if hook.active]

    def get(self, webhook_id: str) -> WebhookRecord:
        with self._storage.read() as uow:
            hook = uow.webhooks.get(webhook_id)
        if hook is None or not hook.active:
            raise NotFoundError(f"no webhook {webhook_id!r}")
        return hook

    def delete(self, webhook_id: str) -> None:
        with self._storage.write() as uow:
            stopped = uow.webhooks.deactivate(webhook_id)
            uow.changes_profiles(())
        if not stopped:
            raise NotFoundError(f"no webhook {webhook_id!r}")

    def dead_letters(self, webhook_id: str, limit: int = 100) -> list[DeadLetter]:
        self.get(webhook_id)
        with self._storage.read() as uow:
            return uow.webhooks.dead_letters(webhook_id, limit)


class Deliveries:
    """Posts a webhook's messages (the worker's side): drops those delivered before, retries,
    notes each outcome in the store."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        settings: StreamSettings,
        client: httpx.Client,
        *,
        counted: Callable[[str, int], None] = lambda outcome, n: None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._settings = settings
        self._client = client
        self._counted = counted  # (outcome, messages): metrics

    def deliver(self, hook: WebhookRecord, received: Sequence[Received]) -> None:
        wanted = [r.message for r in received if r.message.kind in hook.kinds]
        if not wanted:
            return
        with self._storage.read() as uow:
            done = uow.webhooks.handled(hook.webhook_id, [m.message_id for m in wanted])
        fresh = [m for m in wanted if m.message_id not in done]
        if len(fresh) < len(wanted):
            self._counted("skipped", len(wanted) - len(fresh))
        if not fresh:
            return
        size = self._settings.webhook_batch
        posted: list[tuple[list[str], int, str | None, list[str]]] = []
        for start in range(0, len(fresh), size):
            batch = fresh[start : start + size]
            documents = [{"id": m.message_id, "kind": m.kind, "data": m.body} for m in batch]
            body = orjson.dumps({"webhook_id": hook.webhook_id, "messages": documents})
            attempts, error = self._post(hook, body)
            kept = [] if error is None else [orjson.dumps(d).decode() for d in documents]
            posted.append(([m.message_id for m in batch], attempts, error, kept))
            self._counted("delivered" if error is None else "dead", len(batch))
        # Noted once for the whole read (a worker that dies first posts them again, with their
        # ids); rows of its own only: beside the ingest batches on PostgreSQL, not after them.
        now = self._clock.now_ms()
        with self._storage.write(parallel=True) as uow:
            for ids, attempts, error, bodies in posted:
                status = "delivered" if error is None else "dead"
                uow.webhooks.record(
                    hook.webhook_id,
                    ids,
                    status=status,
                    attempts=attempts,
                    at_ms=now,
                    error=error,
                    bodies=bodies or None,
                )
            uow.changes_profiles(())

    def _post(self, hook: WebhookRecord, body: bytes) -> tuple[int, str | None]:
        """Post until a 2xx answer or the last attempt; (attempts made, last error or None)."""
        settings = self._settings
        error = "not attempted"
        for attempt in range(1, settings.webhook_attempts + 1):
            if attempt > 1:
                self._counted("retried", 1)
                time.sleep(settings.webhook_backoff_seconds * 2 ** (attempt - 2))
            headers = {
                "Content-Type": "application/json",
                WEBHOOK_HEADER: hook.webhook_id,
                SIGNATURE_HEADER: sign(hook.secret, int(time.time()), body),
            }
            try:
                answer = self._client.post(
                    hook.url,
                    content=body,
                    headers=headers,
                    timeout=settings.webhook_timeout_seconds,
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                continue
            if 200 <= answer.status_code < 300:
                return attempt, None
            error = f"HTTP {answer.status_code}"
        log.warning("webhook %s: %s after %d attempts", hook.webhook_id, error, attempt)
        return settings.webhook_attempts, error
