"""Placements over HTTP: versions, pause, policies, targeting, holdout, page cap and errors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from persona.engine import Engine
from tests.decide.placements import ab, create, decide, post_events


def rules_placement(**extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "cart_banner",
        "policy": "rules",
        "variants": [
            {"id": "generic", "payload": {"title": "Hello"}, "priority": 0},
            {
                "id": "vip_mobile",
                "payload": {"title": "VIP on the go"},
                "priority": 10,
                "targeting": {"segments": ["vip"], "device": ["mobile"]},
            },
            {
                "id": "weekend",
                "payload": {"title": "Weekend deal"},
                "priority": 5,
                "targeting": {"weekdays": [5, 6]},
            },
        ],
        "fallback": "generic",
    }
    config.update(extra)
    return config


def test_create_read_version_pause_and_resume(client: TestClient) -> None:
    created = create(client, ab())
    assert (created["version"], created["status"]) == (1, "active")
    assert created["experiment_id"] == "home_hero.v1"
    assert created["config"]["fallback"] == "v0"  # the first variant unless told

    changed = client.put("/v1/placements/home_hero", json=ab(weights=(1.0, 3.0)))
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    assert changed.json()["experiment_id"] == "home_hero.v2"
    versions = client.get("/v1/placements/home_hero/versions").json()
    assert versions["current_version"] == 2
    assert [v["config"]["variants"][1]["weight"] for v in versions["versions"]] == [1.0, 3.0]
    assert [p["name"] for p in client.get("/v1/placements").json()["placements"]] == ["home_hero"]

    paused = client.post("/v1/placements/home_hero/pause")
    assert paused.json()["status"] == "paused" and paused.json()["version"] == 2
    [decision] = decide(client, "home_hero")
    assert (decision["variant"], decision["reason"]) == ("v0", "paused")
    assert decision["payload"] == {"title": "variant 0"}
    client.post("/v1/placements/home_hero/resume")
    [decision] = decide(client, "home_hero")
    assert decision["reason"] == "assigned" and decision["version"] == 2
    assert client.get("/v1/placements/home_hero").json()["status"] == "active"


def test_errors_have_codes(client: TestClient) -> None:
    response = client.post("/v1/decisions", json={"user_id": "u1", "placements": ["nope"]})
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_placement"
    assert client.get("/v1/placements/nope").json()["code"] == "unknown_placement"
    assert client.put("/v1/placements/nope", json=ab(name="nope")).status_code == 404
    assert client.put("/v1/placements/nope", json=ab()).json()["code"] == "invalid_placement"
    assert client.post("/v1/placements/nope/pause").status_code == 404

    for bad in (
        ab(fallback="missing"),
        ab(weights=(0.0, 0.0)),
        {"name": "x", "policy": "ab", "variants": []},
        {"name": "x", "policy": "bandit", "variants": [{"id": "a"}]},
        ab(holdout_share=1.5),
        {**ab(), "unknown": 1},
        {
            "name": "x",
            "policy": "thompson",
            "variants": [{"id": "a"}],
            "thompson": {"bucket_by": "segment"},
        },
    ):
        response = client.post("/v1/placements", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["code"] == "invalid_placement"
        assert response.json()["errors"]
    create(client, ab())
    assert client.post("/v1/placements", json=ab()).status_code == 409
    bad_request = client.post("/v1/decisions", json={"placements": ["home_hero"]})
    assert bad_request.status_code == 422  # no identity


def test_rules_by_priority_segment_and_context(client: TestClient) -> None:
    post_events(client, [{"type": "purchase", "user_id": "rich", "item_id": "i1", "value": 500.0}])
    assert (
        client.post(
            "/v1/segments", json={"name": "vip", "rule": "profile.monetary > 100"}
        ).status_code
        == 201
    )
    create(client, rules_placement())

    def variant(user: str, **context: Any) -> str:
        [decision] = decide(client, "cart_banner", user_id=user, context=context)
        return str(decision["variant"])

    assert variant("rich", device="mobile", weekday=1) == "vip_mobile"
    assert variant("rich", device="mobile", weekday=6) == "vip_mobile"  # higher priority
    assert variant("rich", device="desktop", weekday=6) == "weekend"
    assert variant("poor", device="mobile", weekday=6) == "weekend"
    assert variant("poor", device="mobile", weekday=2) == "generic"

    client.put(
        "/v1/placements/cart_banner",
        json=rules_placement(variants=rules_placement()["variants"][1:], fallback="weekend"),
    )
    [decision] = decide(client, "cart_banner", user_id="poor", context={"weekday": 2})
    assert (decision["variant"], decision["reason"]) == ("weekend", "no_match")


def test_a_user_id_never_borrows_the_segments_of_a_same_named_anonymous_id(
    client: TestClient,
) -> None:
    # "x" was an anonymous id, identified as user "rich", who is a vip; user "x" is unknown
    post_events(
        client,
        [
            {"type": "purchase", "user_id": "rich", "item_id": "i1", "value": 500.0},
            {"type": "identify", "anonymous_id": "x", "user_id": "rich"},
        ],
    )
    vip = {"name": "vip", "rule": "profile.monetary > 100"}
    assert client.post("/v1/segments", json=vip).status_code == 201
    create(client, rules_placement())
    context = {"device": "mobile", "weekday": 1}
    [as_user] = decide(client, "cart_banner", user_id="x", context=context)
    [as_anonymous] = decide(client, "cart_banner", anonymous_id="x", context=context)
    assert (as_user["variant"], as_anonymous["variant"]) == ("generic", "vip_mobile")


def test_a_whole_number_id_decides_for_the_person_of_its_text(client: TestClient) -> None:
    """Ids follow the events' rule: user 42 is user "42"."""
    post_events(client, [{"type": "purchase", "user_id": 42, "item_id": 1, "value": 500.0}])
    vip = {"name": "vip", "rule": "profile.monetary > 100"}
    assert client.post("/v1/segments", json=vip).status_code == 201
    create(client, rules_placement())
    context = {"device": "mobile", "weekday": 1}
    [as_number] = decide(client, "cart_banner", user_id=42, context=context)
    [as_text] = decide(client, "cart_banner", user_id="42", context=context)
    assert as_number["variant"] == as_text["variant"] == "vip_mobile"
    for bad in (True, 4.2, {"id": 42}):
        refused = client.post("/v1/decisions", json={"user_id": bad, "placements": ["cart_banner"]})
        assert refused.status_code == 422, refused.text


