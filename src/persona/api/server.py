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
import ctypes
import ctypes.util
import os
import signal
import threading
import time

from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from persona.api.app import create_app
from persona.api.middleware import headers_over
from persona.api.problems import error_problem
from persona.engine import Engine
from persona.errors import HeadersTooLargeError
from persona.observability.logging import configure_logging
from persona.runtime import tune_collector
from persona.settings import SUPERVISOR_PID, load_settings

PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies


class HeadLimitsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with the head's deadline and size bound (``configure``)."""

    head_timeout_seconds = 10.0
    max_head_bytes = 16 * 1024
    too_large = b""
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0

    @classmethod
    def configure(cls, head_timeout_seconds: float, max_head_bytes: int) -> None:
        body = bytes(error_problem(HeadersTooLargeError(headers_over(max_head_bytes)), None).body)
        cls.head_timeout_seconds = head_timeout_seconds
        cls.max_head_bytes = max_head_bytes
        cls.too_large = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None:  # no head arriving: a body, or the next request's start
            super().data_received(data)
            return
        self._head_bytes += len(data)
        super().data_received(data)  # may complete the head (the rest of the read is body)
        if self._head_timer is not None and self._head_bytes > self.max_head_bytes:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(self.too_large)
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
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


HeadLimitsProtocol.configure(
    HeadLimitsProtocol.head_timeout_seconds, HeadLimitsProtocol.max_head_bytes
)


def protocol_with_head_limits(
    head_timeout_seconds: float, max_head_bytes: int
) -> type[HttpToolsProtocol]:
    """A protocol class with these limits (the single-process server's)."""
    configured: type[HeadLimitsProtocol] = type("HeadLimitsProtocol", (HeadLimitsProtocol,), {})
    configured.configure(head_timeout_seconds, max_head_bytes)
    return configured


def worker_app() -> FastAPI:
    """The application of one of the processes of `persona serve --workers N` (uvicorn calls
    this in each new process; the settings come from the environment the parent set)."""
    settings = load_settings()
    configure_logging(settings.server.log_level)
    HeadLimitsProtocol.configure(
        settings.server.head_timeout_seconds, settings.server.max_header_bytes
    )
    _die_with_parent()
    tune_collector()
    return create_app(Engine.open(settings), background_jobs=True)


ORPHAN_GRACE_SECONDS = 15.0  # past uvicorn's graceful stop (10 s)


def _die_with_parent() -> None:
    """Exit when the server's first process dies, however it died (a SIGKILL leaves no time
    to stop its workers): the kernel sends SIGKILL at once on Linux; elsewhere a thread
    notices within a second and asks for a graceful stop."""
    # The supervisor's pid as it set it: had it died before this call (a worker takes a
    # second or two to import), the parent now would be whoever adopted this process.
    parent = int(os.environ.get(SUPERVISOR_PID, 0)) or os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the call took effect
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        # A graceful stop waits for open connections, which a client may hold forever: an
        # orphan must not outlive its server (it would keep serving and writing alone).
        time.sleep(ORPHAN_GRACE_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
