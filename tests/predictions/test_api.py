"""The predictions and clusters API: definitions, training, scores on profiles, errors, scopes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.errors import InvalidRequestError
from tests.conftest import open_engine
from tests.predictions.synthetic import behaviour_groups, shop_events


def test_define_train_and_read_scores(client: TestClient) -> None:
    events, kinds = shop_events(people=40)
    for start in range(0, len(events), 1000):
        assert client.post("/v1/events", json=events[start : start + 1000]).status_code == 200
    body = {"name": "purchase_7d", "event_type": "purchase", "horizon_days": 7}
    created = client.post("/v1/predictions", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["trained_at"] is None and created.json()["evaluation"] is None
    assert client.post("/v1/predictions", json=body).json()["code"] == "conflict"
    assert [p["name"] for p in client.get("/v1/predictions").json()["predictions"]] == [
        "purchase_7d"
    ]
    assert client.get("/v1/profiles/p0").json()["scores"] == {}

    trained = client.post("/v1/predictions/purchase_7d/train")
    assert trained.status_code == 200, trained.text
    result = trained.json()
    assert result["scored"] == 40 and result["roc_auc"] > 0.6
    assert {"heuristic_roc_auc", "brier", "heuristic_brier"} <= set(result)
    described = client.get("/v1/predictions/purchase_7d").json()
    assert described["evaluation"]["calibration"] and described["trained_at"]
    profile = client.get("/v1/profiles/p0").json()
    assert 0.0 <= profile["scores"]["purchase_7d"] <= 1.0

    rule = {"name": "likely", "rule": "profile.scores.purchase_7d > 0.5"}
    assert client.post("/v1/segments", json=rule).status_code == 201
    members = client.get("/v1/segments/likely/members").json()
    scores = {p: client.get(f"/v1/profiles/{p}").json()["scores"]["purchase_7d"] for p in kinds}
    assert sorted(m["profile_id"] for m in members["members"]) == sorted(
        p for p, s in scores.items() if s > 0.5
    )

    assert client.delete("/v1/predictions/purchase_7d").status_code == 204
    assert client.get("/v1/predictions/purchase_7d").json()["code"] == "not_found"
    assert client.get("/v1/profiles/p0").json()["scores"] == {}


def test_bad_definitions_are_refused_with_a_code(client: TestClient) -> None:
    bad = [
        {"name": "Bad-Name", "event_type": "purchase", "horizon_days": 7},
        {"name": "ok", "event_type": "purchase", "horizon_days": 0},
        {"name": "ok", "event_type": "", "horizon_days": 7},
        {"name": "ok", "event_type": "purchase", "horizon_days": 7, "extra": 1},
    ]
    for body in bad:
        answer = client.post("/v1/predictions", json=body)
        assert answer.status_code == 422, body
    assert client.post("/v1/predictions/nope/train").json()["code"] == "not_found"


@pytest.mark.parametrize(
    "event_type", ["purchase\x00", "purchase\n", "pur chase", "1view", "kauf€", "t" * 65, 7]
)
def test_an_event_type_that_events_refuse_is_refused(
    client: TestClient, engine: Engine, event_type: object
) -> None:
    """A prediction's event type follows the rule of the events' `type` field."""
    event = client.post("/v1/events", json={"type": event_type, "user_id": "u1"}).json()
    assert event["events"][0]["status"] == "rejected"
    body = {"name": "p", "event_type": event_type, "horizon_days": 7}
    answer = client.post("/v1/predictions", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_request"
    if isinstance(event_type, str):
        with pytest.raises(InvalidRequestError, match="not an event type"):
            engine.predictions.create("p", event_type, 7)
    assert engine.predictions.definitions() == []


def test_training_without_enough_history_says_so(client: TestClient) -> None:
    client.post("/v1/events", json=[{"type": "purchase", "user_id": "u1", "item_id": "i1"}])
    body = {"name": "purchase_30d", "event_type": "purchase", "horizon_days": 30}
    assert client.post("/v1/predictions", json=body).status_code == 201
    answer = client.post("/v1/predictions/purchase_30d/train")
    assert answer.status_code == 409
    assert answer.json()["code"] == "not_enough_history"


def test_clusters_are_listed(engine: Engine, client: TestClient) -> None:
    assert client.get("/v1/clusters").json() == {
        "k": None,
        "silhouettes": {},
        "trained_at": None,
        "clusters": [],
    }
    assert client.post("/v1/events", json=behaviour_groups(per_group=6)).status_code == 200
    engine.clusters.train()
    listed = client.get("/v1/clusters").json()
    assert listed["k"] == 3 and len(listed["clusters"]) == 3
    assert sum(c["size"] for c in listed["clusters"]) == 18
    assert all(c["segment"] == f"cluster_{c['cluster_id']}" for c in listed["clusters"])
    kinds = {s["name"]: s["kind"] for s in client.get("/v1/segments").json()["segments"]}
    assert all(kinds[c["segment"]] == "cluster" for c in listed["clusters"])


@pytest.fixture
def secured(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Engine, TestClient]]:
    engine = open_engine(
        tmp_path,
        f"sqlite:///{tmp_path / 'p.db'}",
        clock,
        dev_mode=False,
        access={"key_cache_seconds": 0},
    )
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


ROUTES = [
    ("POST", "/v1/predictions", {"name": "p", "event_type": "x", "horizon_days": 3}, Scope.ADMIN),
    ("GET", "/v1/predictions", None, Scope.READ),
    ("GET", "/v1/predictions/p", None, Scope.READ),
    ("DELETE", "/v1/predictions/p", None, Scope.ADMIN),
    ("POST", "/v1/predictions/p/train", None, Scope.ADMIN),
    ("GET", "/v1/clusters", None, Scope.READ),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_scopes(
    secured: tuple[Engine, TestClient],
    method: str,
    path: str,
    body: dict[str, object] | None,
    scope: Scope,
) -> None:
    engine, client = secured
    engine.predictions.create("p", "purchase", 7)
    assert client.request(method, path, json=body).status_code == 401
    for other in (s for s in (Scope.INGEST, Scope.READ, Scope.DECIDE) if s != scope):
        secret = engine.keys.create("other", [other]).secret
        answer = client.request(method, path, json=body, headers={"X-API-Key": secret})
        assert answer.status_code == 403, (other, answer.text)
    secret = engine.keys.create("right", [scope]).secret
    answer = client.request(method, path, json=body, headers={"X-API-Key": secret})
    assert answer.status_code not in (401, 403), answer.text
