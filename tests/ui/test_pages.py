"""The dashboard's pages and forms through the ASGI app: signing in and out, the session
cookie, CSRF, scopes, every page, and each change a page can make.

The rules that must hold for every page and every form (a page needs a session; a change needs
the CSRF token; an admin's change refuses a read key) are checked over the route table, so a
new page or form cannot ship without them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response

from persona.access.keys import Scope
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.ui.conftest import SeededHome, settings_of
from tests.ui.seed import AB, BANDIT, PERSON, SEGMENT

PAGES = [
    "/ui",
    "/ui?window=day",
    "/ui/people",
    f"/ui/people/{PERSON}",
    "/ui/segments",
    f"/ui/segments/{SEGMENT}",
    "/ui/experiments",
    f"/ui/experiments/{AB}",
    f"/ui/experiments/{BANDIT}?metric=click_rate",
    "/ui/models",
    "/ui/quality",
]
OPEN = {"/ui/login", "/ui/static/{name}"}  # answered without a session
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, seeded_home: SeededHome) -> Iterator[Engine]:
    """The seeded store behind an engine that checks keys (looked up on every request)."""
    home = seeded_home.copy(tmp_path_factory.mktemp("pages"))
    settings = settings_of(home, access={"key_cache_seconds": 0})
    opened = Engine.open(settings, clock=FakeClock(seeded_home.end_ms))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def app(engine: Engine) -> FastAPI:
    return create_app(engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A browser of its own: no session until it signs in."""
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def keys(engine: Engine) -> dict[Scope, str]:
    return {scope: engine.keys.create(f"ui {scope.value}", [scope]).secret for scope in Scope}


def csrf_of(client: TestClient, page: str) -> str:
    answer = client.get(page)
    assert answer.status_code == 200, (page, answer.status_code)
    found = CSRF.search(answer.text)
    assert found, page
    return found.group(1)


def sign_in(client: TestClient, key: str) -> Response:
    token = csrf_of(client, "/ui/login")
    return client.post("/ui/login", data={"csrf": token, "key": key, "next": "/ui/models"})


def signed_in(client: TestClient, key: str) -> TestClient:
    answer = sign_in(client, key)
    assert answer.status_code == 303, answer.text
    return client


def _ui_routes(app: FastAPI, method: str) -> list[str]:
    return [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute)
        and route.path.startswith("/ui")
        and method in (route.methods or ())
    ]


def concrete(path: str, engine: Engine) -> str:
    versions = engine.recommendations.registry.versions()
    return (
        path.replace("{name}", SEGMENT)
        .replace("{version}", versions[0].version)
        .replace("{quarantine_id}", "1")
        .replace("{experiment_id}", AB)
        .replace("{person_id:path}", PERSON)
    )


# -- signing in -------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [Scope.READ, Scope.ADMIN])
def test_a_read_or_admin_key_signs_in_with_a_strict_http_only_cookie(
    client: TestClient, keys: dict[Scope, str], scope: Scope
) -> None:
    assert client.get("/ui/models").headers["location"] == "/ui/login?next=/ui/models"
    answer = sign_in(client, keys[scope])
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/models"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("persona_ui="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/ui", "max-age=28800"} <= flags
    assert "secure" not in flags  # served over http here
    assert client.get("/ui/models").status_code == 200


def test_over_https_the_session_cookie_is_secure(app: FastAPI, keys: dict[Scope, str]) -> None:
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        answer = sign_in(client, keys[Scope.READ])
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("persona_ui=")
        )
        assert "secure" in {part.strip().lower() for part in cookie.split(";")}
        assert client.get("/ui").status_code == 200


@pytest.mark.parametrize("scope", [Scope.PUBLIC, Scope.INGEST, Scope.DECIDE, Scope.MEMBERS])
def test_a_key_that_may_not_read_cannot_sign_in(
    client: TestClient, keys: dict[Scope, str], scope: Scope
) -> None:
    answer = sign_in(client, keys[scope])
    assert answer.status_code == 403
    assert "cannot sign in" in answer.text
    assert not any(c.startswith("persona_ui=") for c in answer.headers.get_list("set-cookie"))
    assert client.get("/ui").status_code == 303


@pytest.mark.parametrize("key", ["psk_0123456789ab_" + "A" * 43, "not a key", ""])
def test_a_wrong_key_cannot_sign_in(client: TestClient, key: str) -> None:
    answer = sign_in(client, key)
    assert answer.status_code == 401 and "not valid" in answer.text
    assert client.get("/ui").status_code == 303


