"""The change stream on a real Redis: the relay publishes what committed (events, segment
changes, decisions, erasures), again with the same ids after a crash, never what rolled back;
`persona worker` delivers webhooks signed, retried and dead-lettered, and a worker that dies
between receipt and acknowledgement has its messages redelivered without posting one twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.storage.records import DecisionRecord
from persona.stream import Received, RedisStream, Relay, Worker, verify
from persona.stream.export import Export
from persona.stream.webhooks import SIGNATURE_HEADER, Deliveries
from tests.conftest import open_engine

GROUP = "test"


@pytest.fixture
def streamed(
    tmp_path: Path, database_url: str, redis_url: str, clock: FakeClock
) -> Iterator[Engine]:
    engine = open_engine(
        tmp_path,
        database_url,
        clock,
        stream_url=redis_url,
        stream={
            "name": f"test:{tmp_path.name}",
            "claim_idle_seconds": 0.3,
            "webhook_backoff_seconds": 0.05,
            "webhook_attempts": 3,
        },
    )
    assert engine.stream is not None
    engine.stream.join(GROUP)
    yield engine
    engine.close()


def stream_of(engine: Engine) -> RedisStream:
    assert engine.stream is not None
    return engine.stream


def received(engine: Engine, group: str = GROUP) -> list[Received]:
    got: list[Received] = []
    while batch := stream_of(engine).receive(group, "reader", 1000, 50, 60_000):
        got += batch
        stream_of(engine).ack(group, batch)
    return got


def relay(engine: Engine, *, patience_s: float = 1.0) -> int:
    """Publish what committed; returns how many messages. PostgreSQL's writes are published once
    every transaction older than them has ended, in any database of the server: another
    program's transaction can hold them back a moment, so the relay runs until it has published
    something and then nothing more, or for ``patience_s``."""
    relay = Relay(engine.storage, stream_of(engine))
    sent = relay.run_once()
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        more = relay.run_once()
        if sent and not more:
            break
        sent += more
        time.sleep(0.02)
    return sent


def test_committed_events_and_segment_changes_are_published_with_their_ids(
    streamed: Engine,
) -> None:
    streamed.segments.create("buyers", "did(purchase)")
    streamed.ingest.ingest([{"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1"}])
    streamed.ingest.ingest(
        [{"event_id": "e2", "type": "purchase", "user_id": "u1", "item_id": "i1", "value": 5}]
    )
    assert received(streamed) == []  # nothing before the relay runs
    assert relay(streamed) == 3
    messages = {r.message.message_id: r.message for r in received(streamed)}
    assert set(messages) == {"event:e1", "event:e2", f"segment:buyers:u:u1:enter:{NOW}"}
    assert messages["event:e2"].body["value"] == 5.0
    assert messages["event:e2"].body["profile_key"] == "u:u1"
    entered = messages[f"segment:buyers:u:u1:enter:{NOW}"].body
    assert entered == {"segment": "buyers", "profile_key": "u:u1", "change": "enter", "at_ms": NOW}
    assert relay(streamed) == 0  # published once


NOW = 1_767_225_600_000


def test_a_stream_starts_after_the_writes_made_before_it(
    tmp_path: Path, database_url: str, redis_url: str, clock: FakeClock
) -> None:
    """The store's history is not replayed: a stream enabled on a store with events holds the
    writes made after the first process with the stream opened it, from the first of them."""
    before = open_engine(tmp_path, database_url, clock)
    try:
        before.ingest.ingest([{"event_id": "old", "type": "view", "user_id": "u1"}])
    finally:
        before.close()
    streamed = open_engine(
        tmp_path, database_url, clock, stream_url=redis_url, stream={"name": "test:start"}
    )
    try:
        stream_of(streamed).join(GROUP)
        streamed.ingest.ingest([{"event_id": "new", "type": "view", "user_id": "u1"}])
        relay(streamed)
        assert [r.message.message_id for r in received(streamed)] == ["event:new"]
    finally:
        streamed.close()


def test_a_relay_that_dies_before_noting_its_position_publishes_again_with_the_same_ids(
    streamed: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    streamed.ingest.ingest([{"event_id": "e1", "type": "view", "user_id": "u1"}])

    def dies(name: str, value: int) -> None:
        raise RuntimeError("killed")

    real = streamed.storage.set_stream_position
    monkeypatch.setattr(streamed.storage, "set_stream_position", dies)
    with pytest.raises(RuntimeError):
        relay(streamed)
    monkeypatch.setattr(streamed.storage, "set_stream_position", real)
    assert relay(streamed) == 1
    ids = [r.message.message_id for r in received(streamed)]
    assert ids == ["event:e1", "event:e1"]  # at least once: consumers drop the copy by its id


def test_a_write_that_rolls_back_publishes_nothing(streamed: Engine) -> None:
    streamed.segments.create("viewers", "did(view)")

    def failing_write() -> None:
        with streamed.storage.write() as uow:
            uow.segments.enter("viewers", ["u:ghost"], NOW)
            raise RuntimeError("the write fails")

    with pytest.raises(RuntimeError):
        failing_write()
    assert relay(streamed) == 0
    assert received(streamed) == []


def test_decisions_and_erasures_are_published_and_an_erased_persons_unpublished_messages_go(
    streamed: Engine,
) -> None:
    streamed.segments.create("viewers", "did(view)")
    streamed.ingest.ingest([{"event_id": "e1", "type": "view", "user_id": "u1"}])
    streamed.ingest.ingest([{"event_id": "e2", "type": "view", "user_id": "u2"}])
    streamed.privacy.erasure.erase("u1", actor="test")
    relay(streamed)
    ids = {r.message.message_id for r in received(streamed)}
    assert "event:e2" in ids and f"segment:viewers:u:u2:enter:{NOW}" in ids
    assert not any("u:u1" in i or i == "event:e1" for i in ids if not i.startswith("erasure:"))
    assert "erasure:u:u1:" in " ".join(ids)


def test_logged_decisions_are_published(streamed: Engine) -> None:
    record = DecisionRecord(
        "d1", "home", 1, "b", "u:u1", {"device": "mobile"}, "ab", "main", False, "b", "ab", NOW
    )
    streamed.storage.log_decisions([record])
    relay(streamed)
    [got] = received(streamed)
    assert got.message.message_id == "decision:d1"
    assert got.message.body["variant"] == "b" and "context" not in got.message.body


def test_the_outbox_is_empty_without_a_stream(engine: Engine) -> None:
    engine.segments.create("viewers", "did(view)")
    engine.ingest.ingest([{"event_id": "e1", "type": "view", "user_id": "u1"}])
    with engine.storage.read() as uow:
        count = uow.connection.exec_driver_sql("SELECT count(*) FROM outbox").scalar_one()
    assert count == 0


class Receiver:
    """A webhook's server: records each request; answers with the next planned status."""

    def __init__(self, statuses: Callable[[int], int] = lambda n: 200) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = statuses
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers), body))
                    status = receiver.statuses(len(receiver.requests))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m for _, body in self.requests for m in orjson.loads(body)["messages"]]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time")
        time.sleep(0.02)


