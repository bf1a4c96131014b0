"""The profile cache every process shares through Redis: a profile one process rendered is
served to another from Redis; a commit outdates it for every process at once; an erasure takes
it out of Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from persona.clock import FakeClock
from persona.engine import Engine
from persona.profiles.shared_cache import PREFIX
from tests.conftest import open_engine
from tests.helpers import view

KEYS = {"pseudonym_key": "p" * 64, "encryption_key": Fernet.generate_key().decode()}


@pytest.fixture
def two(
    tmp_path: Path, database_url: str, redis_url: str, clock: FakeClock
) -> Iterator[tuple[Engine, Engine]]:
    """Two processes' engines on one store and one Redis; the second keeps no profile in its
    own memory (it reads through Redis every time), so what it answers is Redis's."""
    first = open_engine(tmp_path / "a", database_url, clock, redis_url=redis_url, privacy=KEYS)
    second = open_engine(
        tmp_path / "b",
        database_url,
        clock,
        redis_url=redis_url,
        privacy=KEYS,
        profiles={"cache_entries": 0},
    )
    yield first, second
    first.close()
    second.close()


def no_store_reads(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(person_id: str) -> None:
        raise AssertionError(f"{person_id} read from the store")

    monkeypatch.setattr(engine.profiles, "_read", refuse)


def test_a_profile_one_process_read_is_served_to_another_from_redis(
    two: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two
    first.ingest.ingest([view("e1", user="u1", item="i1")])
    expected = first.profiles.get("u1")
    no_store_reads(second, monkeypatch)
    assert second.profiles.get("u1") == expected


def test_a_commit_in_one_process_outdates_the_shared_entry_for_the_others(
    two: tuple[Engine, Engine], redis_url: str
) -> None:
    first, second = two
    first.ingest.ingest([view("e1", user="u1", item="i1")])
    assert second.profiles.get("u1").event_count == 1  # now in Redis
    first.ingest.ingest([view("e2", user="u1", item="i2")])
    assert second.profiles.get("u1").event_count == 2  # at once: never the outdated entry
    client = redis.Redis.from_url(redis_url)
    assert client.get(PREFIX + "u1") is not None  # the fresh read was kept
    client.close()


def test_a_write_that_does_not_say_whom_it_changed_outdates_every_entry(
    two: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two
    first.ingest.ingest([view("e1", user="u1"), view("e2", user="u2")])
    first.profiles.get("u1")
    first.profiles.get("u2")
    with first.storage.write() as uow:  # declares nothing: any profile may have changed
        uow.profiles.save_states({"u:2": {}}, 1)
    reads: list[str] = []
    original = second.profiles._read
    monkeypatch.setattr(
        second.profiles, "_read", lambda person: reads.append(person) or original(person)
    )
    second.profiles.get("u1")
    second.profiles.get("u2")
    assert reads == ["u1", "u2"]


def test_an_erasure_takes_the_person_out_of_redis(
    two: tuple[Engine, Engine], redis_url: str
) -> None:
    first, _ = two
    first.ingest.ingest([view("e1", user="u1", item="i1")])
    first.profiles.get("u1")
    client = redis.Redis.from_url(redis_url)
    assert client.get(PREFIX + "u1") is not None
    first.privacy.erasure.erase("u1", actor="test")
    assert client.get(PREFIX + "u1") is None
    client.close()
