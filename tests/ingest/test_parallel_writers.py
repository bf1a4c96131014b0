"""Writers in parallel on PostgreSQL: processes that ingest overlapping batches for the same
people at once (identify merges among them), one killed mid-batch, leave every profile as the
fold of its events taken exactly once, and lose nothing they acknowledged."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import NOW_MS, open_engine

pytestmark = pytest.mark.postgres

PEOPLE = 30  # users; as many anonymous visitors, each identified as one of them
EVENTS = 3_000
BATCH = 100
PROCESSES = 4
KILLED = PROCESSES - 1  # the process killed once it has acknowledged a few batches


def workload(seed: int = 7) -> list[dict[str, Any]]:
    """Views, clicks and purchases of users and of anonymous visitors, with the identify
    events that link each visitor to one user scattered among them."""
    rng = random.Random(seed)
    start_s = NOW_MS // 1000 - 30 * 86_400
    events: list[dict[str, Any]] = []
    for n in range(EVENTS):
        person = rng.randrange(PEOPLE)
        who = {"user_id": f"u{person}"} if rng.random() < 0.5 else {"anonymous_id": f"a{person}"}
        kind = rng.choices(["view", "click", "purchase"], [8, 3, 1])[0]
        event = {"event_id": f"e{n}", "type": kind, "item_id": f"i{rng.randrange(40)}", **who}
        if kind == "purchase":
            event["value"] = round(rng.uniform(1, 90), 2)
        events.append({**event, "timestamp": start_s + rng.randrange(30 * 86_400)})
    for person in range(PEOPLE):
        at = rng.randrange(len(events))
        identify = {
            "event_id": f"id{person}",
            "type": "identify",
            "user_id": f"u{person}",
            "anonymous_id": f"a{person}",
            "timestamp": start_s + rng.randrange(30 * 86_400),
        }
        events.insert(at, identify)
    return events


def streams(events: list[dict[str, Any]]) -> list[list[list[dict[str, Any]]]]:
    """Each process's batches: every event is sent by two processes, in orders of their own."""
    rng = random.Random(11)
    sent: list[list[dict[str, Any]]] = [[] for _ in range(PROCESSES)]
    for event in events:
        for process in rng.sample(range(PROCESSES), 2):
            sent[process].append(event)
    for mine in sent:
        rng.shuffle(mine)
    return [[mine[i : i + BATCH] for i in range(0, len(mine), BATCH)] for mine in sent]


# The hosts of one store share its privacy keys (as a deployment gives them): a payload's hash
# and a pseudonym must be the same whichever process computes them.
KEYS = {"pseudonym_key": "k" * 64, "encryption_key": Fernet.generate_key().decode()}


def writer_engine(home: Path, url: str) -> Engine:
    return open_engine(home, url, FakeClock(NOW_MS), privacy=KEYS)


def ingest_batches(home: str, url: str, batches: list[list[dict[str, Any]]], acks: str) -> None:
    """A writer process: ingest each batch, then note its acknowledged ids durably."""
    engine = writer_engine(Path(home), url)
    with open(acks, "ab") as log:
        for batch in batches:
            result = engine.ingest.ingest(batch)
            acknowledged = [o["event_id"] for o in result.events if o["status"] != "rejected"]
            assert len(acknowledged) == len(batch), result.events
            log.write(orjson.dumps(acknowledged) + b"\n")
            log.flush()
            os.fsync(log.fileno())
    engine.close()