def worker_of(engine: Engine) -> Worker:
    return Worker(
        engine.storage,
        stream_of(engine),
        engine.lake,
        engine.leases,
        engine.clock,
        engine.settings.stream,
    )


@pytest.fixture
def running(streamed: Engine) -> Iterator[Worker]:
    worker = worker_of(streamed)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(10)


def test_a_segment_webhook_receives_each_change_signed(
    streamed: Engine, receiver: Receiver, running: Worker
) -> None:
    hook = streamed.webhooks.create(receiver.url, ["segment"], "s" * 32)
    streamed.segments.create("buyers", "did(purchase)")
    streamed.ingest.ingest([{"event_id": "e1", "type": "purchase", "user_id": "u1", "value": 5}])
    wait_for(lambda: len(receiver.messages()) == 1)
    headers, body = receiver.requests[0]
    assert verify("s" * 32, headers[SIGNATURE_HEADER], body)
    assert not verify("t" * 32, headers[SIGNATURE_HEADER], body)
    assert headers["Persona-Webhook-Id"] == hook.webhook_id
    [message] = receiver.messages()
    assert message["kind"] == "segment"  # events were not asked for
    assert message["data"]["change"] == "enter" and message["data"]["segment"] == "buyers"


def test_a_webhook_receives_the_changes_made_before_any_worker_saw_it(
    streamed: Engine, receiver: Receiver
) -> None:
    """Its consumer group is made with the webhook: a worker that starts late (or notices the
    webhook late) still delivers every change published since its creation."""
    streamed.webhooks.create(receiver.url, ["event"])
    streamed.ingest.ingest([{"event_id": "e1", "type": "view", "user_id": "u1"}])
    relay(streamed)
    worker = worker_of(streamed)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(receiver.messages()) == 1)
        assert receiver.messages()[0]["id"] == "event:e1"
    finally:
        worker.stop()
        thread.join(10)