def test_the_sign_in_form_needs_its_csrf_token(client: TestClient, keys: dict[Scope, str]) -> None:
    csrf_of(client, "/ui/login")  # the page's cookie is there; the form's token is not
    refused = client.post("/ui/login", data={"key": keys[Scope.ADMIN]})
    assert refused.status_code == 403
    forged = client.post("/ui/login", data={"key": keys[Scope.ADMIN], "csrf": "guessed"})
    assert forged.status_code == 403
    assert client.get("/ui").status_code == 303


def test_failed_sign_ins_spend_the_addresss_budget_as_keyless_requests_do(
    tmp_path: Path,
) -> None:
    settings = settings_of(
        tmp_path, access={"failed_auth_per_second": 0.001, "failed_auth_burst": 3}
    )
    engine = Engine.open(settings)
    try:
        good = engine.keys.create("reader", [Scope.READ]).secret
        with TestClient(create_app(engine), follow_redirects=False) as client:
            assert [sign_in(client, "wrong").status_code for _ in range(3)] == [401] * 3
            refused = sign_in(client, good)  # the budget is spent: not even looked up
            assert refused.status_code == 429 and "retry-after" in refused.headers
            assert refused.headers["content-type"].startswith("text/html")
    finally:
        engine.close()


def test_sign_in_only_returns_to_a_page_of_the_dashboard(
    client: TestClient, keys: dict[Scope, str]
) -> None:
    for target in ("https://elsewhere.example/", "//elsewhere.example/ui", "/v1/items"):
        token = csrf_of(client, "/ui/login")
        answer = client.post(
            "/ui/login", data={"csrf": token, "key": keys[Scope.READ], "next": target}
        )
        assert answer.headers["location"] == "/ui", target


def test_signing_out_forgets_the_session(client: TestClient, keys: dict[Scope, str]) -> None:
    signed_in(client, keys[Scope.READ])
    assert client.post("/ui/logout").status_code == 403  # without its CSRF token
    answer = client.post("/ui/logout", data={"csrf": csrf_of(client, "/ui")})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    assert client.get("/ui").status_code == 303


def test_a_session_ends_when_its_key_is_revoked_or_its_time_is_up(
    client: TestClient, engine: Engine
) -> None:
    created = engine.keys.create("short-lived", [Scope.READ])
    signed_in(client, created.secret)
    engine.keys.revoke(created.key_id)
    assert client.get("/ui").status_code == 303
    signed_in(client, engine.keys.create("another", [Scope.READ]).secret)
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(8 * 3600 - 1)
    assert client.get("/ui/people").status_code == 200
    clock.advance(1)
    try:
        assert client.get("/ui/people").status_code == 303
    finally:
        clock.advance(-8 * 3600)


def test_a_forged_or_altered_cookie_is_no_session(
    client: TestClient, keys: dict[Scope, str]
) -> None:
    signed_in(client, keys[Scope.READ])
    value = client.cookies["persona_ui"]
    payload, signature = value.split(".")
    for forged in (f"{payload}.{signature[:-2]}AA", f"{payload[:-2]}AA.{signature}", "x.y", ""):
        client.cookies.set("persona_ui", forged, path="/ui")
        assert client.get("/ui").status_code == 303, forged


# -- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("scope", [Scope.READ, Scope.ADMIN])
def test_every_page_answers_a_signed_in_reader_and_admin(
    client: TestClient, keys: dict[Scope, str], page: str, scope: Scope
) -> None:
    signed_in(client, keys[scope])
    answer = client.get(page)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert "script-src 'self';" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    for href in ("/ui/people", "/ui/segments", "/ui/experiments", "/ui/models", "/ui/quality"):
        assert f'href="{href}"' in answer.text  # the navigation
    assert "<script>" not in answer.text  # every script is a file (the policy allows no other)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_sends_a_stranger_to_the_sign_in_page(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 303
    path = page.split("?")[0]
    assert answer.headers["location"] == f"/ui/login?next={path}"


def test_every_page_of_the_route_table_is_among_the_pages_tested(
    app: FastAPI, engine: Engine
) -> None:
    tested = {page.split("?")[0] for page in PAGES}
    for path in _ui_routes(app, "GET"):
        if path not in OPEN:
            assert concrete(path, engine) in tested, path


def test_a_page_that_does_not_exist_is_a_404_page(
    client: TestClient, keys: dict[Scope, str]
) -> None:
    signed_in(client, keys[Scope.READ])
    for page in ("/ui/people/nobody-at-all", "/ui/segments/missing", "/ui/experiments/none"):
        answer = client.get(page)
        assert answer.status_code == 404, page
        assert answer.headers["content-type"].startswith("text/html")
    assert client.get("/ui/segments/Not_A_Name").status_code == 404


def test_a_reader_sees_neither_the_quarantine_nor_a_persons_events(
    client: TestClient, keys: dict[Scope, str], engine: Engine
) -> None:
    """As on the API: the raw payloads and a person's own events are an admin's."""
    signed_in(client, keys[Scope.READ])
    quality = client.get("/ui/quality").text
    assert "missing_identity" in quality  # the counts by code
    assert "<details>" not in quality and "/replay" not in quality
    person = client.get(f"/ui/people/{PERSON}").text
    assert "Because you watched" in person  # recommendations, with their explanations
    assert "<h2>Decisions</h2>" not in person and "shown to an admin key" in person
    segment = client.get(f"/ui/segments/{SEGMENT}").text
    assert "members scope" in segment and 'class="segment-form"' not in segment


def test_an_admin_sees_a_persons_events_decisions_and_segments(
    client: TestClient, keys: dict[Scope, str]
) -> None:
    signed_in(client, keys[Scope.ADMIN])
    page = client.get(f"/ui/people/{PERSON}").text
    assert "<h2>Decisions</h2>" in page and f"{AB}.v1" in page and f"{BANDIT}.v1" in page
    assert f'href="/ui/segments/{SEGMENT}"' in page  # the stay in the segment
    assert "granted" in page  # consent


# -- changes ----------------------------------------------------------------------------------


def test_every_change_without_its_csrf_token_is_refused(
    app: FastAPI, client: TestClient, keys: dict[Scope, str], engine: Engine
) -> None:
    signed_in(client, keys[Scope.ADMIN])
    changes = [path for path in _ui_routes(app, "POST") if path != "/ui/login"]
    assert len(changes) >= 6
    for path in changes:
        target = concrete(path, engine)
        missing = client.post(target, data={"rule": "did(view)", "name": "x1"})
        assert missing.status_code == 403, (path, missing.status_code)
        wrong = client.post(target, data={"csrf": "A" * 43}, headers={"x-csrf-token": "A" * 43})
        assert wrong.status_code == 403, path
    assert client.get("/ui").status_code == 200  # still signed in


def test_every_admin_change_is_refused_to_a_read_key(
    app: FastAPI, client: TestClient, keys: dict[Scope, str], engine: Engine
) -> None:
    signed_in(client, keys[Scope.READ])
    token = csrf_of(client, "/ui")
    changes = [p for p in _ui_routes(app, "POST") if p not in ("/ui/login", "/ui/logout")]
    for path in changes:
        target = concrete(path, engine)
        form = {"csrf": token, "name": "from_a_reader", "rule": "did(view)"}
        answer = client.post(target, data=form, headers={"x-csrf-token": token})
        assert answer.status_code == 403, (path, answer.status_code)
    assert "from_a_reader" not in {d.name for d in engine.segments.definitions()}


def test_a_segment_is_previewed_created_and_changed(
    client: TestClient, keys: dict[Scope, str], engine: Engine
) -> None:
    signed_in(client, keys[Scope.ADMIN])
    token = csrf_of(client, "/ui/segments")
    preview = client.post(
        "/ui/segments/_preview",
        json={"rule": "did(view) within 1d"},
        headers={"x-csrf-token": token},
    )
    assert preview.status_code == 200, preview.text
    found = preview.json()
    assert found["size"] > 0 and 0 < len(found["sample"]) <= 10
    invalid = client.post(
        "/ui/segments/_preview", json={"rule": "did(view"}, headers={"x-csrf-token": token}
    )
    assert invalid.status_code == 422 and invalid.json()["detail"]

    form = {"csrf": token, "name": "viewers_today", "rule": "did(view) within 1d"}
    created = client.post("/ui/segments", data={**form, "description": "viewed today"})
    assert (
        created.status_code == 303 and created.headers["location"] == "/ui/segments/viewers_today"
    )
    assert engine.segments.size("viewers_today") == found["size"]
    page = client.get("/ui/segments/viewers_today").text
    assert "viewed today" in page and "chart-segment-size" in page
    taken = client.post("/ui/segments", data=form)
    assert taken.status_code == 409 and "exists" in taken.text
    broken = client.post("/ui/segments", data={**form, "name": "broken", "rule": "did(view"})
    assert broken.status_code == 422 and "did(view" in broken.text  # the form keeps the rule

    changed = client.post(
        "/ui/segments/viewers_today",
        data={"csrf": token, "rule": "did(purchase) within 1d", "description": "bought"},
    )
    assert changed.status_code == 303
    record = engine.segments.get("viewers_today")
    assert (record.rule, record.description) == ("did(purchase) within 1d", "bought")
    actions = [entry.action for entry in engine.privacy.audit.page(after_id=0, limit=1000)]
    assert "segment.create" in actions and "segment.update" in actions


