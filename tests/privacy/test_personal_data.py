"""Personal values never reach the database files, the models or the logs in clear."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.privacy.personal import truncate_ip
from tests.conftest import NOW_MS, open_engine
from tests.privacy.scan import files_containing, rows_containing

EMAIL = "zelda.quinlan@example.org"
PHONE = "+44 7700 900123"
IP = "203.0.113.77"
FIRST = "Zeldaquin"
LAST = "Quinlanova"
CLEAR = [EMAIL, PHONE, IP, FIRST, LAST, "203.0.113"]


@pytest.fixture
def sqlite_engine(tmp_path: Path, clock: FakeClock) -> Iterator[Engine]:
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'persona.db'}", clock)
    yield engine
    engine.close()


def _write_everything(client: TestClient) -> None:
    ts = NOW_MS // 1000 - 60
    events = [
        {
            "event_id": "e1",
            "type": "view",
            "user_id": "u-zq",
            "item_id": "i1",
            "timestamp": ts,
            "properties": {"email": EMAIL, "nested": {"Phone": PHONE}},
            "context": {"ip": IP, "device": "mobile"},
        },
        {
            "event_id": "e2",
            "type": "identify",
            "user_id": "u-zq",
            "anonymous_id": "anon-zq",
            "timestamp": ts,
            "properties": {"first_name": FIRST, "last_name": LAST},
        },
        # rejected: in the future; its raw payload goes to the quarantine
        {
            "event_id": "e3",
            "type": "view",
            "user_id": "u-zq",
            "timestamp": ts + 10 * 86_400,
            "properties": {"email": EMAIL},
            "context": {"ip": IP},
        },
        # rejected: unknown field
        {"type": "view", "user_id": "u-zq", "bogus": 1, "properties": {"phone": PHONE}},
    ]
    answer = client.post("/v1/events", json=events)
    assert answer.status_code in (200, 207), answer.text
    assert answer.json()["accepted"] == 2
    traits = {"email": EMAIL, "first_name": FIRST, "last_name": LAST, "plan": "gold"}
    assert client.put("/v1/users/u-zq/traits", json=traits).status_code == 200


def test_no_clear_personal_value_in_files_rows_or_logs(
    sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(sqlite_engine)) as client:
        _write_everything(client)
        profile = client.get("/v1/profiles/u-zq").json()
        assert profile["traits"]["plan"] == "gold"
        assert profile["traits"]["email"].startswith("ph:")
        assert profile["last_context"]["ip"].startswith("ph:")
        quarantined = client.get("/v1/quarantine").json()["entries"]
        assert len(quarantined) == 2
        assert all(EMAIL not in e["raw"] and PHONE not in e["raw"] for e in quarantined)
    assert rows_containing(sqlite_engine, CLEAR) == {}
    sqlite_engine.close()
    assert files_containing(tmp_path, CLEAR) == {}
    assert not [r for r in caplog.records if any(v in r.getMessage() for v in CLEAR)]


def test_equal_values_get_equal_pseudonyms_and_ips_are_truncated(engine: Engine) -> None:
    personal = engine.privacy.personal
    engine.ingest.ingest(
        [
            {"type": "view", "user_id": "a", "context": {"ip": "198.51.100.23"}},
            {"type": "view", "user_id": "b", "context": {"ip": "198.51.100.200"}},
            {"type": "view", "user_id": "c", "context": {"ip_address": "2001:db8:1:2::7"}},
        ]
    )
    ctx = {p: engine.profiles.get(p).last_context for p in "abc"}
    assert ctx["a"] == ctx["b"] == {"ip": personal.pseudonym("198.51.100.0")}
    assert ctx["c"] == {"ip_address": personal.pseudonym("2001:db8:1::")}
    assert truncate_ip("not an address") == "not an address"


def test_encrypted_fields_are_recoverable_in_the_export(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, database_url, clock, privacy={"encrypted_fields": ("email",)})
    try:
        engine.profiles.set_traits("enc", {"email": EMAIL, "phone": PHONE})
        stored = engine.profiles.get("enc").traits
        assert stored["email"].startswith("enc:")
        assert stored["phone"].startswith("ph:")
        exported = engine.privacy.export.export("enc", actor="test")
        assert exported.traits["email"] == EMAIL
        assert exported.traits["phone"] == stored["phone"]  # a pseudonym cannot be reversed
    finally:
        engine.close()


def test_keys_are_generated_once_with_mode_0600(tmp_path: Path, engine: Engine) -> None:
    for name in ("pseudonym.key", "encryption.key"):
        path = tmp_path / "secrets" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = engine.privacy.personal.pseudonym("x")
    again = open_engine(tmp_path, str(engine.storage.engine.url), FakeClock())
    try:
        assert again.privacy.personal.pseudonym("x") == first
    finally:
        again.close()


def test_a_configured_key_is_used_and_never_shown(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    engine = open_engine(
        tmp_path, database_url, clock, privacy={"pseudonym_key": "s3cret-pseudonym-key"}
    )
    try:
        assert not (tmp_path / "secrets" / "pseudonym.key").exists()
        assert "s3cret-pseudonym-key" not in repr(engine.settings)
    finally:
        engine.close()


def test_traits_cannot_set_server_owned_fields(engine: Engine, client: TestClient) -> None:
    engine.ingest.ingest([{"type": "view", "user_id": "srv", "item_id": "i1"}])
    answer = client.put(
        "/v1/users/srv/traits",
        json={"segments": ["vip"], "scores": {"purchase_30d": 1.0}, "event_count": 99},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["segments"] == []
    assert body["scores"] == {}
    assert body["event_count"] == 1
    assert body["traits"]["segments"] == ["vip"]  # stored as a trait, nothing more


def test_a_personal_key_holding_an_object_is_transformed_to_its_leaves(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """`"email": {"primary": …}`: everything under a personal key is personal, whatever the
    keys below it are called; the shape stays, every value is a pseudonym."""
    hidden = ["grace-nested@example.com", "grace-work@example.com", "+44 20 7946 0999"]
    ts = NOW_MS // 1000 - 60
    nested = {"primary": hidden[0], "others": [hidden[1]], "verified": True}
    events = [
        {
            "event_id": "n1",
            "type": "view",
            "user_id": "u-nested",
            "item_id": "i1",
            "timestamp": ts,
            "properties": {"email": nested, "phone": {"mobile": hidden[2]}},
        },
        # quarantined (in the future): its raw payload is transformed the same way
        {
            "type": "view",
            "user_id": "u-nested",
            "timestamp": ts + 10 * 86_400,
            "properties": {"email": nested},
        },
    ]
    with TestClient(create_app(sqlite_engine)) as client:
        assert client.post("/v1/events", json=events).json()["accepted"] == 1
        assert client.put("/v1/users/u-nested/traits", json={"email": nested}).status_code == 200
        stored = client.get("/v1/profiles/u-nested").json()["traits"]["email"]
        assert set(stored) == {"primary", "others", "verified"}
        assert stored["primary"].startswith("ph:") and stored["others"][0].startswith("ph:")
    assert rows_containing(sqlite_engine, hidden) == {}
    sqlite_engine.close()
    assert files_containing(tmp_path, hidden) == {}


def test_common_names_of_personal_fields_are_personal_by_default(engine: Engine) -> None:
    """Every IP field is pseudonymized after its truncation, not only truncated, and the usual
    spellings of e-mail and phone fields are personal without configuration."""
    personal = engine.privacy.personal
    document = {
        "client_ip": "203.0.113.77",
        "remote_ip": "203.0.113.78",
        "ipaddress": "2001:db8::1",
        "email_address": "a@example.com",
        "user_email": "b@example.com",
        "phone_number": "+44 20 7946 0000",
    }
    scrubbed = personal.scrub(document)
    assert scrubbed is not None
    assert all(str(value).startswith("ph:") for value in scrubbed.values()), scrubbed
    # the two addresses of one /24 are one pseudonym: truncated first
    assert scrubbed["client_ip"] == scrubbed["remote_ip"]


def test_e_mail_addresses_in_urls_and_free_text_are_pseudonymized(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """`page`, `url`, `referrer`, `user_agent` … are free text: the e-mail addresses in them
    are replaced by pseudonyms, in events and in the decision log alike."""
    address = "ann.free-text@example.com"
    ts = NOW_MS // 1000 - 60
    page = f"https://shop.example/account?email={address}&tab=orders"
    event = {
        "event_id": "f1",
        "type": "view",
        "user_id": "u-free",
        "item_id": "i1",
        "timestamp": ts,
        "context": {"page": page, "user_agent": f"Mailer/1.0 ({address})"},
        "properties": {"referrer": f"mailto:{address}", "note": "no address here"},
    }
    with TestClient(create_app(sqlite_engine)) as client:
        assert client.post("/v1/events", json=[event]).json()["accepted"] == 1
        placement = {"name": "hero", "policy": "rules", "variants": [{"id": "a"}], "fallback": "a"}
        assert client.post("/v1/placements", json=placement).status_code == 201
        decided = client.post(
            "/v1/decisions",
            json={"user_id": "u-free", "placements": ["hero"], "context": {"page": page}},
        )
        assert decided.status_code == 200, decided.text
        context = client.get("/v1/profiles/u-free").json()["last_context"]
        assert context["page"].startswith("https://shop.example/account?email=ph:")
        assert context["page"].endswith("&tab=orders")
    assert rows_containing(sqlite_engine, [address]) == {}
    sqlite_engine.close()
    assert files_containing(tmp_path, [address]) == {}
