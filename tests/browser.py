"""Debian's Chromium driven by Playwright, for the browser tests (the snippet's and the
dashboard's): the system's browser (``PERSONA_TEST_CHROMIUM``, default
/usr/bin/chromium), never ``playwright install``. Without the browser or Playwright the tests
are skipped with the reason; in CI (``CI`` set) they fail."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = os.environ.get("PERSONA_TEST_CHROMIUM", "/usr/bin/chromium")


def browser_problem() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PERSONA_TEST_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    problem = browser_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; the browser tests are mandatory in CI")
        pytest.skip(f"{problem}: the browser tests are skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def page_errors(page: Page) -> list[str]:
    """A list that the page's console errors and uncaught exceptions are added to from now on."""
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return errors
