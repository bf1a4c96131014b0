"""Bodies over the limit get the 413, also when the client writes the whole body before reading.

Closing a connection while the client still writes makes the kernel reset it, and the client
(Python's urllib, requests) then sees "connection reset" instead of the 413. The body limit
reads and drops the rest of such a body first, within bounds of bytes and time.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from persona.api.app import create_app
from persona.api.middleware import BodyLimitMiddleware
from persona.clock import FakeClock
from tests.conftest import open_engine
from tests.server import free_port, start_server

LIMIT = 1024
CHUNKED = {"transfer-encoding": "chunked"}


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    body = await Request(scope, receive).body()
    await Response(str(len(body)))(scope, receive, send)


def _run(
    middleware: BodyLimitMiddleware, headers: dict[str, str], chunks: AsyncIterator[bytes]
) -> tuple[list[Message], int]:
    """The messages the middleware sends for a request, and how many body messages it read."""
    sent: list[Message] = []
    read = 0

    async def receive() -> Message:
        nonlocal read
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "state": {"request_id": "r1"},
    }
    anyio.run(middleware, scope, receive, send)
    return sent, read


async def _chunks(count: int, size: int = 512, pause: float = 0.0) -> AsyncIterator[bytes]:
    for _ in range(count):
        if pause:
            await anyio.sleep(pause)
        yield b"x" * size


def _answer(sent: list[Message]) -> tuple[int, dict[str, str], Any]:
    start, body = sent[0], sent[1]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, orjson.loads(body["body"])


def test_a_declared_body_over_the_limit_is_read_before_the_answer() -> None:
    middleware = BodyLimitMiddleware(_echo_length, LIMIT, drain_bytes=10 * LIMIT)
    sent, read = _run(middleware, {"content-length": str(4 * LIMIT)}, _chunks(8))
    status, headers, problem = _answer(sent)
    assert status == 413 and problem["code"] == "payload_too_large"
    assert problem["request_id"] == "r1" and headers["content-type"] == "application/problem+json"
    assert read == 8 and "connection" not in headers  # all read: the connection may stay


def test_a_chunked_body_over_the_limit_is_read_before_the_answer() -> None:
    middleware = BodyLimitMiddleware(_echo_length, LIMIT, drain_bytes=10 * LIMIT)
    sent, read = _run(middleware, CHUNKED, _chunks(8))
    status, headers, _ = _answer(sent)
    assert (status, read) == (413, 8) and "connection" not in headers


def test_a_body_within_the_limit_reaches_the_route() -> None:
    for headers in (CHUNKED, {"content-length": str(LIMIT)}):
        sent, _ = _run(BodyLimitMiddleware(_echo_length, LIMIT), headers, _chunks(2))
        assert sent[0]["status"] == 200 and sent[1]["body"] == b"1024"


def test_draining_stops_at_its_byte_bound_and_closes() -> None:
    middleware = BodyLimitMiddleware(_echo_length, LIMIT, drain_bytes=4 * LIMIT)
    sent, read = _run(middleware, CHUNKED, _chunks(10_000))
    status, headers, _ = _answer(sent)
    assert status == 413 and headers["connection"] == "close"
    assert read == 3 + 9  # 512 bytes each: 3 to pass the limit, then 9 to pass the drain bound


def test_draining_stops_at_its_time_bound_and_closes() -> None:
    middleware = BodyLimitMiddleware(_echo_length, LIMIT, drain_seconds=0.2)
    sent, read = _run(middleware, CHUNKED, _chunks(10_000, pause=0.05))
    status, headers, _ = _answer(sent)
    assert status == 413 and headers["connection"] == "close" and read < 20


def test_a_declared_body_beyond_the_drain_bound_is_refused_unread() -> None:
    middleware = BodyLimitMiddleware(_echo_length, LIMIT, drain_bytes=4 * LIMIT)
    sent, read = _run(middleware, {"content-length": str(5 * LIMIT)}, _chunks(10))
    status, headers, _ = _answer(sent)
    assert (status, read, headers["connection"]) == (413, 0, "close")


def test_a_client_waiting_for_100_continue_is_refused_unread() -> None:
    headers = {"content-length": str(2 * LIMIT), "expect": "100-continue"}
    sent, read = _run(BodyLimitMiddleware(_echo_length, LIMIT), headers, _chunks(4))
    status, answer_headers, _ = _answer(sent)
    assert (status, read, answer_headers["connection"]) == (413, 0, "close")


@pytest.fixture
def small_limit(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[TestClient]:
    engine = open_engine(tmp_path, database_url, clock, server={"max_body_bytes": LIMIT})
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield client
    engine.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/items/i1"), ("PUT", "/v1/users/u1/traits"), ("POST", "/v1/segments")],
)
def test_a_chunked_body_over_the_limit_gets_413_on_every_route(
    small_limit: TestClient, method: str, path: str
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "'
        yield b"x" * 4 * LIMIT
        yield b'"}'

    response = small_limit.request(
        method, path, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text  # was 400 on routes the framework reads
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.slow
def test_a_client_that_writes_before_reading_gets_the_413(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(tmp_path, port, "--dev")
    base = f"http://127.0.0.1:{port}"
    try:
        event = {
            "type": "view",
            "user_id": "u1",
            "item_id": "i1",
            "properties": {"pad": "x" * 9000},
        }
        body = orjson.dumps([event] * 1000)  # 9 MB: over the 5 MB limit
        assert len(body) > 9_000_000

        def refused(request: urllib.request.Request) -> Any:
            with pytest.raises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(request, timeout=60)
            assert raised.value.code == 413
            assert raised.value.headers["content-type"] == "application/problem+json"
            return orjson.loads(raised.value.read())

        json_type = {"content-type": "application/json"}
        problem = refused(urllib.request.Request(f"{base}/v1/events", body, json_type))
        assert problem["code"] == "payload_too_large" and problem["request_id"]
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        chunked = urllib.request.Request(f"{base}/v1/events", chunks, json_type, method="POST")
        assert refused(chunked)["code"] == "payload_too_large"
        item = orjson.dumps({"title": "x" * 9_000_000})
        put = urllib.request.Request(f"{base}/v1/items/i1", item, json_type, method="PUT")
        assert refused(put)["code"] == "payload_too_large"
        with httpx.Client(base_url=base) as http:
            assert http.get("/v1/profiles/u1").status_code == 404
            assert http.get("/v1/items").json()["items"] == []
            assert http.get("/v1/quarantine").json()["entries"] == []
            assert http.post("/v1/events", json=event).status_code == 200  # still serving
    finally:
        server.terminate()
        server.wait(timeout=30)
