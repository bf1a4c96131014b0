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


def test_the_person_id_in_the_path_is_checked_as_any_parameter(client: TestClient) -> None:
    # The route is answered without FastAPI's handler (``answer_directly``): same rule, same
    # problem, the key check and the answer unchanged.
    for person, kind in (("x" * 129, "string_too_long"), ("a%01b", "string_pattern_mismatch")):
        answer = client.get(f"/v1/users/{person}/recommendations")
        assert answer.status_code == 422
        body = answer.json()
        assert body["code"] == "invalid_request"
        assert [(e["path"], e["type"]) for e in body["errors"]] == [("path.user_id", kind)]
    assert client.get("/v1/users/" + "x" * 128 + "/recommendations").status_code == 200
