"""Export: everything held about a person, versioned JSON valid against the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from persona.cli.main import app
from persona.engine import Engine
from persona.privacy.export import export_json_schema
from persona.settings import Settings
from tests.conftest import NOW_MS

DOCS_SCHEMA = Path(__file__).parents[2] / "docs" / "export.schema.json"
TS = NOW_MS // 1000 - 600


def test_export_holds_everything_and_validates(engine: Engine, client: TestClient) -> None:
    engine.segments.create("viewers", "did(view) within 30d")
    client.post(
        "/v1/events",
        json=[
            {"type": "view", "anonymous_id": "anon-x", "item_id": "i1", "timestamp": TS},
            {"type": "identify", "user_id": "xu", "anonymous_id": "anon-x", "timestamp": TS + 1},
            {
                "type": "view",
                "user_id": "xu",
                "item_id": "i2",
                "timestamp": TS + 2,
                "properties": {"email": "x@example.org"},
            },
            {"type": "view", "user_id": "someone-else", "item_id": "i2", "timestamp": TS},
        ],
    )
    client.put("/v1/users/xu/traits", json={"plan": "gold"})
    client.put("/v1/users/xu/consent", json={"marketing": "denied"})

    answer = client.get("/v1/subjects/anon-x/export")
    assert answer.status_code == 200, answer.text
    document = answer.json()
    schema = client.get("/v1/subjects/export-schema").json()
    jsonschema.validate(document, schema)
    assert document["schema_version"] == 1
    assert document["aliases"] == ["anon-x", "xu"]
    assert len(document["events"]) == 3
    assert all(e["user_id"] != "someone-else" for e in document["events"])
    assert document["traits"] == {"plan": "gold"}
    assert document["consents"][0]["purpose"] == "marketing"
    assert [m["segment"] for m in document["segment_memberships"]] == ["viewers"]
    assert document["profile"]["event_count"] == 3
    assert document["decisions"] == []
    audit = client.get("/v1/audit").json()["entries"]
    assert "subject.export" in [e["action"] for e in audit]
    assert client.get("/v1/subjects/nobody/export").status_code == 404


def test_published_schema_file_is_current() -> None:
    assert json.loads(DOCS_SCHEMA.read_text()) == export_json_schema()


def test_cli_export(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path))
    engine.ingest.ingest([{"type": "view", "user_id": "cli-u", "item_id": "i1"}])
    engine.close()
    out = tmp_path / "export.json"
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "privacy", "export", "cli-u", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    jsonschema.validate(document, export_json_schema())
    assert document["events"][0]["user_id"] == "cli-u"
    assert "cli-u" not in result.stdout