def states(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.storage.read() as uow:
        return dict(uow.profiles.all_states())


def test_writers_in_parallel_fold_each_event_once_and_keep_what_they_acknowledged(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    events = workload()
    opened = writer_engine(tmp_path / "first", postgres_schema_url)
    opened.close()  # the schema, made once before the writers start
    context = multiprocessing.get_context("spawn")
    acks = [tmp_path / f"acks-{n}.jsonl" for n in range(PROCESSES)]
    writers = [
        context.Process(
            target=ingest_batches,
            args=(str(tmp_path / f"home-{n}"), postgres_schema_url, batches, str(acks[n])),
        )
        for n, batches in enumerate(streams(events))
    ]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 120
    while not (acks[KILLED].exists() and len(acks[KILLED].read_bytes().splitlines()) >= 3):
        assert writers[KILLED].is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(writers[KILLED].pid or 0, signal.SIGKILL)  # mid-batch: it sends without a pause
    for writer in writers:
        writer.join(timeout=180)
    assert [w.exitcode for w in writers] == [0, 0, 0, -signal.SIGKILL]

    engine = writer_engine(tmp_path / "check", postgres_schema_url)
    try:
        with engine.storage.read() as uow:
            stored = {
                row[0]: row[1]
                for row in uow.connection.execute(  # type: ignore[attr-defined]
                    text("SELECT event_id, count(*) FROM events GROUP BY event_id")
                )
            }
        acknowledged = {
            i
            for path in acks
            for line in path.read_bytes().splitlines()
            for i in orjson.loads(line)
        }
        assert acknowledged <= set(stored)  # nothing acknowledged is lost
        assert set(stored.values()) == {1}  # nor stored twice
        assert len(acknowledged) >= len(events) - 2 * BATCH  # the kill cost one batch at most
        parallel = states(engine)
    finally:
        engine.close()

    # The same events, once each, through one writer into a store of its own.
    alone = writer_engine(tmp_path / "alone", f"sqlite:///{tmp_path / 'alone.db'}")
    try:
        kept = [e for e in events if e["event_id"] in stored]
        for start in range(0, len(kept), BATCH):
            alone.ingest.ingest(kept[start : start + BATCH])
        expected = states(alone)
    finally:
        alone.close()
    assert parallel.keys() == expected.keys()
    assert parallel == expected


def test_a_visitor_identified_while_a_write_of_theirs_waits_ends_in_the_person(
    tmp_path: Path, postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write beside others stores its events before it locks their profiles: a visitor of
    the batch may be identified meanwhile by a write that commits first. Their events of the
    batch end in the person's profile, as if the writes had run one after the other."""
    first = writer_engine(tmp_path / "first", postgres_schema_url)
    second = writer_engine(tmp_path / "second", postgres_schema_url)
    first_views = [
        {"event_id": "v0", "type": "view", "anonymous_id": "a1", "item_id": "i1", "timestamp": 1},
        {"event_id": "v1", "type": "view", "anonymous_id": "a1", "item_id": "i2", "timestamp": 2},
    ]
    later_views = [
        {"event_id": "v2", "type": "view", "anonymous_id": "a1", "item_id": "i3", "timestamp": 3},
        {"event_id": "v3", "type": "view", "user_id": "u1", "item_id": "i4", "timestamp": 4},
    ]
    identify = {"event_id": "id1", "type": "identify", "anonymous_id": "a1", "user_id": "u1"}
    start_s = NOW_MS // 1000 - 86_400
    for event in [*first_views, *later_views, identify]:
        event["timestamp"] = start_s + int(event.get("timestamp", 5))
    try:
        assert first.ingest.ingest(first_views).accepted == 2  # the visitor has a profile
        hold = type(first.profiles).hold
        linked_meanwhile = []

        def identified_meanwhile(self: Any, uow: Any, update: Any) -> Any:
            if self is first.profiles and not linked_meanwhile:
                linked_meanwhile.append(second.ingest.ingest([identify]).accepted)
            return hold(self, uow, update)

        monkeypatch.setattr(type(first.profiles), "hold", identified_meanwhile)
        assert first.ingest.ingest(later_views).accepted == 2
        assert linked_meanwhile == [1]
        after = states(first)
    finally:
        first.close()
        second.close()

    alone = writer_engine(tmp_path / "alone", f"sqlite:///{tmp_path / 'alone.db'}")
    try:
        for batch in (first_views, [identify], later_views):
            alone.ingest.ingest(batch)
        expected = states(alone)
    finally:
        alone.close()
    assert "a:a1" not in after and after == expected
    assert after["u:u1"]["counts"]["view"] == 4, after["u:u1"]