def test_failed_posts_are_retried_then_dead_lettered(streamed: Engine, redis_url: str) -> None:
    flaky = Receiver(lambda n: 500 if n <= 2 else 200)  # two failures, then fine
    down = Receiver(lambda n: 503)
    try:
        ok = streamed.webhooks.create(flaky.url, ["event"])
        dead = streamed.webhooks.create(down.url, ["event"])
        deliveries = Deliveries(
            streamed.storage, streamed.clock, streamed.settings.stream, httpx.Client()
        )
        streamed.ingest.ingest([{"event_id": "e1", "type": "view", "user_id": "u1"}])
        relay(streamed)
        got = received(streamed)
        deliveries.deliver(ok, got)
        deliveries.deliver(dead, got)
        assert len(flaky.requests) == 3 and len(flaky.messages()) == 3  # the same message
        assert {m["id"] for m in flaky.messages()} == {"event:e1"}
        assert len(down.requests) == 3  # webhook_attempts
        with TestClient(create_app(streamed)) as client:
            letters = client.get(f"/v1/webhooks/{dead.webhook_id}/dead-letters").json()
            none = client.get(f"/v1/webhooks/{ok.webhook_id}/dead-letters").json()
        [letter] = letters["dead_letters"]
        assert letter["message_id"] == "event:e1" and letter["error"] == "HTTP 503"
        assert letter["attempts"] == 3 and letter["message"]["data"]["user_id"] is not None
        assert none == {"dead_letters": []}
        deliveries.deliver(ok, got)  # delivered before: not posted again
        assert len(flaky.requests) == 3
    finally:
        flaky.close()
        down.close()


def test_a_worker_that_dies_before_acknowledging_has_its_messages_redelivered_once(
    streamed: Engine, receiver: Receiver
) -> None:
    hook = streamed.webhooks.create(receiver.url, ["event"])
    group = f"webhook:{hook.webhook_id}"
    stream = stream_of(streamed)
    stream.join(group)
    deliveries = Deliveries(
        streamed.storage, streamed.clock, streamed.settings.stream, httpx.Client()
    )
    streamed.ingest.ingest(
        [{"event_id": f"e{n}", "type": "view", "user_id": f"u{n}"} for n in range(3)]
    )
    relay(streamed)
    # The first worker receives all three, posts them, and dies before acknowledging.
    first = stream.receive(group, "first", 100, 100, 60_000)
    assert len(first) == 3
    deliveries.deliver(hook, first[:2])  # ... after posting two of them
    # Another worker claims them once the first has been silent long enough.
    assert stream.receive(group, "second", 100, 100, 300) == []  # not yet
    time.sleep(0.4)
    again = stream.receive(group, "second", 100, 100, 300)
    assert sorted(r.message.message_id for r in again) == ["event:e0", "event:e1", "event:e2"]
    deliveries.deliver(hook, again)
    stream.ack(group, again)
    ids = [m["id"] for m in receiver.messages()]
    assert sorted(ids) == ["event:e0", "event:e1", "event:e2"]  # each posted once
    assert stream.lags()[group] == 0


