"""The request's context (device, country) as ranker features for everyone, learned from the
context the events were sent with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from persona.engine import Engine
from persona.recommend import dataset
from persona.recommend.dataset import ContextColumns
from tests.recommend.serving import recommendations, train

CATEGORIES = ["drama", "comedy", "action", "horror"]
N_ITEMS = 240
N_PEOPLE = 120
SESSIONS = 3
SESSION_EVENTS = 8
START_S = 1_600_000_000


def for_mobile(item: int) -> bool:
    """Half of each category is what people choose on a phone, the other half on a desktop."""
    return (item // 4) % 2 == 0


def shop() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """People favour one category each; they come in sessions, each on one device (drawn per
    session), and on each device choose that device's half of their category."""
    items = [
        {"item_id": f"i{i}", "title": f"item {i}", "categories": [CATEGORIES[i % 4]]}
        for i in range(N_ITEMS)
    ]
    rng = np.random.default_rng(11)
    rows = []
    for person in range(N_PEOPLE):
        favourite = person % 4
        seen: set[int] = set()
        for session in range(SESSIONS):
            device = "mobile" if rng.random() < 0.5 else "desktop"
            fitting = [
                i
                for i in range(N_ITEMS)
                if i % 4 == favourite and for_mobile(i) == (device == "mobile") and i not in seen
            ]
            weights = np.linspace(2.0, 0.5, len(fitting))
            picks = rng.choice(fitting, SESSION_EVENTS, replace=False, p=weights / weights.sum())
            for n, item in enumerate(picks):
                seen.add(int(item))
                at = START_S + person * 600 + session * 2 * 86_400 + n * 600
                rows.append(
                    {
                        "event_id": f"p{person}-{item}",
                        "type": "view",
                        "user_id": f"p{person}",
                        "item_id": f"i{item}",
                        "timestamp": at,
                        "context": {"device": device, "country": "FR"},
                    }
                )
    return items, rows


def test_a_known_persons_list_follows_the_device_they_ask_from(
    client: TestClient, engine: Engine
) -> None:
    items, rows = shop()
    assert client.post("/v1/items", json={"items": items}).status_code == 200
    for start in range(0, len(rows), 1000):
        response = client.post("/v1/events", json=rows[start : start + 1000])
        assert response.status_code == 200, response.text
    train(engine)
    served = engine.recommendations._served
    assert served is not None and served.pipeline.ranker is not None
    assert served.pipeline.context_fields == ["device", "country"]
    assert served.pipeline.ranker.feature_names[-2:] == [
        "context_device_lift",
        "context_country_lift",
    ]
    engine.recommendations.budget_ms = 5_000  # the test machine is shared: no fallbacks
    shares: dict[str, list[float]] = {"mobile": [], "desktop": []}
    for person in range(0, N_PEOPLE, 8):
        for device in shares:
            body = recommendations(client, f"p{person}", n=10, device=device)
            assert body["source"] == "pipeline", body
            chosen = [int(i["item_id"][1:]) for i in body["items"]]
            shares[device].append(float(np.mean([for_mobile(i) for i in chosen])))
    mobile, desktop = np.mean(shares["mobile"]), np.mean(shares["desktop"])
    # The same people, the same moment: only the device differs.
    assert mobile - desktop >= 0.3, (mobile, desktop)


def test_without_context_in_the_events_the_ranker_learns_none(
    trained: TestClient, engine: Engine
) -> None:
    served = engine.recommendations._served
    assert served is not None and served.pipeline.ranker is not None
    assert served.pipeline.context_fields == []
    assert not any(n.startswith("context_") for n in served.pipeline.ranker.feature_names)


def test_context_values_are_coded_by_frequency_and_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = [
        '{"device": "Mobile", "country": "FR"}',
        None,
        '{"device": "tv"}',
        "[1]",
        '{"device": 5, "country": " "}',
        '{"device": "mobile "}',
    ]
    context = ContextColumns.from_json(pa.array(documents, pa.string()))
    assert context.values == {"device": ["mobile", "tv"], "country": ["fr"]}
    assert context.codes["device"].tolist() == [0, -1, 1, -1, -1, 0]
    assert context.codes["country"].tolist() == [0, -1, -1, -1, -1, -1]
    assert (context.code("device", "MOBILE"), context.code("device", "car")) == (0, -1)
    assert context.take(np.asarray([5, 2])).codes["device"].tolist() == [0, 1]
    monkeypatch.setattr(dataset, "MAX_CONTEXT_VALUES", 1)  # the rarer values: none
    bounded = ContextColumns.from_json(pa.array(documents, pa.string()))
    assert bounded.values["device"] == ["mobile"]
    assert bounded.codes["device"].tolist() == [0, -1, -1, -1, -1, 0]
