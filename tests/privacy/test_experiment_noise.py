"""Experiment counts released with differential privacy: `?epsilon=` on the results route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.decide.placements import ab, create, decide, outcome, post_events

COUNTS = ("units", "exposures", "impressions", "clicks", "conversions")
RESULTS = "/v1/experiments/home_hero.v1/results"


def run_experiment(client: TestClient, people: int = 40) -> None:
    create(client, ab())
    events = []
    for i in range(people):
        user = f"p{i}"
        decision = decide(client, "home_hero", user_id=user)[0]["decision_id"]
        events.append(outcome(f"imp{i}", decision, "impression", user))
        if i % 2:
            events.append(outcome(f"click{i}", decision, "click", user))
        if i % 5 == 0:
            events.append(outcome(f"buy{i}", decision, "purchase", user, item_id="i1", value=9.0))
    post_events(client, events)


def results(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get(RESULTS, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def arms(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["arm"]: a for a in body["arms"]}


def test_without_epsilon_the_answer_is_exact(client: TestClient) -> None:
    run_experiment(client)
    body = results(client)
    assert body["noisy"] is False and body["epsilon"] is None and body["mechanism"] is None
    assert sum(a["units"] for a in body["arms"]) == 40
    assert sum(a["impressions"] for a in body["arms"]) == 40
    assert sum(a["clicks"] for a in body["arms"]) == 20
    assert sum(a["conversions"] for a in body["arms"]) == 8
    assert body["comparisons"] and all(a["revenue"] is not None for a in body["arms"])


def test_a_large_epsilon_stays_close_to_the_truth(client: TestClient) -> None:
    run_experiment(client)
    exact = arms(results(client))
    body = results(client, epsilon=10)
    assert body["noisy"] is True and body["epsilon"] == 10 and body["mechanism"] == "laplace"
    noisy = arms(body)
    assert noisy.keys() == exact.keys()
    for name, arm in noisy.items():
        for count in COUNTS:
            assert isinstance(arm[count], int) and arm[count] >= 0
            assert abs(arm[count] - exact[name][count]) <= 8  # Laplace scale 0.5 per count
        units = arm["units"]
        assert arm["click_rate"] == (min(1.0, arm["clicks"] / units) if units else None)
        assert arm["conversion_rate"] == (min(1.0, arm["conversions"] / units) if units else None)
        assert arm["revenue"] is None and arm["revenue_per_unit"] is None
    # statistics computed from the exact data would leak it: withheld
    assert body["comparisons"] == [] and body["sample_ratio"] is None and body["bandit"] is None
    assert len(body["warnings"]) == 1 and "noise" in body["warnings"][0]


def test_a_small_epsilon_moves_the_counts(client: TestClient) -> None:
    run_experiment(client)
    exact = arms(results(client))
    noisy = arms(results(client, epsilon=0.01))  # Laplace scale 500 per count
    moved = [
        (name, count)
        for name, arm in noisy.items()
        for count in COUNTS
        if arm[count] != exact[name][count]
    ]
    assert len(moved) >= len(COUNTS)  # each count stays put with probability about 1/1000
    assert all(arm[count] >= 0 for arm in noisy.values() for count in COUNTS)


@pytest.mark.parametrize("epsilon", ["0", "-1", "10.5", "1e9", "nan", "many"])
def test_epsilon_is_validated(client: TestClient, epsilon: str) -> None:
    create(client, ab())
    answer = client.get(RESULTS, params={"epsilon": epsilon})
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_request"
