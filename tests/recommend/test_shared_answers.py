"""Answers shared through Redis by the processes of one home (``PERSONA_REDIS_URL``): an answer
one process ranked is served by another from Redis; a commit that changes the person, in any
process, outdates it for all; another model set never serves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import open_engine
from tests.recommend.synthetic import stock, train

KEYS = {"pseudonym_key": "p" * 64, "encryption_key": Fernet.generate_key().decode()}


@pytest.fixture
def two(
    tmp_path: Path, database_url: str, redis_url: str, clock: FakeClock
) -> Iterator[tuple[TestClient, TestClient, Engine]]:
    """Two processes' engines on one home, one store and one Redis, a model set trained."""
    first = open_engine(tmp_path, database_url, clock, redis_url=redis_url, privacy=KEYS)
    stock(first)
    second = open_engine(tmp_path, database_url, clock, redis_url=redis_url, privacy=KEYS)
    for engine in (first, second):  # as `persona serve` does before its first request
        engine.recommendations.reload()
        engine.recommendations.budget_ms = 5_000  # the test machine is shared: no fallbacks
    with TestClient(create_app(first)) as a, TestClient(create_app(second)) as b:
        yield a, b, first
    first.close()
    second.close()


def answer(client: TestClient, person: str = "p1", query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/users/{person}/recommendations?n=5{query}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def items(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def test_an_answer_one_process_ranked_is_served_by_another_from_redis(
    two: tuple[TestClient, TestClient, Engine],
) -> None:
    a, b, _ = two
    # From the person's batch shortlist, and ranked live (a request that names its context)
    for query in ("", "&device=mobile&country=FR"):
        ranked = answer(a, query=query)
        assert ranked["cached"] is False and ranked["source"] == "pipeline", ranked["reason"]
        shared = answer(b, query=query)  # nothing in the second process's own cache yet
        assert shared["cached"] is True and items(shared) == items(ranked)


def test_a_commit_in_one_process_outdates_the_shared_answer_for_every_process(
    two: tuple[TestClient, TestClient, Engine],
) -> None:
    a, b, first = two
    answer(a)
    first.ingest.ingest([{"type": "view", "user_id": "p1", "item_id": "i7"}])
    assert answer(b)["cached"] is False  # ranked again: the person changed


def test_another_model_set_does_not_serve_it(
    two: tuple[TestClient, TestClient, Engine],
) -> None:
    a, b, first = two
    answer(a)
    train(first)  # a new version, promoted: the second process serves it from now on
    first.recommendations.reload()
    b.app.state.engine.recommendations.follow_champion()
    assert answer(b)["cached"] is False
