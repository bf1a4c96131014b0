"""Ingest listeners (segments, clusters, predictions, attribution) get what the batch applied."""

from __future__ import annotations

from typing import Any

import pytest

from persona.engine import Engine
from persona.ingest.service import AppliedBatch
from persona.storage.sql.profiles import SqlProfileStore


def test_listeners_hear_the_folded_states_and_merges(engine: Engine) -> None:
    heard: list[AppliedBatch] = []
    engine.ingest.add_listener(lambda _uow, applied: heard.append(applied))
    engine.ingest.ingest([{"type": "view", "anonymous_id": "a1", "item_id": "i1"}])
    engine.profiles.set_traits("u1", {"plan": "gold"})
    engine.ingest.ingest(
        [
            {"event_id": "e1", "type": "identify", "anonymous_id": "a1", "user_id": "u1"},
            {"event_id": "e2", "type": "view", "user_id": "u1", "item_id": "i2"},
        ]
    )
    applied = heard[-1]
    assert [e.event_id for e in applied.events] == ["e1", "e2"]
    assert applied.profile_keys == {"e1": "u:u1", "e2": "u:u1"}
    assert applied.touched == {"u:u1"}
    assert list(applied.merged_away) == ["a:a1"]
    assert applied.traits["u:u1"] == {"plan": "gold"}
    stored = engine.profiles.get("u1")
    assert applied.states["u:u1"].to_dict() == applied.documents["u:u1"]
    assert (
        applied.documents["u:u1"]["counts"]
        == {"view": 2, "identify": 1}
        == {**stored.counts} | {"identify": 1} | {"view": 2}
    )


def test_a_batch_reads_its_profiles_once_whatever_listens(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments and clusters evaluate the states ingest folded instead of reading them back."""
    engine.segments.create("viewers", "profile.count.view >= 1")
    engine.ingest.ingest(
        [
            {"type": kind, "user_id": f"u{i}", "item_id": f"i{i % 7}", "value": float(i)}
            for i in range(60)
            for kind in ("view", "purchase")[: 1 + i % 2]
            for _ in range(1 + i % 5)
        ]
    )
    engine.clusters.train()
    loads: list[Any] = []
    original = SqlProfileStore.load

    def counted(self: SqlProfileStore, keys: Any) -> Any:
        loads.append(keys)
        return original(self, keys)

    monkeypatch.setattr(SqlProfileStore, "load", counted)
    engine.ingest.ingest([{"type": "view", "user_id": "new", "item_id": "i1"}])
    assert len(loads) == 1
    assert "viewers" in engine.segments.memberships("u:new")
    assert any(s.startswith("cluster_") for s in engine.segments.memberships("u:new"))
