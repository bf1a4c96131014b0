"""An item written to the catalog after the training is served before the next one: in the
writing process at once, in another process of the same store within a second."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from tests.conftest import open_engine
from tests.recommend.serving import recommendations


@pytest.fixture
def later(trained: TestClient, clock: FakeClock) -> TestClient:
    """The served store a minute after its model set was trained."""
    clock.advance(60)
    return trained


def new_item(client: TestClient, item_id: str, category: str) -> None:
    body = {"title": f"brand new {category}", "categories": [category]}
    response = client.put(f"/v1/items/{item_id}", json=body)
    assert response.status_code == 200, response.text


def listed(body: dict[str, Any], item_id: str) -> dict[str, Any] | None:
    return next((i for i in body["items"] if i["item_id"] == item_id), None)


def test_a_new_item_fitting_the_list_takes_its_last_place_at_once(later: TestClient) -> None:
    trained = later
    before = recommendations(trained, "p0", n=10)  # p0 favours drama (cached from here on)
    new_item(trained, "fresh-drama", "drama")
    new_item(trained, "fresh-other", "no-one-watches-this")
    after = recommendations(trained, "p0", n=10)
    found = listed(after, "fresh-drama")
    assert found is not None, after
    assert after["items"][-1] == found
    assert found["explanation"] == {"kind": "new", "items": None, "category": "drama"}
    assert [i["item_id"] for i in after["items"][:-1]] == [
        i["item_id"] for i in before["items"][:-1]
    ]
    assert listed(after, "fresh-other") is None  # fits no list: left to the next training
    scores = [i["score"] for i in after["items"]]
    assert scores == sorted(scores, reverse=True)
    excluded = recommendations(trained, "p0", n=10, exclude=["fresh-drama"])
    assert listed(excluded, "fresh-drama") is None


def test_another_process_serves_it_within_a_second(
    later: TestClient, tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    trained = later
    other = open_engine(tmp_path, database_url, clock)
    try:
        other.recommendations.reload()
        other.recommendations.budget_ms = 5_000
        with TestClient(create_app(other)) as second:
            recommendations(second, "p0", n=10)  # its cache holds p0's answer
            new_item(trained, "fresh-drama", "drama")  # written through the first process
            written = time.monotonic()
            while listed(recommendations(second, "p0", n=10), "fresh-drama") is None:
                assert time.monotonic() - written < 1.0, "not served within a second"
                time.sleep(0.05)
    finally:
        other.close()
