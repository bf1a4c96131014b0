"""Erasure reaches the event lake: every file holding the person is rewritten without them, and
no byte of them is left under HOME/lake, even when the process dies between the store's commit
and the rewrite."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from persona.clock import FakeClock
from persona.engine import Engine
from persona.privacy.audit import AuditLog
from persona.storage import lake as lake_module
from tests.conftest import NOW_MS, open_engine
from tests.privacy.scan import files_containing

USER = "lena-4e1d"
ANON = "anon-lena-77b2"
OTHER = "otto-93c5"
DAY_S = 86_400
TS = NOW_MS // 1000 - 5 * DAY_S


def _seed(client: TestClient) -> None:
    """The person on three days, as a visitor then as a user; another person beside them."""
    events = [
        {"event_id": "l-1", "type": "view", "anonymous_id": ANON, "item_id": "i1", "timestamp": TS},
        {
            "event_id": "l-2",
            "type": "identify",
            "user_id": USER,
            "anonymous_id": ANON,
            "timestamp": TS + DAY_S,
        },
        {
            "event_id": "l-3",
            "type": "purchase",
            "user_id": USER,
            "item_id": "i2",
            "value": 12.5,
            "timestamp": TS + 2 * DAY_S,
            "properties": {"ref": USER},
        },
        {"event_id": "o-1", "type": "view", "user_id": OTHER, "item_id": "i1", "timestamp": TS},
        {"event_id": "o-2", "type": "view", "user_id": OTHER, "item_id": "i2", "timestamp": TS},
    ]
    assert client.post("/v1/events", json=events).json()["accepted"] == 5


def _lake_profiles(engine: Engine) -> set[str]:
    return set(engine.lake.interaction_columns()["profile_key"].to_pylist())


def test_erasure_rewrites_every_lake_file_without_the_person(
    engine: Engine, client: TestClient
) -> None:
    _seed(client)
    assert engine.lake.sync().copied == 5
    lake = engine.settings.home / "lake"
    assert files_containing(lake, [USER, ANON])  # the scan does see them before

    answer = client.delete(f"/v1/subjects/{USER}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["lake_rows_removed"] == 3

    assert files_containing(lake, [USER, ANON]) == {}
    assert _lake_profiles(engine) == {f"u:{OTHER}"}
    assert engine.lake.interaction_columns().equals(engine.storage.interaction_columns())
    assert engine.lake.sync().removed == 0  # nothing left to do


def test_an_erasure_before_the_first_sync_leaves_nothing_to_copy(
    engine: Engine, client: TestClient
) -> None:
    _seed(client)
    assert client.delete(f"/v1/subjects/{ANON}").status_code == 200
    assert engine.lake.sync().copied == 2
    assert files_containing(engine.settings.home / "lake", [USER, ANON]) == {}


def test_a_crash_between_the_store_and_the_lake_is_finished_before_the_next_read(
    engine: Engine,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    clock: FakeClock,
) -> None:
    _seed(client)
    engine.lake.sync()

    def die(*_: object) -> int:
        raise KeyboardInterrupt  # the process ends after the store's commit

    monkeypatch.setattr(lake_module._Work, "settle", die)
    with pytest.raises(KeyboardInterrupt):
        engine.privacy.erasure.erase(USER, actor="test")
    monkeypatch.undo()
    lake = engine.settings.home / "lake"
    manifest = orjson.loads((lake / "manifest.json").read_bytes())
    assert [sorted(e["keys"]) for e in manifest["erasures"]] == [[f"a:{ANON}", f"u:{USER}"]]
    assert files_containing(lake, [USER, ANON])  # not rewritten yet

    restarted = open_engine(tmp_path, database_url, clock)
    try:
        assert _lake_profiles(restarted) == {f"u:{OTHER}"}  # the read finished the erasure
        assert files_containing(lake, [USER, ANON]) == {}
        from_store = restarted.storage.interaction_columns()
        assert restarted.lake.interaction_columns().equals(from_store)
    finally:
        restarted.close()


def test_an_erasure_that_rolls_back_removes_nothing_from_the_lake(
    engine: Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(client)
    engine.lake.sync()

    def fail(*_: object, **__: object) -> None:
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(AuditLog, "write", fail)  # inside the erasure's transaction
    with pytest.raises(RuntimeError):
        engine.privacy.erasure.erase(USER, actor="test")
    monkeypatch.undo()
    manifest = orjson.loads((engine.settings.home / "lake" / "manifest.json").read_bytes())
    assert manifest["erasures"] == []  # noted, then dropped: the store holds no tombstone
    assert _lake_profiles(engine) == {f"u:{USER}", f"u:{OTHER}"}
    assert engine.lake.interaction_columns().equals(engine.storage.interaction_columns())
