"""The dashboard in a real browser, against a real ``persona serve`` that checks keys: sign in
through the form, open every page, and find each chart drawn and no error in the console;
define a segment through its form, with the live preview counting first.

A screenshot of each page is saved under ``PERSONA_UI_SCREENSHOTS`` (default: a temporary
directory, printed at the end of the run). With ``PERSONA_UI_DOCS_IMAGES=1`` the overview and
the experiment are also written to docs/images/ for the README.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from persona.access.keys import Scope
from persona.engine import Engine
from tests.browser import page_errors
from tests.server import free_port, start_server
from tests.ui import seed as seeded
from tests.ui.conftest import SCREENSHOT_DIRECTORIES, SeededHome, settings_of

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMAGES = ROOT / "docs" / "images"

# Each page, the charts it draws, and the name of its screenshot.
PAGES = [
    ("overview", "/ui", {"chart-activity", "chart-models"}),
    ("overview-day", "/ui?window=day", {"chart-activity", "chart-models"}),
    ("people", "/ui/people", set()),
    ("person", f"/ui/people/{seeded.PERSON}", {"chart-affinities"}),
    ("segments", "/ui/segments", set()),
    ("segment", f"/ui/segments/{seeded.SEGMENT}", {"chart-segment-size"}),
    ("experiments", "/ui/experiments", set()),
    (
        "experiment",
        f"/ui/experiments/{seeded.AB}",
        {"chart-rates", "chart-lift", "chart-sequential-p", "chart-sequence", "chart-allocation"},
    ),
    ("bandit", f"/ui/experiments/{seeded.BANDIT}", {"chart-rates", "chart-allocation"}),
    ("models", "/ui/models", {"chart-model-metrics"}),
    ("quality", "/ui/quality", {"chart-rejections"}),
]
FOR_THE_README = {"overview": "ui-overview.png", "experiment": "ui-experiment.png"}
# Read once: the suite's fixtures clear PERSONA_* variables before each test.
SCREENSHOTS = os.environ.get("PERSONA_UI_SCREENSHOTS")
UPDATE_DOCS_IMAGES = bool(os.environ.get("PERSONA_UI_DOCS_IMAGES"))


@dataclass
class Dashboard:
    base: str
    admin_key: str
    read_key: str
    screenshots: Path


@pytest.fixture(scope="module")
def dashboard(
    tmp_path_factory: pytest.TempPathFactory, seeded_home: SeededHome
) -> Iterator[Dashboard]:
    home = seeded_home.copy(tmp_path_factory.mktemp("dashboard"))
    engine = Engine.open(settings_of(home))
    try:
        admin_key = engine.keys.create("operator", [Scope.ADMIN]).secret
        read_key = engine.keys.create("analyst", [Scope.READ]).secret
    finally:
        engine.close()
    screenshots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.mktemp("ui-screenshots")
    screenshots.mkdir(parents=True, exist_ok=True)
    SCREENSHOT_DIRECTORIES.append(screenshots)
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):  # the server refuses variables that name no setting
            if key.upper().startswith("PERSONA_"):
                patch.delenv(key)
        server = start_server(home, port, "--workers", "1")
    base = f"http://127.0.0.1:{port}"
    try:
        _traffic(base, admin_key)
        yield Dashboard(base, admin_key, read_key, screenshots)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _traffic(base: str, key: str) -> None:
    """Requests to this server process, which its own counters show on the overview: events
    (one a retry, one refused) and recommendations (one for a stranger)."""
    headers = {"Authorization": f"Bearer {key}"}
    events = [
        {"event_id": "live-1", "type": "view", "user_id": "p5", "item_id": "i3"},
        {"event_id": "live-1", "type": "view", "user_id": "p5", "item_id": "i3"},
        {"type": "view", "item_id": "i3"},
    ]
    answer = httpx.post(f"{base}/v1/events", json=events, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    for person in ("p2", "p3", "p4", "someone-new"):
        answer = httpx.get(f"{base}/v1/users/{person}/recommendations", headers=headers)
        assert answer.status_code == 200, answer.text


@dataclass
class Visit:
    page: Page
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions


@pytest.fixture
def signed_in(browser: Browser, dashboard: Dashboard) -> Iterator[Visit]:
    """A browser context signed in with the admin key, through the sign-in form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = Visit(page, page_errors(page))
    page.goto(f"{dashboard.base}/ui/models")
    assert page.url.startswith(f"{dashboard.base}/ui/login?next=")  # not signed in yet
    page.screenshot(path=str(dashboard.screenshots / "login.png"))
    page.fill("#key", dashboard.admin_key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dashboard.base}/ui/models")  # back where it was going
    try:
        yield seen
    finally:
        context.close()


