"""The browser snippet in a real browser: Debian's Chromium driven by Playwright, against a real
``persona serve`` that checks keys, from a page another HTTP server serves on its own origin.

Two sites serve the same page, which loads ``/sdk/persona.js`` from persona: one origin is on
``server.cors_origins`` and one is not. The page gets a public key; what arrived is read back
through the API with an admin key (subject exports, experiment results).

Playwright drives the system's browser (``PERSONA_TEST_CHROMIUM``, default /usr/bin/chromium,
Debian's ``chromium`` package): ``playwright install``, which downloads browsers, is never
needed. Without the browser or Playwright the tests are skipped with the reason; in CI (``CI``
set) they fail.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from persona.access.keys import Scope
from persona.engine import Engine
from persona.settings import Settings
from tests.browser import page_errors
from tests.decide.placements import ab
from tests.server import free_port, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(300)]

PLACEMENT = "home_hero"
WAIT_SECONDS = 15.0  # for what the page sent to be readable through the API


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title>
<script src="{persona}/sdk/persona.js"></script></head>
<body>
<div id="hero" style="height: 200px; background: #eee">the hero banner</div>
<div style="height: 3000px"></div>
<div id="footer" style="height: 100px">far below</div>
</body></html>
"""


# Notes in the session's storage each request the snippet makes, so that the page after a
# navigation can tell how the previous one sent its last events (the browser's own record of a
# request made while a page unloads does not reach the test).
SPY = """(() => {
    const note = (entry) => sessionStorage.setItem(
        "sent", (sessionStorage.getItem("sent") || "") + entry + "\\n");
    const fetching = window.fetch;
    window.fetch = (url, init) => {
        note(`fetch ${init && init.keepalive ? "keepalive" : "plain"} ${url}`);
        return fetching(url, init);
    };
    const beaconing = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = (url, data) => (note(`beacon ${url}`), beaconing(url, data));
})();
"""


class Site:
    """A web site of one page (any path) that loads the snippet from persona, on its own
    origin: ``http://127.0.0.1:<its port>``."""

    def __init__(self, persona: str) -> None:
        page = PAGE.format(persona=persona).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/favicon.ico":
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Persona:
    """The server (its base URL and an admin key's header), the page's public key, and the
    two sites: one on the allow-list, one not."""

    base: str
    admin: dict[str, str]
    public_key: str
    allowed: Site
    other: Site

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", params=params, headers=self.admin, timeout=10)

    def events_of(self, person: str, id_type: str) -> list[dict[str, Any]]:
        """The events stored for a person, through the subject export ([] while none)."""
        answer = self.get(f"/v1/subjects/{person}/export", id_type=id_type)
        if answer.status_code == 404:
            return []
        assert answer.status_code == 200, answer.text
        events: list[dict[str, Any]] = answer.json()["events"]
        return events


@pytest.fixture(scope="module")
def persona(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Persona]:
    home = tmp_path_factory.mktemp("snippet")
    engine = Engine.open(Settings(home=home, database_url=f"sqlite:///{home / 'persona.db'}"))
    try:
        admin = {"Authorization": f"Bearer {engine.keys.create('operator', [Scope.ADMIN]).secret}"}
        public_key = engine.keys.create("web page", [Scope.PUBLIC]).secret
    finally:
        engine.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    allowed, other = Site(base), Site(base)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERSONA_")}
    env["PERSONA_SERVER__CORS_ORIGINS"] = json.dumps([allowed.origin])
    try:
        server = start_server(home, port, "--workers", "1", env=env)
        try:
            created = httpx.post(f"{base}/v1/placements", json=ab(PLACEMENT), headers=admin)
            assert created.status_code == 201, created.text
            yield Persona(base, admin, public_key, allowed, other)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        allowed.close()
        other.close()


@dataclass
class Visit:
    """A page in a browser context of its own, with what its console and requests showed."""

    page: Page
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # the URLs of requests to persona


