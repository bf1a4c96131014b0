"""The HTTP server's own guard: a deadline on each request's head.

The request line and headers are read by the server before any application code runs, so a
client that sends them a byte at a time would hold its connection for as long as it likes (the
keep-alive timeout covers only idle connections between requests). This protocol closes a
connection whose head has not arrived within ``head_timeout_seconds`` of its first byte (or of
the connection, for the first request). Bodies have their deadline in the request-limits
middleware.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def protocol_with_head_timeout(head_timeout_seconds: float) -> type[HttpToolsProtocol]:
    class HeadTimeoutProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

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
            self._head_timer = self.loop.call_later(head_timeout_seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeadTimeoutProtocol
