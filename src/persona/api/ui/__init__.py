"""The dashboard, served at ``/ui`` (docs/ui.md): server-rendered pages over the engine's
services, a session cookie opened by an API key with the ``read`` or ``admin`` scope, a CSRF
token on every form that changes something, and charts drawn by Chart.js from JSON the pages
carry. Its routes are pages, not API operations: the OpenAPI document leaves them out."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import Scope as ASGIScope

from persona.api.ui import auth, experiments, models, overview, people, quality, segments, static
from persona.api.ui.pages import UI, ui_state
from persona.engine import Engine

MODULES = (auth, overview, people, segments, experiments, models, quality, static)


def install(app: FastAPI, engine: Engine) -> None:
    """Add the dashboard's routes to ``app`` (after the API's: none of them overlaps)."""
    app.state.ui = ui_state(engine)
    for module in MODULES:
        app.router.routes.extend(module.router.routes)


def outside_ui(check: Callable[[ASGIScope], object]) -> Callable[[ASGIScope], object]:
    """The API's key check of requests with a body (``deps.key_check``), for every path but
    the dashboard's. Its forms carry no key: they carry a session cookie (or a key to sign in
    with), which its routes check before they read at most ``pages.FORM_BYTES`` of a form."""

    def checked(scope: ASGIScope) -> object:
        path = str(scope.get("path", ""))
        if path == UI or path.startswith(f"{UI}/"):
            return None
        return check(scope)

    return checked