@contextmanager
def visit(
    browser: Browser, site: Site, persona: Persona, *, before: str | None = None
) -> Iterator[Visit]:
    context: BrowserContext = browser.new_context()
    if before:
        context.add_init_script(before)  # runs in the page before the snippet does
    page = context.new_page()
    seen = Visit(page, page_errors(page))
    context.on(
        "request",
        lambda request: (
            seen.requests.append(request.url) if request.url.startswith(persona.base) else None
        ),
    )
    page.goto(f"{site.origin}/")
    try:
        yield seen
    finally:
        context.close()


@pytest.fixture
def shop(browser: Browser, persona: Persona) -> Iterator[Visit]:
    """The page on the allowed origin."""
    with visit(browser, persona.allowed, persona) as visiting:
        yield visiting


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not seen within {WAIT_SECONDS:g} s: {what}")


def test_a_page_tracks_identifies_decides_and_attributes_its_impression_and_click(
    shop: Visit, persona: Persona
) -> None:
    page = shop.page
    user = "browser-user-1"
    anonymous = page.evaluate(
        """([key, user]) => {
            persona.init({ key, flushIntervalMs: 200 });  // the endpoint: where the script is from
            persona.track("view", { section: "home" }, { item_id: "i1" });
            persona.identify(user, { plan: "gold" });
            return persona.anonymousId();
        }""",
        [persona.public_key, user],
    )
    decision = page.evaluate(
        """async () => {
            const decision = await persona.decide("home_hero", {
                context: { device: "desktop" }, fallback: { variant: "house" } });
            persona.observe(document.getElementById("hero"), decision);
            return decision;
        }"""
    )
    assert decision["placement"] == PLACEMENT and decision["variant"] in ("v0", "v1")
    page.click("#hero")
    page.evaluate("() => persona.flush()")

    def attributed() -> dict[str, Any] | None:
        answer = persona.get(f"/v1/experiments/{PLACEMENT}/results")
        assert answer.status_code == 200, answer.text
        arm = next(a for a in answer.json()["arms"] if a["variant"] == decision["variant"])
        return arm if arm["impressions"] and arm["clicks"] else None

    arm = wait_for(attributed, "the impression and the click, attributed")
    assert arm["impressions"] == 1 and arm["clicks"] == 1 and arm["exposures"] == 1

    events = wait_for(lambda: persona.events_of(user, "user"), "the user's events")
    by_type = {e["type"]: e for e in events}
    assert set(by_type) == {"view", "identify", "impression", "click"}
    view = by_type["view"]
    assert view["anonymous_id"] == anonymous and view["user_id"] is None  # before identify
    assert view["item_id"] == "i1" and view["properties"] == {"section": "home"}
    assert view["context"]["page"] == f"{persona.allowed.origin}/"
    identify = by_type["identify"]
    assert (identify["user_id"], identify["anonymous_id"]) == (user, anonymous)
    assert identify["properties"] == {"plan": "gold"}  # traits travel as properties only
    for kind in ("impression", "click"):
        assert by_type[kind]["user_id"] == user
        assert by_type[kind]["properties"] == {
            "placement": PLACEMENT,
            "variant": decision["variant"],
        }
    assert len({e["event_id"] for e in events}) == 4
    profile = persona.get(f"/v1/profiles/{user}").json()
    assert anonymous in profile["aliases"] and profile["traits"] == {}
    assert not any("?key=" in url for url in shop.requests)  # the key went in a header
    assert shop.errors == []


def test_an_item_of_a_list_is_reported_with_its_position(shop: Visit, persona: Persona) -> None:
    user = "browser-user-2"
    shop.page.evaluate(
        """async ([key, user]) => {
            persona.init({ key, flushIntervalMs: 200 });
            persona.identify(user);
            const decision = await persona.decide("home_hero");
            persona.observe(document.getElementById("hero"), decision, { item_id: "i3", position: 2 });
        }""",
        [persona.public_key, user],
    )
    shop.page.click("#hero")
    shop.page.evaluate("() => persona.flush()")

    def shown() -> list[dict[str, Any]] | None:
        events = persona.events_of(user, "user")
        found = [e for e in events if e["type"] in ("impression", "click")]
        return found if len(found) == 2 else None

    for event in wait_for(shown, "the impression and the click"):
        assert event["item_id"] == "i3" and event["properties"]["position"] == 2
    assert shop.errors == []


