"""Retention reaches the event lake: the events it deletes from the store leave the lake's
files too, per type and age, and a second run changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona.clock import FakeClock
from persona.storage import lake as lake_module
from tests.conftest import NOW_MS, open_engine

DAY_S = 86_400
NOW_S = NOW_MS // 1000


def _event(event_id: str, kind: str, days_ago: float) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": kind,
        "user_id": "rita",
        "item_id": "i1",
        "timestamp": NOW_S - days_ago * DAY_S,
    }


def test_retention_deletes_the_same_events_from_the_lake(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, database_url, clock, privacy={"retention_days": {"view": 30}})
    try:
        engine.ingest.ingest(
            [
                _event("v-old", "view", 40),
                _event("v-older", "view", 41.5),
                _event("p-old", "purchase", 40),  # the same day, another type: kept
                _event("v-new", "view", 10),
            ]
        )
        engine.lake.sync()
        days_before = len(engine.lake.files())
        first = engine.privacy.retention.run()
        assert (first.deleted, first.lake_removed) == ({"view": 2}, 2)
        assert len(engine.lake.files()) == days_before - 1  # a day held only an old view
        lake_ids = sorted(
            event_id
            for path in engine.lake.files()
            for event_id in lake_module._read(path)["event_id"].to_pylist()
        )
        assert lake_ids == ["p-old", "v-new"]
        assert engine.lake.interaction_columns().equals(engine.storage.interaction_columns())

        second = engine.privacy.retention.run()
        assert (second.total, second.lake_removed) == (0, 0)
        clock.advance(25 * DAY_S)  # v-new is now 35 days old
        assert engine.privacy.retention.run().lake_removed == 1
        assert engine.lake.interaction_columns().equals(engine.storage.interaction_columns())
    finally:
        engine.close()


def test_a_cutoff_noted_before_a_crash_is_applied_by_the_next_sync(
    tmp_path: Path, database_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine(tmp_path, database_url, clock, privacy={"retention_days": {"view": 30}})
    try:
        engine.ingest.ingest([_event("v-old", "view", 40), _event("v-new", "view", 10)])
        engine.lake.sync()

        def die(*_: object) -> int:
            raise KeyboardInterrupt  # the process ends after the store's commit

        monkeypatch.setattr(lake_module._Work, "settle", die)
        with pytest.raises(KeyboardInterrupt):
            engine.privacy.retention.run()
        monkeypatch.undo()
        assert engine.lake.sync().removed == 1
        assert engine.lake.interaction_columns().equals(engine.storage.interaction_columns())
    finally:
        engine.close()