def test_a_model_set_is_promoted_by_hand_and_rolled_back(
    client: TestClient, keys: dict[Scope, str], engine: Engine
) -> None:
    signed_in(client, keys[Scope.ADMIN])
    registry = engine.recommendations.registry
    champion = registry.champion()
    assert champion is not None
    other = next(v.version for v in registry.versions() if v.version != champion.version)
    token = csrf_of(client, "/ui/models")
    promoted = client.post(f"/ui/models/{other}/promote", data={"csrf": token})
    assert promoted.status_code == 303, promoted.text
    current = registry.champion()
    assert current is not None and current.version == other
    assert engine.recommendations.served_version == other  # this process serves it at once
    assert "is the champion now" in client.get(promoted.headers["location"]).text
    back = client.post(f"/ui/models/{champion.version}/promote", data={"csrf": token})
    assert back.status_code == 303
    current = registry.champion()
    assert current is not None and current.version == champion.version
    assert client.post("/ui/models/v-missing/promote", data={"csrf": token}).status_code == 404
    audited = engine.privacy.audit.page(after_id=0, limit=1000)
    assert [e.target for e in audited if e.action == "model.promote"][-2:] == [
        f"model:{other}",
        f"model:{champion.version}",
    ]


def test_a_quarantined_event_is_replayed_from_the_page(
    client: TestClient, keys: dict[Scope, str], engine: Engine
) -> None:
    signed_in(client, keys[Scope.ADMIN])
    token = csrf_of(client, "/ui/quality")
    fixable = engine.ingest.ingest(
        [{"event_id": "late-1", "type": "view", "user_id": "p9", "x": 1}]
    )
    assert fixable.rejected == 1
    entry = engine.ingest.activity.quarantined(after_id=0, limit=1000)[-1]
    assert entry.quarantine_id is not None
    answer = client.post(
        f"/ui/quality/quarantine/{entry.quarantine_id}/replay", data={"csrf": token}
    )
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("outcome=rejected")  # still unknown_field
    assert "was rejected again" in client.get(answer.headers["location"]).text
    missing = client.post("/ui/quality/quarantine/999999/replay", data={"csrf": token})
    assert missing.status_code == 404


# -- development mode, static files, the API -------------------------------------------------


def test_in_development_mode_the_dashboard_is_open_and_its_forms_still_need_csrf(
    tmp_path: Path,
) -> None:
    engine = Engine.open(settings_of(tmp_path, dev_mode=True))
    try:
        with TestClient(create_app(engine), follow_redirects=False) as client:
            for page in ("/ui", "/ui/segments", "/ui/models", "/ui/quality", "/ui/experiments"):
                assert client.get(page).status_code == 200, page
            assert client.get("/ui/login").headers["location"] == "/ui"
            form = {"name": "dev_segment", "rule": "did(view)"}
            assert client.post("/ui/segments", data=form).status_code == 403
            token = csrf_of(client, "/ui/segments")
            created = client.post("/ui/segments", data={**form, "csrf": token})
            assert created.status_code == 303
            assert "development mode" in client.get("/ui").text
    finally:
        engine.close()


def test_static_files_are_served_with_chart_js_and_its_license(client: TestClient) -> None:
    chart = client.get("/ui/static/chart.umd.js")
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "application/javascript; charset=utf-8"
    assert (
        chart.text.startswith("/*!\n * Chart.js v4.")
        and "Released under the MIT License" in (chart.text[:300])
    )
    again = client.get("/ui/static/chart.umd.js", headers={"if-none-match": chart.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/ui/static/ui.css").headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/ui/static/missing.js").status_code == 404
    assert client.get("/ui/static/..%2Fpages.py").status_code == 404


def test_the_dashboard_is_no_operation_of_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


def test_an_api_request_with_a_body_still_needs_a_key(client: TestClient) -> None:
    """The dashboard's forms are read without a key; nothing else is."""
    answer = client.post("/v1/events", json=[{"type": "view", "user_id": "u1"}])
    assert answer.status_code == 401
