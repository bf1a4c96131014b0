"""The storage contract of the change stream: the outbox and the webhooks' stores, on every
backend."""

from __future__ import annotations

import pytest

from persona.engine import Engine
from persona.storage.records import DeadLetter, StreamMessage, WebhookRecord


def message(n: int, key: str = "u:1") -> StreamMessage:
    return StreamMessage(f"m{n}", "segment", {"n": n, "nested": {"a": [1, 2]}}, key)


def published(engine: Engine, after: int) -> tuple[int, list[StreamMessage]]:
    with engine.storage.events_after(after, messages=True) as written:
        return written.write_seq, written.messages


class TestOutbox:
    def test_messages_of_committed_writes_are_read_in_write_order_until_published(
        self, engine: Engine
    ) -> None:
        engine.storage.publishes = True
        start = engine.storage.stream_position("relay")
        assert start is None
        with engine.storage.write() as uow:
            assert uow.outbox.enabled
            uow.outbox.add([message(1), message(2, "u:2")])
        with engine.storage.write() as uow:
            uow.outbox.add([message(3)])
        last, found = published(engine, 0)
        assert found == [message(1), message(2, "u:2"), message(3)]
        engine.storage.set_stream_position("relay", last)
        engine.storage.set_stream_position("relay", 0, if_absent=True)  # noted already: kept
        assert engine.storage.stream_position("relay") == last
        assert published(engine, last)[1] == []  # (PostgreSQL's numbers move on meanwhile)
        with engine.storage.write() as uow:
            uow.outbox.add([message(4)])
        newest, found = published(engine, last)
        assert newest > last and found == [message(4)]

    def test_a_rolled_back_write_leaves_no_message(self, engine: Engine) -> None:
        engine.storage.publishes = True

        def fail() -> None:
            with engine.storage.write() as uow:
                uow.outbox.add([message(1)])
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            fail()
        assert published(engine, 0)[1] == []

    def test_without_a_stream_nothing_is_kept(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            assert not uow.outbox.enabled
            uow.outbox.add([message(1)])
        assert published(engine, 0)[1] == []


def hook(webhook_id: str, at: int) -> WebhookRecord:
    return WebhookRecord(webhook_id, f"http://h/{webhook_id}", ("event", "segment"), "s", at, True)


class TestWebhookStore:
    def test_add_get_list_deactivate(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.webhooks.add(hook("wh_b", 2))
            uow.webhooks.add(hook("wh_a", 1))
        with engine.storage.write() as uow:
            assert uow.webhooks.get("wh_a") == hook("wh_a", 1)
            assert uow.webhooks.get("wh_zz") is None
            assert [h.webhook_id for h in uow.webhooks.all()] == ["wh_a", "wh_b"]
            assert uow.webhooks.deactivate("wh_a") is True
            assert uow.webhooks.deactivate("wh_a") is False
            assert uow.webhooks.deactivate("wh_zz") is False
        with engine.storage.read() as uow:
            assert [h.active for h in uow.webhooks.all()] == [False, True]

    def test_deliveries_and_dead_letters(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.webhooks.record("wh_a", ["m1", "m2"], status="delivered", attempts=1, at_ms=10)
            uow.webhooks.record(
                "wh_a", ["m3"], status="dead", attempts=6, at_ms=20, error="HTTP 500", bodies=["{}"]
            )
            uow.webhooks.record("wh_a", ["m1"], status="delivered", attempts=2, at_ms=30)  # kept
            uow.webhooks.record("wh_a", [], status="delivered", attempts=1, at_ms=30)
        with engine.storage.write() as uow:
            assert uow.webhooks.handled("wh_a", ["m1", "m3", "m4"]) == {"m1", "m3"}
            assert uow.webhooks.handled("wh_b", ["m1"]) == set()
            assert uow.webhooks.dead_letters("wh_a", 10) == [
                DeadLetter("wh_a", "m3", 6, 20, "HTTP 500", "{}")
            ]
            assert uow.webhooks.prune(before_ms=15) == 2  # delivered ones only
            assert uow.webhooks.handled("wh_a", ["m1", "m2", "m3"]) == {"m3"}


class TestSnapshot:
    def test_tables_as_arrow_with_documents_as_json_text(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.profiles.save_states({"u:1": {"n": 1, "nested": {"a": [1, "x"]}}}, 5)
        found = engine.storage.snapshot(["profiles", "profile_scores"])
        profiles = found["profiles"].to_pylist()
        assert profiles == [
            {
                "profile_key": "u:1",
                "state": '{"n":1,"nested":{"a":[1,"x"]}}',
                "traits": None,
                "updated_at_ms": 5,
            }
        ]
        empty = found["profile_scores"]
        assert empty.num_rows == 0 and "probability" in empty.column_names
        assert str(empty.schema.field("probability").type) == "double"
