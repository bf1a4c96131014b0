"""The HTTP server's own guard: a deadline and a size bound on each request's head.

The request line and headers are read by the server before any application code runs, so a
client that sends them a byte at a time would hold its connection for as long as it likes (the
keep-alive timeout covers only idle connections between requests), and one that sends
megabytes of headers would have them all parsed and held. This protocol closes a connection
whose head has not arrived within ``head_timeout_seconds`` of its first byte (or of the
connection, for the first request), and answers 431 and closes once a head still incomplete
has taken more than ``max_head_bytes`` (counted by reads, so the bound holds to within one
read of 64 KiB). Bodies have their deadline and bound in the request-limits middleware.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from persona.api.middleware import headers_over
from persona.api.problems import error_problem
from persona.errors import HeadersTooLargeError


def protocol_with_head_limits(
    head_timeout_seconds: float, max_head_bytes: int
) -> type[HttpToolsProtocol]:
    body = bytes(error_problem(HeadersTooLargeError(headers_over(max_head_bytes)), None).body)
    too_large = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )

    class HeadLimitsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._head_timer is None:  # no head arriving: a body, or the next request's start
                super().data_received(data)
                return
            self._head_bytes += len(data)
            super().data_received(data)  # may complete the head (the rest of the read is body)
            if self._head_timer is not None and self._head_bytes > max_head_bytes:
                self._disarm()
                if not self.transport.is_closing():
                    self.transport.write(too_large)
                    self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(head_timeout_seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeadLimitsProtocol
