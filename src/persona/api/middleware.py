"""ASGI middleware: request ids, per-route metrics, and the request body limit.

Written as plain ASGI callables rather than ``BaseHTTPMiddleware`` so they add microseconds, not
a task per request, on the hot ingest and profile paths.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persona.api.problems import error_problem
from persona.errors import (
    HeadersTooLargeError,
    PayloadTooLargeError,
    PersonaError,
    RequestTimeoutError,
)
from persona.ids import random_hex
from persona.observability.metrics import Metrics

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


async def _refuse_with(
    exc: PersonaError, scope: Scope, receive: Receive, send: Send, *, close: bool
) -> None:
    request_id = scope.get("state", {}).get("request_id")
    await error_problem(exc, request_id, close=close)(scope, receive, send)


def headers_over(limit: int) -> str:
    return f"the request headers are over the limit of {limit} bytes"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestContextMiddleware:
    """Gives each request an id (echoed as ``x-request-id``) and records its metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        request_id = offered if offered and _SAFE_REQUEST_ID.match(offered) else random_hex()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(k == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.request_done(path, method, status, time.perf_counter() - started)


class BodyLimitMiddleware:
    """Refuses headers over their limit with 431, and bodies over theirs with 413, whether
    declared by Content-Length or chunked.

    Headers are refused before anything reads them (an ``Authorization`` of megabytes costs
    nothing past this point); the connection closes, so the client cannot go on sending them.

    A request with a body must carry a valid key (``authenticate``) before the body is read:
    otherwise the framework would parse it, on the event loop, before the route's key check,
    and a few keyless megabytes would stall every request. The body of a refused request is
    read and dropped like that of a 413, never parsed.

    A client that writes its whole body before reading the answer (Python's ``urllib`` and
    ``requests``) would meet a connection closed under it, not the 413, if the server answered
    and closed with the body still arriving: the unread bytes make the kernel reset the
    connection, and the reset reaches the client before it reads. So the rest of the body is
    read and dropped first, up to ``drain_bytes`` and ``drain_seconds``; past either bound the
    answer goes out at once with ``Connection: close`` (the server would otherwise go on
    reading the body to find the next request). A declared length over the limit is refused
    without reading the body when it is beyond the drain bound, or when the client waits for
    ``100 Continue`` (it has sent nothing yet); a request with no body or a declared length
    within the limit is read by the route. A body is counted as it arrives; once over the
    limit, reading fails with ``PayloadTooLargeError`` so the route never sees a partial body,
    and this middleware sends the 413 whatever the route made of the error. A body that has
    not arrived within ``body_timeout_seconds`` of its first read is refused the same way,
    with 408 and ``Connection: close``: a client sending a byte a second holds nothing long.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        max_header_bytes: int = 16 * 1024,
        drain_bytes: int = 64 * 1024 * 1024,
        drain_seconds: float = 10.0,
        body_timeout_seconds: float = 60.0,
        authenticate: Callable[[Scope], object] | None = None,
    ) -> None:
        self.app = app
        self.body_timeout_seconds = body_timeout_seconds
        self.authenticate = authenticate
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        header_bytes = 0
        for key, value in scope.get("headers", ()):
            header_bytes += len(key) + len(value)
            if key == b"content-length" and value.isdigit():
                declared = int(value)
            elif key == b"transfer-encoding":
                chunked = True
        if header_bytes > self.max_header_bytes:
            too_large = HeadersTooLargeError(headers_over(self.max_header_bytes))
            await _refuse_with(too_large, scope, receive, send, close=True)
            return
        if declared is not None and declared > self.max_bytes:
            waiting = (_header(scope, b"expect") or "").lower() == "100-continue"
            complete = (
                not waiting
                and declared <= self.drain_bytes
                and await self._drain(receive, declared)
            )
            refused = PayloadTooLargeError(self._detail())
            await _refuse_with(refused, scope, receive, send, close=not complete)
            return
        if self.authenticate is not None and (chunked or declared):
            try:
                self.authenticate(scope)
            except PersonaError as exc:
                whole = await self._drain(receive, self.max_bytes)
                await _refuse_with(exc, scope, receive, send, close=not whole)
                return
        if not chunked and not declared:  # no body: nothing to count or time
            await self.app(scope, receive, send)
            return
        received = 0
        done = False  # the whole body has arrived
        deadline: float | None = None
        refusal: tuple[PersonaError, bool] | None = None  # (answer, whether the body was read)
        started = False

        async def guarded_receive() -> Message:
            nonlocal received, done, deadline, refusal
            if done:
                return await receive()
            if deadline is None:
                deadline = anyio.current_time() + self.body_timeout_seconds
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                late = RequestTimeoutError(
                    f"the request body did not arrive within {self.body_timeout_seconds:g} s"
                )
                refusal = (late, False)
                raise late from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more = message.get("more_body", False)
                done = not more
                if received > self.max_bytes:
                    too_large = PayloadTooLargeError(self._detail())
                    refusal = (too_large, not more or await self._drain(receive, self.drain_bytes))
                    raise too_large
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return  # the route's answer to the error: this middleware answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refusal is None or started:
                raise
        if refusal is not None and not started:
            answer, whole = refusal
            await _refuse_with(answer, scope, receive, send, close=not whole)

    async def _drain(self, receive: Receive, budget: int) -> bool:
        """Read and drop the rest of the body; whether it ended within the bounds."""
        dropped = 0
        with anyio.move_on_after(self.drain_seconds):
            while dropped <= budget:
                message = await receive()
                if message["type"] != "http.request":
                    return False  # the client went away
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return dropped <= budget
        return False

    def _detail(self) -> str:
        return f"the request body is over the limit of {self.max_bytes} bytes"
