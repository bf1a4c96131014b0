"""Batch segments on Spark: the store's rule compiler run as Spark SQL over the event lake and a
snapshot of the store selects exactly the people the store's own query selects, for generated
rules over every construct of the language (the strategies of ``test_agreement``), on SQLite
and PostgreSQL; `persona segments refresh --engine spark` applies the same memberships."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from persona.cli.main import app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.rules import Rule, to_text
from persona.segments import SparkMatching
from persona.spark import spark_session
from tests.conftest import open_engine
from tests.segments.test_agreement import (
    MINUTE_MS,
    _load,
    _reset,
    _sql_members,
    cases,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    with spark_session("local[2]") as session:
        yield session


@pytest.fixture
def engine(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Engine]:
    engine = open_engine(tmp_path, database_url, clock, sqlite_synchronous="NORMAL")
    yield engine
    engine.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@cases
def test_spark_and_the_store_select_the_same_people(
    spark: SparkSession,
    engine: Engine,
    clock: FakeClock,
    rule: Rule,
    history: list[Any],
    people: dict[str, Any],
    members: dict[str, set[str]],
    people_scores: dict[str, dict[str, float]],
    later_minutes: int,
) -> None:
    _reset(engine)  # (behind the lake's back: it is copied again below)
    _load(engine, clock, history, people, members, people_scores)
    engine.lake.sync(rebuild=True)
    now = clock.now_ms() + later_minutes * MINUTE_MS
    matching = SparkMatching(spark, engine.storage, engine.lake)
    assert matching(rule, now) == _sql_members(engine, rule, now), to_text(rule)


def test_refresh_on_spark_applies_what_the_store_would(
    spark: SparkSession, tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    """Two stores with the same events and segments, one refreshed by Spark through the
    command line, the other by its own query: the same memberships."""
    homes = [tmp_path / "store", tmp_path / "spark"]
    for home in homes:
        url = database_url if home.name == "store" else f"sqlite:///{home / 'persona.db'}"
        engine = open_engine(home, url, clock)
        try:
            engine.segments.create("buyers", "did(purchase)")
            engine.segments.create("big", 'profile.monetary >= 10 and not segment("buyers")')
            engine.segments.create("either", 'segment("buyers") or did(view) within 1d')
            _load(
                engine,
                clock,
                [("u1", "purchase", "i1", 5, 9.99), ("u2", "view", "i2", 3000, None)],
                {"u3": {"country": "FR"}},
                {},
            )
            with engine.storage.write() as uow:  # as if the rules had been made after
                for name in ("buyers", "big", "either"):
                    uow.segments.exit(name, uow.segments.open_members(name), clock.now_ms())
            clock.advance(2 * 86_400)
            if home.name == "spark":
                engine.close()
                result = CliRunner().invoke(
                    app, ["--home", str(home), "segments", "refresh", "--engine", "spark"]
                )
                assert result.exit_code == 0, result.output
                engine = open_engine(home, url, clock)
            else:
                engine.segments.refresh()
            with engine.storage.read() as uow:
                found = {n: uow.segments.open_members(n) for n in ("buyers", "big", "either")}
        finally:
            engine.close()
        if home.name == "store":
            expected = found
    assert found == expected
    assert expected["buyers"] == {"u:u1"} and expected["either"] == {"u:u1"}