def test_holdout_gets_the_fallback_at_its_share(client: TestClient, engine: Engine) -> None:
    create(client, ab(holdout_share=0.2, fallback="v1"))
    held = 0
    units = 1000
    for i in range(units):
        [decision] = decide(client, "home_hero", user_id=f"p{i}")
        if decision["holdout"]:
            held += 1
            assert (decision["variant"], decision["reason"]) == ("v1", "holdout")
            assert decision["payload"] == {"title": "variant 1"}
    # Binomial(1000, 0.2): sd 12.6; 5 sd either side
    assert 137 <= held <= 263
    with engine.storage.read() as uow:
        from sqlalchemy import func, select

        from persona.storage.tables.decide import decisions

        logged = uow.connection.execute(
            select(func.count()).select_from(decisions).where(decisions.c.holdout.is_(True))
        ).scalar_one()
    assert logged == held


def test_page_cap_personalizes_the_first_placements_only(client: TestClient) -> None:
    for name in ("a", "b", "c"):
        create(client, ab(name=name, weights=(0.0, 1.0)))
    answers = decide(client, "a", "b", "c", page_cap=2)
    assert [d["variant"] for d in answers] == ["v1", "v1", "v0"]
    assert [d["reason"] for d in answers] == ["assigned", "assigned", "page_cap"]
    assert len({d["decision_id"] for d in answers}) == 3
    # the server default applies without page_cap
    assert [d["reason"] for d in decide(client, "a", "b", "c")] == ["assigned"] * 3