def test_webhooks_through_the_api(streamed: Engine) -> None:
    with TestClient(create_app(streamed)) as client:
        created = client.post(
            "/v1/webhooks", json={"url": "https://example.com/h", "kinds": ["segment"]}
        )
        assert created.status_code == 201
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["kinds"] == ["segment"]
        listed = client.get("/v1/webhooks").json()["webhooks"]
        assert [h["webhook_id"] for h in listed] == [hook["webhook_id"]]
        assert "secret" not in listed[0]
        bad = client.post("/v1/webhooks", json={"url": "ftp://x", "kinds": ["segment"]})
        assert bad.status_code == 422
        unknown = client.post("/v1/webhooks", json={"url": "http://x", "kinds": ["clicks"]})
        assert unknown.status_code == 422
        assert client.delete(f"/v1/webhooks/{hook['webhook_id']}").status_code == 204
        assert client.delete(f"/v1/webhooks/{hook['webhook_id']}").status_code == 404
        assert client.get("/v1/webhooks").json() == {"webhooks": []}
        assert client.get("/v1/webhooks/wh_0000000000000000").status_code == 404
        metrics = client.get("/metrics").text
    assert f'persona_stream_lag{{group="{GROUP}"}}' in metrics


def first_export(streamed: Engine, tmp_path: Path) -> tuple[RedisStream, Export, list[Received]]:
    """Three events published and read by a first exporter."""
    stream = stream_of(streamed)
    stream.join("export")
    streamed.ingest.ingest(
        [{"event_id": f"e{n}", "type": "view", "user_id": "u1"} for n in range(3)]
    )
    relay(streamed)
    return stream, Export(tmp_path / "export"), stream.receive("export", "first", 100, 100, 0)


def test_the_export_writes_each_message_once_in_stream_order(
    streamed: Engine, tmp_path: Path
) -> None:
    """An exporter that dies after writing its file and before acknowledging: the next one
    takes the pending messages first, drops what the files hold, and writes the rest."""
    stream, first, got = first_export(streamed, tmp_path)
    assert first.write(got) == 3  # ... and dies before the acknowledgement
    streamed.ingest.ingest([{"event_id": "e3", "type": "view", "user_id": "u2"}])
    relay(streamed)
    second = Export(tmp_path / "export")  # a new process: it reads what the files hold
    again = stream.receive("export", "second", 100, 100, 0)  # the pending three first
    assert [r.message.message_id for r in again] == ["event:e0", "event:e1", "event:e2"]
    assert second.write(again) == 0
    stream.ack("export", again)
    after = stream.receive("export", "second", 100, 100, 0)
    assert second.write(after) == 1
    stream.ack("export", after)
    lines = [
        orjson.loads(line)
        for path in sorted((tmp_path / "export").glob("date=*/*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    assert [line["id"] for line in lines] == ["event:e0", "event:e1", "event:e2", "event:e3"]
    assert lines[3]["data"]["user_id"] is not None and lines[3]["kind"] == "event"
    assert stream.lags()["export"] == 0


def test_the_export_drops_a_message_the_relay_published_again(
    streamed: Engine, tmp_path: Path
) -> None:
    """A relay that dies after publishing, before noting it, publishes the same messages again
    under new entries: the export writes each id once, even when the exporter that wrote the
    first copies died before indexing them."""
    stream, first, got = first_export(streamed, tmp_path)
    assert first.write(got) == 3
    stream.ack("export", got)
    first.close()
    (tmp_path / "export" / ".written.sqlite").unlink()  # it died before indexing its file
    # The relay's copies, the first two of them twice in one read.
    copies = [r.message for r in got]
    stream.publish([*copies, copies[0], copies[1]])
    streamed.ingest.ingest([{"event_id": "e3", "type": "view", "user_id": "u2"}])
    relay(streamed)
    second = Export(tmp_path / "export")
    again = stream.receive("export", "second", 100, 100, 0)
    assert len(again) == 6
    assert second.write(again) == 1
    stream.ack("export", again)
    lines = [
        orjson.loads(line)["id"]
        for path in sorted((tmp_path / "export").glob("date=*/*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]
    assert lines == ["event:e0", "event:e1", "event:e2", "event:e3"]
