"""A rule's cost is bounded: how many event terms it reads, how long a preview may run, and
how many previews run at once, so that cheap routes stay responsive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.clock import FakeClock
from persona.engine import Engine
from persona.errors import BusyError, RuleSyntaxError
from persona.rules import MAX_EVENT_TERMS, parse_rule
from tests.conftest import open_engine


@pytest.fixture
def sqlite_engine(tmp_path: Path, clock: FakeClock) -> Iterator[Engine]:
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'persona.db'}", clock)
    yield engine
    engine.close()


def test_a_rule_reads_a_bounded_number_of_event_terms() -> None:
    parse_rule(" or ".join(["did(rate)"] * MAX_EVENT_TERMS))
    with pytest.raises(RuleSyntaxError, match="event terms"):
        parse_rule(" or ".join(["did(rate)"] * (MAX_EVENT_TERMS + 1)))
    counted = " and ".join([f"count(view) > {i}" for i in range(MAX_EVENT_TERMS + 1)])
    with pytest.raises(RuleSyntaxError, match="event terms"):
        parse_rule(counted)


def test_the_api_refuses_the_expensive_rule_with_a_clear_problem(client: TestClient) -> None:
    rule = " or ".join(["did(rate)"] * 300)
    answer = client.post("/v1/segments/preview", json={"rule": rule})
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_rule"
    assert "event terms" in answer.json()["detail"]


def test_previews_beyond_the_concurrency_bound_are_refused_not_queued(engine: Engine) -> None:
    """While every slot is taken, a further preview answers busy at once (503, Retry-After)
    instead of holding a worker thread that cheap requests need."""
    service = engine.segments
    with ExitStack() as taken:
        for _ in range(service.preview_slots.count):
            taken.enter_context(service.preview_slots.taken())
        started = time.perf_counter()
        with pytest.raises(BusyError):
            service.preview("did(view)")
        assert time.perf_counter() - started < 0.5
    assert service.preview("did(view)").size == 0  # the slots are free again


def test_a_preview_that_runs_too_long_is_stopped(sqlite_engine: Engine) -> None:
    """(SQLite, where a statement of fifty people can be made to overrun a zero deadline; the
    deadline itself is tested on both backends in tests/storage/test_statement_deadline.py.)"""
    engine = sqlite_engine
    engine.ingest.ingest([{"type": "view", "user_id": f"u{i}", "item_id": "i"} for i in range(50)])
    with pytest.raises(BusyError, match="took longer"):
        engine.segments.preview("did(view) and count(view) > 0", timeout_ms=0)
    assert engine.segments.preview("did(view)").size == 50


@pytest.mark.parametrize("number", ["9" * 400, "9" * 400 + ".5", "-" + "9" * 309])
def test_a_number_beyond_a_double_is_a_rule_error_not_a_server_error(
    client: TestClient, number: str
) -> None:
    for path, body in (
        ("/v1/segments/preview", {"rule": f"profile.event_count > {number}"}),
        ("/v1/segments", {"name": "huge", "rule": f"profile.event_count > {number}"}),
    ):
        answer = client.post(path, json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "invalid_rule"
