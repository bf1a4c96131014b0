"""The catalog API: put, batch upsert, get, list."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_put_then_get_round_trips_every_field(client: TestClient) -> None:
    body = {
        "title": "Heat",
        "categories": ["Action", "Crime", "Action"],
        "tags": ["classic"],
        "price": 3.99,
        "available": False,
        "created_at": "1995-12-15T00:00:00Z",
        "attributes": {"year": 1995, "director": "Michael Mann"},
    }
    put = client.put("/v1/items/6", json=body)
    assert put.status_code == 200
    got = client.get("/v1/items/6").json()
    assert got == put.json()
    assert got["categories"] == ["Action", "Crime"]
    assert got["created_at"] == "1995-12-15T00:00:00Z" and got["available"] is False


def test_batch_upsert_replaces_and_lists_in_pages(client: TestClient) -> None:
    items = [{"item_id": f"i{n}", "title": f"t{n}", "categories": ["c"]} for n in range(5)]
    assert client.post("/v1/items", json={"items": items}).json() == {"upserted": 5}
    client.post("/v1/items", json={"items": [{"item_id": "i0", "title": "changed"}]})
    assert client.get("/v1/items/i0").json()["title"] == "changed"
    page = client.get("/v1/items", params={"limit": 3}).json()
    assert [i["item_id"] for i in page["items"]] == ["i0", "i1", "i2"] and page[
        "next_after"
    ] == "i2"
    rest = client.get("/v1/items", params={"after": "i2"}).json()
    assert [i["item_id"] for i in rest["items"]] == ["i3", "i4"] and rest["next_after"] is None


def test_bad_items_get_422_and_unknown_items_404(client: TestClient) -> None:
    assert client.put("/v1/items/x", json={"price": -1}).status_code == 422
    assert client.put("/v1/items/x", json={"unknown_field": 1}).status_code == 422
    assert client.post("/v1/items", json={"items": []}).status_code == 422
    too_many = [{"item_id": str(n)} for n in range(1001)]
    assert client.post("/v1/items", json={"items": too_many}).status_code == 422
    missing = client.get("/v1/items/none")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
