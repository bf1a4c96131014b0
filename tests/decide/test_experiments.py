"""A/B assignment through the API (stability, split) and the results endpoint (SRM, tests)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from scipy import stats
from sqlalchemy import delete

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.storage.tables.decide import decisions
from tests.conftest import open_engine
from tests.decide.placements import ab, create, decide, outcome, post_events


def results(client: TestClient, experiment: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/experiments/{experiment}/results", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_assignment_is_stable_across_a_restart(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, database_url, clock)
    with TestClient(create_app(engine)) as client:
        create(client, ab(weights=(1.0, 1.0, 1.0)))
        first = [decide(client, "home_hero", user_id=f"p{i}")[0]["variant"] for i in range(60)]
    engine.close()
    assert len(set(first)) == 3
    engine = open_engine(tmp_path, database_url, clock)
    try:
        with TestClient(create_app(engine)) as client:
            again = [decide(client, "home_hero", user_id=f"p{i}")[0]["variant"] for i in range(60)]
            # a new version reshuffles
            client.put("/v1/placements/home_hero", json=ab(weights=(1.0, 1.0, 1.0)))
            shuffled = [
                decide(client, "home_hero", user_id=f"p{i}")[0]["variant"] for i in range(60)
            ]
    finally:
        engine.close()
    assert again == first
    assert shuffled != first


def test_split_matches_the_configured_weights(client: TestClient) -> None:
    create(client, ab(weights=(5.0, 3.0, 2.0)))
    units = 2000
    counts = {"v0": 0, "v1": 0, "v2": 0}
    for i in range(units):
        counts[decide(client, "home_hero", user_id=f"unit-{i}")[0]["variant"]] += 1
    observed = [counts["v0"], counts["v1"], counts["v2"]]
    expected = [units * 0.5, units * 0.3, units * 0.2]
    assert stats.chisquare(observed, expected).pvalue > 0.001
    body = results(client, "home_hero.v1")
    assert body["sample_ratio"]["mismatch"] is False
    assert body["sample_ratio"]["observed"] == observed
    assert [a["configured_share"] for a in body["arms"]] == [0.5, 0.3, 0.2]


def test_sample_ratio_mismatch_is_flagged(client: TestClient, engine: Engine) -> None:
    create(client, ab())
    for i in range(600):
        decide(client, "home_hero", user_id=f"unit-{i}")
    # a logging bug loses most of one arm's decisions
    with engine.storage.write() as uow:
        uow.connection.execute(
            delete(decisions).where(
                decisions.c.variant == "v1", decisions.c.profile_key < "u:unit-4"
            )
        )
    body = results(client, "home_hero.v1")
    assert body["sample_ratio"]["mismatch"] is True
    assert any("sample ratio mismatch" in w for w in body["warnings"])


def test_results_compare_each_arm_with_the_control(client: TestClient, clock: FakeClock) -> None:
    rng = random.Random(7)
    # pre-experiment revenue for CUPED, before the placement exists
    post_events(
        client,
        [
            {"type": "purchase", "user_id": f"unit-{i}", "item_id": "i1", "value": float(i % 10)}
            for i in range(400)
        ],
    )
    clock.advance(60)
    create(client, ab())
    clock.advance(60)
    sent: dict[str, dict[str, int]] = {
        "v0": {"units": 0, "clicks": 0},
        "v1": {"units": 0, "clicks": 0},
    }
    events: list[dict[str, Any]] = []
    for i in range(400):
        user = f"unit-{i}"
        [d] = decide(client, "home_hero", user_id=user)
        arm = d["variant"]
        sent[arm]["units"] += 1
        events.append(outcome(f"imp-{i}", d["decision_id"], "impression", user))
        if rng.random() < (0.2 if arm == "v0" else 0.4):
            sent[arm]["clicks"] += 1
            events.append(outcome(f"click-{i}", d["decision_id"], "click", user))
            events.append(
                outcome(
                    f"buy-{i}",
                    d["decision_id"],
                    "purchase",
                    user,
                    item_id="i1",
                    value=10.0 + i % 10,
                )
            )
    post_events(client, events)

    body = results(client, "home_hero", cuped="true")  # a bare name means the current version
    assert body["experiment_id"] == "home_hero.v1" and body["control"] == "v0"
    arms = {a["arm"]: a for a in body["arms"]}
    for arm in ("v0", "v1"):
        assert arms[arm]["units"] == sent[arm]["units"]
        assert arms[arm]["clicks"] == arms[arm]["conversions"] == sent[arm]["clicks"]
        assert arms[arm]["click_rate"] == sent[arm]["clicks"] / sent[arm]["units"]
    [comparison] = body["comparisons"]
    assert comparison["arm"] == "v1"
    rate = comparison["click_rate"]
    assert rate["treatment_rate"] > rate["control_rate"]
    low, high = rate["absolute_lift_ci"]
    assert low < rate["absolute_lift"] < high
    assert rate["p_value"] < 0.01
    assert rate["sequential_p_value"] >= rate["p_value"]
    assert rate["probability_to_beat_control"] > 0.99
    revenue = comparison["revenue_per_unit"]
    assert revenue["treatment_mean"] == arms["v1"]["revenue_per_unit"]
    assert 0 <= revenue["p_value"] <= 1
    assert revenue["cuped"] is not None and "theta" in revenue["cuped"]


def test_holdout_is_the_control_when_kept(client: TestClient) -> None:
    create(client, ab(holdout_share=0.3))
    for i in range(300):
        decide(client, "home_hero", user_id=f"unit-{i}")
    body = results(client, "home_hero.v1")
    assert body["control"] == "holdout"
    arms = {a["arm"]: a for a in body["arms"]}
    assert arms["holdout"]["control"] is True and arms["holdout"]["variant"] == "v0"
    assert arms["holdout"]["configured_share"] == 0.3
    assert sum(a["units"] for a in arms.values()) == 300
    assert [c["arm"] for c in body["comparisons"]] == ["v0", "v1"]
    assert body["sample_ratio"]["mismatch"] is False
    # without any outcome the rate tests cannot run and say why
    assert body["comparisons"][0]["click_rate"] is None
    assert body["comparisons"][0]["notes"]


def test_experiments_list_and_unknown_ids(client: TestClient) -> None:
    create(client, ab())
    create(client, {"name": "static", "policy": "rules", "variants": [{"id": "only"}]})
    client.put("/v1/placements/home_hero", json=ab(weights=(2.0, 1.0)))
    listed = client.get("/v1/experiments").json()["experiments"]
    assert [(e["experiment_id"], e["current"]) for e in listed] == [
        ("home_hero.v1", False),
        ("home_hero.v2", True),
    ]
    for unknown in ("static.v1", "home_hero.v9", "nothing"):
        response = client.get(f"/v1/experiments/{unknown}/results")
        assert response.status_code == 404 and response.json()["code"] == "unknown_placement"
