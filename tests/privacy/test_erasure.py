"""Erasure: every id and alias of a person gone from tables and files; late events refused."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from persona.api.app import create_app
from persona.cli.main import app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.settings import Settings
from tests.conftest import NOW_MS
from tests.privacy.scan import files_containing, rows_containing

USER = "erin-7f3a"
ANON = "anon-erin-9c1e"
OTHER = "fred-22b0"
TS = NOW_MS // 1000 - 3_600


def _seed(engine: Engine, client: TestClient) -> None:
    engine.segments.create("viewers", "did(view) within 30d")
    events = [
        {
            "event_id": f"{ANON}-1",
            "type": "view",
            "anonymous_id": ANON,
            "item_id": "i1",
            "timestamp": TS,
        },
        {
            "event_id": f"{USER}-2",
            "type": "identify",
            "user_id": USER,
            "anonymous_id": ANON,
            "timestamp": TS + 1,
        },
        {
            "event_id": f"{USER}-3",
            "type": "view",
            "user_id": USER,
            "item_id": "i2",
            "timestamp": TS + 2,
            "properties": {"ref": USER},
        },
        {"event_id": "o-1", "type": "view", "user_id": OTHER, "item_id": "i1", "timestamp": TS},
        # quarantined: in the future, naming the person in its raw payload
        {"type": "view", "user_id": USER, "timestamp": TS + 30 * 86_400},
    ]
    result = client.post("/v1/events", json=events).json()
    assert result["accepted"] == 4 and result["rejected"] == 1
    assert client.put(f"/v1/users/{USER}/traits", json={"plan": "gold"}).status_code == 200
    assert client.put(f"/v1/users/{USER}/consent", json={"marketing": "denied"}).status_code == 200
    assert client.put(f"/v1/users/{USER}/consent", json={"analytics": "revoked"}).status_code == 200
    # held back for lack of consent
    held = {
        "event_id": "h-1",
        "type": "view",
        "user_id": USER,
        "item_id": "i3",
        "timestamp": NOW_MS // 1000 + 1,
    }
    assert client.post("/v1/events", json=[held]).json()["held"] == 1
    assert engine.segments.size("viewers") == 2


def test_erasure_removes_every_row_and_refuses_late_events(
    engine: Engine, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _seed(engine, client)
    assert rows_containing(engine, [USER, ANON])  # the scan does see them before

    answer = client.delete(f"/v1/subjects/{ANON}")  # any alias names the whole person
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["ids_erased"] == 2
    deleted = report["deleted"]
    assert deleted["events"] == 3
    assert deleted["profiles"] == 1
    assert deleted["aliases"] == 1
    assert deleted["segment_memberships"] == 1
    assert deleted["consents"] == 2
    assert deleted["held_events"] == 1
    assert deleted["quarantine"] == 1

    assert rows_containing(engine, [USER, ANON]) == {}
    # the database files were compacted (SQLite checkpoint, PostgreSQL VACUUM) without error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert engine.profiles.get(OTHER).event_count == 1
    assert engine.segments.size("viewers") == 1

    late = client.post(
        "/v1/events", json=[{"type": "view", "user_id": USER, "item_id": "i1"}]
    ).json()
    assert late["events"][0]["code"] == "subject_erased"
    late_anon = client.post("/v1/events", json=[{"type": "view", "anonymous_id": ANON}]).json()
    assert late_anon["events"][0]["code"] == "subject_erased"
    assert rows_containing(engine, [USER, ANON]) == {}  # refused events are not quarantined
    traits = client.put(f"/v1/users/{USER}/traits", json={"plan": "x"})
    assert traits.status_code == 409
    assert traits.json()["code"] == "subject_erased"

    assert client.delete(f"/v1/subjects/{USER}").status_code == 404
    assert client.get(f"/v1/profiles/{USER}").status_code == 404
    audit = client.get("/v1/audit").json()["entries"]
    assert "subject.erase" in [e["action"] for e in audit]


def test_unknown_subject_is_404(client: TestClient) -> None:
    answer = client.delete("/v1/subjects/nobody-here")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_deleted_rows_cannot_be_read_from_the_sqlite_files(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path, dev_mode=True), clock=FakeClock(NOW_MS))
    try:
        with engine.storage.engine.connect() as connection:
            assert connection.execute(text("PRAGMA secure_delete")).scalar() == 1
        with TestClient(create_app(engine)) as client:
            _seed(engine, client)
            assert files_containing(tmp_path, [USER, ANON])
            assert client.delete(f"/v1/subjects/{USER}").status_code == 200
        found = files_containing(tmp_path, [USER, ANON])
        assert found == {}, found
        assert (tmp_path / "persona.db-wal").stat().st_size == 0
    finally:
        engine.close()


def test_cli_erase(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path))
    engine.ingest.ingest([{"type": "view", "user_id": USER, "item_id": "i1"}])
    engine.close()
    runner = CliRunner()
    erased = runner.invoke(app, ["--home", str(tmp_path), "privacy", "erase", USER])
    assert erased.exit_code == 0, erased.output
    assert orjson.loads(erased.stdout)["deleted"]["events"] == 1
    again = runner.invoke(app, ["--home", str(tmp_path), "privacy", "erase", USER])
    assert again.exit_code == 1