def test_anonymous_id_and_merged_user_share_one_assignment(client: TestClient) -> None:
    create(client, ab(weights=(1.0, 1.0, 1.0, 1.0)))
    post_events(client, [{"type": "identify", "user_id": "alice", "anonymous_id": "device-9"}])
    as_user = decide(client, "home_hero", user_id="alice")[0]["variant"]
    for _ in range(3):
        assert decide(client, "home_hero", anonymous_id="device-9")[0]["variant"] == as_user


def test_recommendations_placement_returns_items(client: TestClient) -> None:
    post_events(
        client,
        [{"type": "view", "user_id": f"u{i}", "item_id": f"i{i % 7}"} for i in range(40)],
    )
    create(
        client,
        {
            "name": "for_you",
            "policy": "recommendations",
            "recommendations": {"n": 4},
            "variants": [{"id": "editorial", "payload": {"items": ["i1"]}}],
        },
    )
    [decision] = decide(client, "for_you", user_id="newcomer")
    assert decision["variant"] == "recommendations" and decision["policy"] == "recommendations"
    assert len(decision["payload"]["items"]) == 4
    assert decision["payload"]["source"] == "popular"
    assert decision["reason"].startswith("popular")
    [capped] = decide(client, "for_you", user_id="newcomer", page_cap=0)
    assert (capped["variant"], capped["payload"]) == ("editorial", {"items": ["i1"]})


def test_openapi_shows_the_configuration_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "PlacementBody" in schemas and "name" in schemas["PlacementIn"]["required"]
    create = document["paths"]["/v1/placements"]["post"]["requestBody"]["content"]
    assert create["application/json"]["schema"]["$ref"] == "#/components/schemas/PlacementIn"
    update = document["paths"]["/v1/placements/{name}"]["put"]["requestBody"]["content"]
    assert {"$ref": "#/components/schemas/PlacementBody"} in update["application/json"]["schema"][
        "allOf"
    ]


def test_openapi_shows_the_decisions_body(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/decisions"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] and schema == {"$ref": "#/components/schemas/DecisionRequest"}
    schemas = document["components"]["schemas"]
    assert "placements" in schemas["DecisionRequest"]["properties"]
    assert "device" in schemas["DecisionContext"]["properties"]  # the model it refers to


def test_a_decisions_body_that_is_not_json_gets_400(client: TestClient) -> None:
    create(client, ab())
    answer = client.post(
        "/v1/decisions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "malformed_json")
    invalid = client.post("/v1/decisions", json={"user_id": "u", "placements": "home_hero"})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["path"] == "body.placements"


def test_thompson_chooses_among_the_arms_whose_targeting_matches(client: TestClient) -> None:
    config = {
        "name": "banner",
        "policy": "thompson",
        "variants": [
            {"id": "mobile_only", "targeting": {"device": ["mobile"]}},
            {"id": "everyone"},
            {"id": "night", "targeting": {"hours": [0, 1, 2]}},
        ],
        "fallback": "everyone",
        "thompson": {"min_exploration": 0.5},
    }
    create(client, config)
    desktop = {
        decide(client, "banner", user_id=f"p{i}", context={"device": "desktop", "hour": 12})[0][
            "variant"
        ]
        for i in range(30)
    }
    assert desktop == {"everyone"}
    mobile = {
        decide(client, "banner", user_id=f"p{i}", context={"device": "mobile", "hour": 12})[0][
            "variant"
        ]
        for i in range(60)
    }
    assert mobile == {"everyone", "mobile_only"}

    only_targeted = {**config, "variants": config["variants"][:1], "fallback": "mobile_only"}
    client.put("/v1/placements/banner", json=only_targeted)
    [decision] = decide(client, "banner", context={"device": "desktop"})
    assert (decision["variant"], decision["reason"]) == ("mobile_only", "no_match")