def drawn_charts(page: Page) -> dict[str, bool]:
    """Each chart canvas of the page, and whether Chart.js made a chart of it."""
    found: dict[str, bool] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll("canvas[data-chart]")]
            .map((canvas) => [canvas.dataset.chart, window.Chart.getChart(canvas) !== undefined
                && canvas.width > 0 && canvas.height > 0]))"""
    )
    return found


def test_every_page_draws_its_charts_without_a_console_error(
    signed_in: Visit, dashboard: Dashboard
) -> None:
    page = signed_in.page
    for name, path, charts in PAGES:
        answer = page.goto(f"{dashboard.base}{path}")
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        page.wait_for_load_state("load")
        drawn = drawn_charts(page)
        assert set(drawn) >= charts, (path, drawn)
        assert all(drawn.values()), (path, drawn)
        assert page.locator("nav a").count() == 6  # the navigation links every page
        page.screenshot(path=str(dashboard.screenshots / f"{name}.png"), full_page=True)
        assert signed_in.errors == [], (path, signed_in.errors)
    if UPDATE_DOCS_IMAGES:
        DOCS_IMAGES.mkdir(exist_ok=True)
        for name, image in FOR_THE_README.items():
            shutil.copyfile(dashboard.screenshots / f"{name}.png", DOCS_IMAGES / image)


def test_a_segment_is_defined_through_the_form_after_a_live_preview(
    signed_in: Visit, dashboard: Dashboard
) -> None:
    page = signed_in.page
    page.goto(f"{dashboard.base}/ui/segments")
    page.fill("#segment-name", "viewers_now")
    page.fill("#segment-rule", "did(view) within 1d")  # fires the input event
    preview = page.locator("#segment-preview")
    preview.filter(has_text=re.compile(r"\d+ (people match|person matches) now")).wait_for()
    count = int(re.sub(r"\D", "", preview.inner_text().split(" ")[0]))
    assert count > 0
    assert page.locator("#segment-preview-sample li").count() == min(count, 10)
    page.screenshot(path=str(dashboard.screenshots / "segment-preview.png"), full_page=True)
    page.fill("#segment-description", "viewed something today")
    page.click("form.segment-form button[type=submit]")
    page.wait_for_url(f"{dashboard.base}/ui/segments/viewers_now")
    shown = page.locator(".card", has_text="people now").locator(".value").inner_text()
    assert int(shown.replace(",", "")) == count
    assert drawn_charts(page) == {"chart-segment-size": True}
    assert signed_in.errors == []


def test_a_read_key_signs_in_and_sees_no_admin_forms(
    browser: Browser,
    dashboard: Dashboard,
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{dashboard.base}/ui")
        page.fill("#key", dashboard.read_key)
        page.click("button[type=submit]")
        page.wait_for_url(f"{dashboard.base}/ui")
        cookie = next(c for c in context.cookies() if c["name"] == "persona_ui")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        page.goto(f"{dashboard.base}/ui/segments")
        assert page.locator("form.segment-form").count() == 0
        page.goto(f"{dashboard.base}/ui/models")
        assert page.locator("form[action$='/promote']").count() == 0
        page.goto(f"{dashboard.base}/ui/quality")
        assert page.locator("form[action$='/replay']").count() == 0
        page.click("text=Sign out")
        page.wait_for_url(f"{dashboard.base}/ui/login")
        assert not [c for c in context.cookies() if c["name"] == "persona_ui"]
    finally:
        context.close()
