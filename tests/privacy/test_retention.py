"""Retention deletes what is older than its age; a second run changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from persona.api.app import background_jobs_of
from persona.cli.main import app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.jobs import Leadership
from persona.settings import Settings
from tests.conftest import NOW_MS, open_engine

DAY_S = 86_400
NOW_S = NOW_MS // 1000


def _events() -> list[dict[str, object]]:
    return [
        {
            "event_id": "v-old",
            "type": "view",
            "user_id": "r",
            "item_id": "i1",
            "timestamp": NOW_S - 40 * DAY_S,
        },
        {
            "event_id": "v-new",
            "type": "view",
            "user_id": "r",
            "item_id": "i1",
            "timestamp": NOW_S - 10 * DAY_S,
        },
        {
            "event_id": "p-old",
            "type": "purchase",
            "user_id": "r",
            "item_id": "i1",
            "timestamp": NOW_S - 400 * DAY_S,
            "value": 5.0,
        },
    ]


def test_retention_deletes_old_events_once(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, database_url, clock, privacy={"retention_days": {"view": 30}})
    try:
        engine.ingest.ingest(_events())
        profile_before = engine.profiles.get("r")
        first = engine.privacy.retention.run()
        assert first.deleted == {"view": 1}
        with engine.storage.read() as uow:
            assert uow.events.get("v-old") is None
            assert uow.events.get("v-new") is not None
            assert uow.events.get("p-old") is not None  # no retention for purchases
        assert engine.privacy.retention.run().total == 0  # idempotent
        # profiles keep the aggregates of the deleted events
        assert engine.profiles.get("r").counts == profile_before.counts
        clock.advance(25 * DAY_S)  # v-new is now 35 days old
        assert engine.privacy.retention.run().deleted == {"view": 1}
        assert engine.privacy.retention.run().total == 0
        names = [job.name for job in background_jobs_of(engine, Leadership(engine.storage))]
        assert "retention" in names
    finally:
        engine.close()


def test_without_configuration_nothing_is_deleted(engine: Engine) -> None:
    engine.ingest.ingest(_events())
    assert engine.privacy.retention.run().total == 0
    with engine.storage.read() as uow:
        assert uow.events.count() == 3


def test_cli_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine.open(Settings(home=tmp_path))
    engine.ingest.ingest(
        [{"type": "view", "user_id": "r", "item_id": "i1", "timestamp": 1_000_000_000}]
    )
    engine.close()
    monkeypatch.setenv("PERSONA_PRIVACY__RETENTION_DAYS", '{"view": 30}')
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "privacy", "retention"])
    assert result.exit_code == 0, result.output
    assert '"total":1' in result.stdout
