"""Who is in a segment is a scope of its own (`members`, or `admin`), audited, and under the
k-anonymity threshold even sizes are withheld from keys that may not see members."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import open_engine


@pytest.fixture
def secured(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> Iterator[tuple[Engine, TestClient]]:
    engine = open_engine(tmp_path, database_url, clock, dev_mode=False, privacy={"k_anonymity": 3})
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


def _key(engine: Engine, *scopes: Scope) -> dict[str, str]:
    return {"X-API-Key": engine.keys.create("k", scopes).secret}


def _people(engine: Engine, count: int, item: str) -> None:
    engine.ingest.ingest(
        [{"type": "view", "user_id": f"{item}-{i}", "item_id": item} for i in range(count)]
    )


def test_a_read_key_sees_sizes_only_from_k_people_up(secured: tuple[Engine, TestClient]) -> None:
    engine, client = secured
    _people(engine, 2, "rare")
    _people(engine, 5, "common")
    engine.segments.create("few", 'did(view, item = "rare")')
    engine.segments.create("many", 'did(view, item = "common")')
    read, members = _key(engine, Scope.READ), _key(engine, Scope.READ, Scope.MEMBERS)

    assert client.get("/v1/segments/few", headers=read).json()["size"] is None
    assert client.get("/v1/segments/many", headers=read).json()["size"] == 5
    listed = {
        s["name"]: s["size"] for s in client.get("/v1/segments", headers=read).json()["segments"]
    }
    assert listed == {"few": None, "many": 5}
    assert client.get("/v1/segments/few", headers=members).json()["size"] == 2


def test_member_lists_need_the_members_scope_are_audited_and_obey_k(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    _people(engine, 2, "rare")
    _people(engine, 5, "common")
    engine.segments.create("few", 'did(view, item = "rare")')
    engine.segments.create("many", 'did(view, item = "common")')
    read, members = _key(engine, Scope.READ), _key(engine, Scope.MEMBERS)

    for path in ("/v1/segments/many/members", "/v1/segments/many/export"):
        assert client.get(path, headers=read).status_code == 403
    preview = client.post("/v1/segments/preview", json={"rule": "did(view)"}, headers=read)
    assert preview.status_code == 403

    few = client.get("/v1/segments/few/members", headers=members)
    assert few.status_code == 422 and few.json()["code"] == "k_anonymity"
    page = client.get("/v1/segments/many/members", headers=members)
    assert page.status_code == 200 and len(page.json()["members"]) == 5
    audit = client.get("/v1/audit", headers=_key(engine, Scope.ADMIN)).json()["entries"]
    listed = [e for e in audit if e["action"] == "segment.members"]
    assert [e["target"] for e in listed] == ["segment:many"]
    assert listed[0]["details"] == {"after": False, "members": 5}
