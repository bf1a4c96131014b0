"""Similar items over HTTP ("more like this"): what they hold, what they leave out, and the
answers for items the model set does not know."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from persona.engine import Engine
from persona.recommend.schema import SimilarItemsOut
from tests.recommend.serving import load
from tests.recommend.synthetic import CATEGORIES, events


def similar(client: TestClient, item: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/items/{item}/similar", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    SimilarItemsOut.model_validate(answer)
    return answer


def category(item_id: str) -> str:
    return CATEGORIES[int(item_id[1:]) % len(CATEGORIES)]


def test_similar_items_share_the_items_taste_and_leave_the_item_out(
    trained: TestClient,
) -> None:
    for item in ("i0", "i1", "i6", "i11"):
        answer = similar(trained, item, n=10)
        ids = [i["item_id"] for i in answer["items"]]
        assert answer["source"] == "similar"
        assert len(ids) == 10
        assert item not in ids
        # People favour one category each: what they take along with an item is mostly of its
        # category (85% of each history), so most of its similar items are too.
        same = sum(category(i) == category(item) for i in ids)
        assert same >= 7, (item, ids)
        scores = [i["score"] for i in answer["items"]]
        assert scores == sorted(scores, reverse=True)
        assert all(i["sources"] for i in answer["items"])
        assert all(
            i["explanation"]["kind"] == "history"
            and [n["item_id"] for n in i["explanation"]["items"]] == [item]
            for i in answer["items"]
        )


def test_filters_apply_exclude_category_unavailable_and_the_persons_history(
    trained: TestClient,
) -> None:
    first = [i["item_id"] for i in similar(trained, "i0", n=5)["items"]]
    without = [i["item_id"] for i in similar(trained, "i0", n=5, exclude=first[:2])["items"]]
    assert not set(first[:2]) & set(without)
    comedy = similar(trained, "i0", n=5, category="comedy")["items"]
    assert comedy
    assert all(category(i["item_id"]) == "comedy" for i in comedy)
    response = trained.put("/v1/items/" + first[0], json={"available": False})
    assert response.status_code == 200, response.text
    assert first[0] not in [i["item_id"] for i in similar(trained, "i0", n=10)["items"]]
    history = {e["item_id"] for e in events() if e["user_id"] == "p0"}
    mine = [i["item_id"] for i in similar(trained, "i0", n=10, user_id="p0")["items"]]
    assert len(mine) == 10
    assert not set(mine) & history


def test_an_item_newer_than_the_model_set_gets_trending_and_an_unknown_one_404(
    trained: TestClient,
) -> None:
    response = trained.put("/v1/items/fresh", json={"title": "new", "categories": ["drama"]})
    assert response.status_code == 200, response.text
    answer = similar(trained, "fresh", n=5)
    assert answer["source"] == "trending"
    assert answer["reason"]
    assert {i["explanation"]["kind"] for i in answer["items"]} == {"trending"}
    assert len(answer["items"]) == 5
    missing = trained.get("/v1/items/nothing-here/similar")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_before_any_training_the_list_is_empty_and_says_why(client: TestClient) -> None:
    load(client)
    answer = similar(client, "i0")
    assert answer["items"] == []
    assert answer["source"] == "none"
    assert answer["reason"]


def test_an_items_list_is_kept_for_everyone_until_the_catalog_changes(
    trained: TestClient, engine: Engine
) -> None:
    service = engine.recommendations
    first = service.similar("i0", 5)
    again = service.similar("i0", 5)
    assert not first.cached and again.cached
    assert again.items == first.items
    assert not service.similar("i0", 5, person_id="p1").cached  # a person's own: never kept
    response = trained.put("/v1/items/i0", json={"title": "renamed", "categories": ["drama"]})
    assert response.status_code == 200, response.text
    assert not service.similar("i0", 5).cached
