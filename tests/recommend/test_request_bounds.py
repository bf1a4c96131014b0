"""What one recommendation request may make the server hold: its parameters are bounded (the
answer cache's bound in bytes is tested with a served model in test_recommendations_api)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_exclude_is_bounded_in_count_and_length(client: TestClient) -> None:
    base = "/v1/users/u1/recommendations"
    too_long = client.get(base, params={"exclude": ["x" * 129]})
    assert too_long.status_code == 422
    too_many = client.get(base, params={"exclude": [f"i{i}" for i in range(201)]})
    assert too_many.status_code == 422
    assert client.get(base, params={"exclude": [f"i{i}" for i in range(200)]}).status_code == 200
