"""Segment sizes with differential privacy; member exports refused below k."""

from __future__ import annotations

import statistics
from pathlib import Path

from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.privacy.aggregates import noisy_count
from tests.conftest import open_engine


def _people(engine: Engine, n: int) -> None:
    engine.ingest.ingest([{"type": "view", "user_id": f"p{i}", "item_id": "i1"} for i in range(n)])


def test_noisy_sizes_center_on_the_truth_with_laplace_spread() -> None:
    draws = [noisy_count(500, 1.0) for _ in range(2000)]
    assert abs(statistics.fmean(draws) - 500) < 0.3
    # Laplace(b=1): mean absolute deviation is b
    assert 0.85 < statistics.fmean(abs(d - 500) for d in draws) < 1.15
    tight = [noisy_count(500, 10.0) for _ in range(500)]
    assert statistics.fmean(abs(d - 500) for d in tight) < 0.2


def test_segment_size_route(engine: Engine, client: TestClient) -> None:
    _people(engine, 12)
    engine.segments.create("viewers", "did(view)")
    answer = client.get("/v1/segments/viewers/size", params={"epsilon": 5})
    assert answer.status_code == 200
    body = answer.json()
    assert body["mechanism"] == "laplace" and body["epsilon"] == 5
    assert abs(body["size"] - 12) < 5
    assert client.get("/v1/segments/nothing/size").status_code == 404


def test_member_export_refused_below_k(engine: Engine, client: TestClient) -> None:
    _people(engine, 12)
    engine.segments.create("viewers", "did(view)")
    engine.segments.create("few", "did(view) and profile.event_count >= 100")
    refused = client.get("/v1/segments/few/export")
    assert refused.status_code == 422
    assert refused.json()["code"] == "k_anonymity"
    allowed = client.get("/v1/segments/viewers/export")
    assert allowed.status_code == 200
    assert len(allowed.json()["members"]) == 12


def test_k_is_configurable(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    engine = open_engine(tmp_path, database_url, clock, privacy={"k_anonymity": 20})
    try:
        _people(engine, 12)
        engine.segments.create("viewers", "did(view)")
        with TestClient(create_app(engine)) as client:
            assert client.get("/v1/segments/viewers/export").status_code == 422
    finally:
        engine.close()