def test_an_impression_waits_until_half_the_element_is_in_view(
    shop: Visit, persona: Persona
) -> None:
    created = httpx.post(
        f"{persona.base}/v1/placements", json=ab("footer_offer"), headers=persona.admin
    )
    assert created.status_code == 201, created.text
    page = shop.page
    page.evaluate(
        """async (key) => {
            persona.init({ key });
            const decision = await persona.decide("footer_offer");
            persona.observe(document.getElementById("footer"), decision);  // far below the fold
            await new Promise((resolve) => setTimeout(resolve, 300));
            await persona.flush();
        }""",
        persona.public_key,
    )

    def impressions() -> int:
        arms = persona.get("/v1/experiments/footer_offer/results").json()["arms"]
        return sum(arm["impressions"] for arm in arms)

    assert impressions() == 0
    page.evaluate("() => document.getElementById('footer').scrollIntoView()")
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 300)).then(persona.flush)")
    assert wait_for(impressions, "the impression once in view") == 1
    page.evaluate("() => window.scrollTo(0, 0)")
    page.evaluate("() => document.getElementById('footer').scrollIntoView()")  # seen once
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 300)).then(persona.flush)")
    assert impressions() == 1
    assert shop.errors == []


@pytest.mark.parametrize("leaving", ["navigate", "close", "beacon"])
def test_events_still_queued_are_sent_when_the_page_is_left(
    browser: Browser, persona: Persona, leaving: str
) -> None:
    """``navigate`` and ``close``: a keepalive fetch with the key in a header. ``beacon``: a
    browser without keepalive, where ``navigator.sendBeacon`` carries them, the key in the URL."""
    before = SPY + ("delete Request.prototype.keepalive;" if leaving == "beacon" else "")
    with visit(browser, persona.allowed, persona, before=before) as shop:
        anonymous = shop.page.evaluate(
            """(key) => {
                persona.init({ key, flushIntervalMs: 600000 });  // never on the interval
                for (const item of ["i1", "i2", "i3"]) persona.track("view", null, { item_id: item });
                return persona.anonymousId();
            }""",
            persona.public_key,
        )
        assert persona.events_of(anonymous, "anonymous") == []  # still in the page's queue
        if leaving == "close":
            shop.page.close()
        else:
            shop.page.goto(f"{persona.allowed.origin}/elsewhere")
        events = wait_for(
            lambda: len(found := persona.events_of(anonymous, "anonymous")) == 3 and found,
            "the three events sent as the page was left",
        )
        assert sorted(e["item_id"] for e in events) == ["i1", "i2", "i3"]
        if leaving != "close":  # how they left: the session's storage outlives the page
            sent = shop.page.evaluate("() => sessionStorage.getItem('sent')").splitlines()
            events_url = f"{persona.base}/v1/events"
            if leaving == "beacon":
                assert sent == [f"beacon {events_url}?key={persona.public_key}"]
            else:
                assert sent == [f"fetch keepalive {events_url}"]
        assert shop.errors == []


