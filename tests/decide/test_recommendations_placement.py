"""A `recommendations` placement with a trained model set."""

from __future__ import annotations

from fastapi.testclient import TestClient

from persona.engine import Engine
from tests.decide.placements import create, decide, post_events
from tests.recommend.test_recommendations_api import load, train


def test_pipeline_items_are_served_and_reused_until_the_person_acts(
    client: TestClient, engine: Engine
) -> None:
    load(client)
    train(engine)
    engine.recommendations.budget_ms = 5_000  # the test machine is shared: no flaky fallbacks
    create(
        client,
        {"name": "for_you", "policy": "recommendations", "recommendations": {"n": 5}},
    )
    [first] = decide(client, "for_you", user_id="p1")
    assert first["reason"] == "pipeline" and first["variant"] == "recommendations"
    items = first["payload"]["items"]
    assert len(items) == 5 and first["payload"]["model_version"]
    assert len({i["item_id"] for i in items}) == 5

    # the recommendation service's cached answer serves the same person again
    cached = len(engine.recommendations.cache)
    assert cached >= 1
    [again] = decide(client, "for_you", user_id="p1")
    assert again["payload"] == first["payload"]
    assert again["decision_id"] != first["decision_id"]  # still a decision of its own
    assert len(engine.recommendations.cache) == cached

    post_events(client, [{"type": "view", "user_id": "p1", "item_id": items[0]["item_id"]}])
    [fresh] = decide(client, "for_you", user_id="p1")
    assert fresh["reason"] == "pipeline"
    assert items[0]["item_id"] not in {i["item_id"] for i in fresh["payload"]["items"]}


def test_the_metrics_count_a_placements_answers_by_source_under_its_route(
    client: TestClient, engine: Engine
) -> None:
    load(client)
    train(engine)
    create(
        client,
        {"name": "for_you", "policy": "recommendations", "recommendations": {"n": 5}},
    )
    decide(client, "for_you", user_id="p1")  # at the default budget: from p1's shortlist
    decide(client, "for_you", user_id="p1")  # the same answer, from the cache
    assert client.get("/v1/users/p2/recommendations").status_code == 200
    text = client.get("/metrics").text
    assert (
        'persona_recommendations_total{cache="miss",route="decisions",source="pipeline"} 1.0'
        in text
    )
    assert (
        'persona_recommendations_total{cache="hit",route="decisions",source="pipeline"} 1.0' in text
    )
    assert (
        'persona_recommendations_total{cache="miss",route="recommendations",source="pipeline"} 1.0'
        in text
    )
