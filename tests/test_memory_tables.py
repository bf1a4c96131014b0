"""`/metrics` tells how full each in-memory cache and table is (`persona_memory_entries`), so a
memory soak, or an operator, can see which one grows."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import view


def memory_tables(client: TestClient) -> dict[str, float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    family = next(f for f in families if f.name == "persona_memory_entries")
    return {sample.labels["table"]: sample.value for sample in family.samples}


def test_every_table_is_exported_and_follows_what_it_holds(client: TestClient) -> None:
    events = [view(None, user="u1"), view(None, user="u2"), view(None, user="u3")]
    assert client.post("/v1/events", json=events).status_code == 200
    before = memory_tables(client)
    assert {
        "profiles.cache.answers",
        "recommendations.cache.answers",
        "recommendations.refreshing",
        "consent.decisions.answers",
        "consent.changed",
        "keys.cached",
        "rate_limits.buckets",
        "failed_auth.buckets",
    } <= before.keys()
    assert before["profiles.cache.answers"] == 0

    for person in ("u1", "u2", "u3"):
        assert client.get(f"/v1/profiles/{person}").status_code == 200
    read = memory_tables(client)
    assert read["profiles.cache.answers"] == 3
    assert read["profiles.cache.profile_keys"] >= 3  # each answer names its keys

    # a person's event drops their cached profile, and the cache notes when
    assert client.post("/v1/events", json=[view(None, user="u2")]).status_code == 200
    changed = memory_tables(client)
    assert changed["profiles.cache.answers"] == 2
    assert changed["profiles.cache.invalidated"] >= 1
