"""A `recommendations` placement with a trained model set."""

from __future__ import annotations

from fastapi.testclient import TestClient

from persona.clock import FakeClock
from persona.engine import Engine
from persona.recommend.registry import KEEP_VERSIONS
from persona.recommend.training import train_model_set
from tests.decide.placements import create, decide, outcome, post_events
from tests.recommend.serving import load, train, train_twice
from tests.recommend.synthetic import CATEGORIES


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


def test_a_placements_business_rules_pin_bury_and_boost_within_their_dates(
    client: TestClient, engine: Engine
) -> None:
    load(client)
    train(engine)
    engine.recommendations.budget_ms = 5_000
    plain = recommendations_of(client, "p1")
    drama = [i for i in plain if category(i) == "drama"]
    assert drama  # p1 favours comedy (1 % 4) but takes some drama too, or the rule is moot
    last = [i for i in plain if category(i) != "drama"][-1]
    rules = [
        {"action": "pin", "item_id": "i77", "position": 1},
        {"action": "bury", "category": "drama"},
        {"action": "boost", "item_id": last, "factor": 1000.0},
        # over before the test clock's moment: never applies
        {"action": "pin", "item_id": "i78", "position": 2, "ends_at": "2001-01-01T00:00:00Z"},
    ]
    create(
        client,
        {"name": "shop", "policy": "recommendations", "recommendations": {"n": 10, "rules": rules}},
    )
    ruled = client.get("/v1/users/p1/recommendations", params={"placement": "shop", "n": 10})
    assert ruled.status_code == 200, ruled.text
    items = ruled.json()["items"]
    ids = [i["item_id"] for i in items]
    assert ids[0] == "i77"
    assert items[0]["explanation"]["kind"] == "rule"
    assert "i78" not in ids
    assert ids.index(last) < plain.index(last)  # boosted up the list
    assert not [i for i in ids if category(i) == "drama"]  # buried below every other candidate
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    [decided] = decide(client, "shop", user_id="p1")
    assert decided["payload"]["items"][0]["item_id"] == "i77"
    # without the placement, no rule
    assert recommendations_of(client, "p1") == plain


def test_a_rule_that_names_two_targets_or_lacks_its_number_is_refused(client: TestClient) -> None:
    for rule in (
        {"action": "pin", "category": "drama", "position": 1},
        {"action": "boost", "item_id": "i1"},
        {"action": "bury", "item_id": "i1", "category": "drama"},
        {"action": "bury", "item_id": "i1", "factor": 2.0},
    ):
        response = client.post(
            "/v1/placements",
            json={"name": "bad", "policy": "recommendations", "recommendations": {"rules": [rule]}},
        )
        assert response.status_code == 422, (rule, response.text)


def recommendations_of(client: TestClient, person: str) -> list[str]:
    response = client.get(f"/v1/users/{person}/recommendations", params={"n": 10})
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


def category(item_id: str) -> str:
    return CATEGORIES[int(item_id[1:]) % len(CATEGORIES)]


def test_two_model_sets_are_compared_as_the_arms_of_an_ab_placement(
    client: TestClient, engine: Engine, clock: FakeClock
) -> None:
    first, trained_second = train_twice(client, engine, clock)
    second = trained_second.version.version
    engine.recommendations.budget_ms = 5_000
    create(
        client,
        {
            "name": "models",
            "policy": "ab",
            "recommendations": {"n": 5},
            "variants": [
                {"id": "old", "model_version": first.version},
                {"id": "new", "model_version": second},
            ],
        },
    )
    arms: dict[str, set[str]] = {}
    for person in range(40):
        [decision] = decide(client, "models", user_id=f"p{person}")
        assert decision["reason"] == "assigned"
        payload = decision["payload"]
        assert len(payload["items"]) == 5 and payload["source"] == "pipeline"
        arms.setdefault(decision["variant"], set()).add(payload["model_version"])
        post_events(
            client, [outcome(f"imp-{person}", decision["decision_id"], "impression", f"p{person}")]
        )
    assert arms == {"old": {first.version}, "new": {second}}
    results = client.get("/v1/experiments/models.v1/results")
    assert results.status_code == 200, results.text
    by_arm = {arm["arm"]: arm for arm in results.json()["arms"]}
    assert set(by_arm) == {"old", "new"}
    assert sum(arm["units"] for arm in by_arm.values()) == 40
    assert sum(arm["impressions"] for arm in by_arm.values()) == 40


def test_an_arm_naming_a_model_set_no_longer_stored_says_so(
    client: TestClient, engine: Engine
) -> None:
    load(client)
    train(engine)
    engine.recommendations.budget_ms = 5_000
    create(
        client,
        {
            "name": "gone",
            "policy": "ab",
            "recommendations": {"n": 5},
            "variants": [{"id": "only", "model_version": "20200101T000000-deleted"}],
        },
    )
    [decision] = decide(client, "gone", user_id="p1")
    assert decision["variant"] == "only"
    assert decision["payload"]["source"] != "pipeline"
    assert "not stored" in decision["payload"]["reason"]


def test_a_model_set_an_arm_is_served_from_outlives_the_pruning_of_old_ones(
    client: TestClient, engine: Engine, clock: FakeClock
) -> None:
    first, _ = train_twice(client, engine, clock, second_wins=True)
    create(
        client,
        {
            "name": "kept",
            "policy": "ab",
            "recommendations": {"n": 5},
            "variants": [{"id": "old", "model_version": first.version}, {"id": "now"}],
        },
    )
    paused = client.post("/v1/placements/kept/pause")  # it may be resumed: still kept
    assert paused.status_code == 200, paused.text
    registry = engine.recommendations.registry
    for _ in range(KEEP_VERSIONS + 1):  # the first is neither among the newest nor the previous
        clock.advance(60)
        trained = train_model_set(
            engine.storage, registry, engine.clock, engine.settings.profiles.event_weights
        )
        registry.promote(trained.version.version)
    assert registry.get(first.version) is not None
    assert len(registry.versions()) == KEEP_VERSIONS + 1  # the newest, and the arm's