def test_decide_falls_back_when_the_server_is_stopped_or_does_not_answer(
    shop: Visit, persona: Persona
) -> None:
    stopped = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        hanging = f"http://127.0.0.1:{silent.getsockname()[1]}"
        outcome = shop.page.evaluate(
            """async ([key, stopped, hanging, base]) => {
                const fallback = { variant: "house", payload: { title: "Welcome" } };
                const timed = async (endpoint, timeoutMs) => {
                    persona.init({ key, endpoint });
                    const started = performance.now();
                    const decision = await persona.decide("home_hero", { fallback, timeoutMs });
                    return { decision, ms: performance.now() - started };
                };
                const stoppedOne = await timed(stopped, 5000);
                const hangingOne = await timed(hanging, 700);
                persona.init({ key, endpoint: hanging, decideTimeoutMs: 300 });
                const byDefault = await persona.decide("home_hero");  // fallback: null
                persona.init({ key, endpoint: stopped });
                persona.track("view", null, { item_id: "kept" });
                await persona.flush();  // refused: the event stays queued for a later try
                persona.init({ key, endpoint: base });  // flushes what is queued
                return { stoppedOne, hangingOne, byDefault, anonymous: persona.anonymousId() };
            }""",
            [persona.public_key, stopped, hanging, persona.base],
        )
    finally:
        silent.close()
    house = {"variant": "house", "payload": {"title": "Welcome"}}
    assert outcome["stoppedOne"]["decision"] == house
    assert outcome["stoppedOne"]["ms"] < 4000  # refused at once, not waited for
    assert outcome["hangingOne"]["decision"] == house
    assert 650 <= outcome["hangingOne"]["ms"] < 3000  # the timeout, not the network's
    assert outcome["byDefault"] is None
    retried = wait_for(
        lambda: persona.events_of(outcome["anonymous"], "anonymous"), "the event sent again"
    )
    assert [e["item_id"] for e in retried] == ["kept"]
    # The browser reports the refused connection itself; the snippet throws nothing.
    assert [e for e in shop.errors if "ERR_CONNECTION_REFUSED" not in e] == []


def test_a_page_on_an_origin_off_the_allow_list_is_refused_by_the_browser(
    browser: Browser, persona: Persona
) -> None:
    with visit(browser, persona.other, persona) as elsewhere:
        outcome = elsewhere.page.evaluate(
            """async ([key, base]) => {
                persona.init({ key });
                persona.track("view", null, { item_id: "i1" });
                await persona.flush();
                const decision = await persona.decide("home_hero", { fallback: "refused" });
                let direct;
                try {
                    await fetch(base + "/v1/decisions", { method: "POST", headers: {
                        authorization: "Bearer " + key, "content-type": "application/json" },
                        body: JSON.stringify({ anonymous_id: "x", placements: ["home_hero"] }) });
                    direct = "answered";
                } catch (error) {
                    direct = error.name;
                }
                return { decision, direct, anonymous: persona.anonymousId() };
            }""",
            [persona.public_key, persona.base],
        )
        assert outcome["decision"] == "refused" and outcome["direct"] == "TypeError"
        assert any("blocked by CORS policy" in e for e in elsewhere.errors), elsewhere.errors
    time.sleep(0.5)
    assert persona.events_of(outcome["anonymous"], "anonymous") == []  # never sent


def test_the_visitor_keeps_one_anonymous_id_in_storage_or_a_cookie(
    browser: Browser, persona: Persona
) -> None:
    no_storage = """Object.defineProperty(window, "localStorage", {
        get() { throw new DOMException("storage is off", "SecurityError"); } });"""
    for before, kept_in in ((None, "localStorage"), (no_storage, "cookie")):
        with visit(browser, persona.allowed, persona, before=before) as shop:
            page = shop.page
            first = page.evaluate("() => persona.anonymousId()")
            page.reload()
            again = page.evaluate(
                """() => ({ id: persona.anonymousId(), cookie: document.cookie,
                            user: persona.userId() })"""
            )
            assert again["id"] == first and again["user"] is None, kept_in
            assert (f"persona_anonymous_id={first}" in again["cookie"]) == (kept_in == "cookie")
            page.evaluate(
                "(key) => { persona.init({ key }); persona.identify('u-42'); }", persona.public_key
            )
            page.reload()
            assert page.evaluate("() => [persona.userId(), persona.anonymousId()]") == [
                "u-42",
                first,
            ]
            page.evaluate("() => persona.reset()")  # a log-out: a new visitor from here on
            after = page.evaluate("() => [persona.userId(), persona.anonymousId()]")
            assert after[0] is None and after[1] != first
            assert shop.errors == [], kept_in
