"""A client that sends its request slowly cannot hold a connection: the head (request line and
headers) and the body each have a deadline. Runs a real server: the head is read by the HTTP
server itself, before any application code."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.server import free_port, start_server

SETTINGS = {
    "PERSONA_SERVER__HEAD_TIMEOUT_SECONDS": "1",
    "PERSONA_SERVER__BODY_TIMEOUT_SECONDS": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("slow")
    port = free_port()
    process = start_server(home, port, "--dev", env=SETTINGS)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it sent."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return False, received
    return True, received


def test_a_head_sent_a_byte_at_a_time_is_cut_off(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(10):  # a header byte every 0.4 s: never a complete head
            time.sleep(0.4)
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
        if not closed:
            closed, _ = _closed_within(sock, 1.0)
        assert closed and time.monotonic() - started < 4.5


def test_a_body_sent_slowly_gets_408(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n["
        )
        closed, answer = _closed_within(sock, 5.0)
    assert closed and answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer


def _response(sock: socket.socket) -> bytes:
    """One whole response: its head, then as many body bytes as it declares."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_a_prompt_client_is_unaffected(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # idle between requests is the keep-alive's business (5 s)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")


def test_a_head_over_the_size_bound_is_answered_431(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"7" * 20_000)
        closed, answer = _closed_within(sock, 5.0)
    assert closed and answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b"headers_too_large" in answer


def test_a_flood_of_header_bytes_is_cut_off_while_it_arrives(server: int) -> None:
    """Megabytes of headers are not read to the end: past the bound (16 KiB, to within one
    read) the server closes, and the sender finds the connection gone."""
    sent = 0
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer psk_")
        try:
            while sent < 8_000_000:
                sock.sendall(b"7" * 65_536)
                sent += 65_536
        except OSError:
            pass  # closed by the server while we were still sending
    assert sent < 8_000_000
