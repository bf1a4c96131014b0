"""What every dashboard page shares: who is looking (``Viewer``), the templates, the answer's
headers, forms with their CSRF check, and the route class that turns errors into pages."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from persona.access.keys import DEV_PRINCIPAL, Principal, Scope
from persona.api.deps import engine_of
from persona.api.ui.session import COOKIE, Session, SessionSigner, session_secret
from persona.engine import Engine
from persona.errors import (
    ForbiddenError,
    InvalidRequestError,
    PayloadTooLargeError,
    PersonaError,
)

UI = "/ui"
LOGIN = f"{UI}/login"
FORM_BYTES = 64 * 1024  # a segment rule is at most 4,000 characters: forms are small
FORM_FIELDS = 20
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

NAV = (
    ("Overview", UI),
    ("People", f"{UI}/people"),
    ("Segments", f"{UI}/segments"),
    ("Experiments", f"{UI}/experiments"),
    ("Models", f"{UI}/models"),
    ("Data quality", f"{UI}/quality"),
)

# Scripts and styles from persona's own static files only: no inline script, no other origin.
# Chart data travels in <script type="application/json"> blocks, which are never run.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",  # pages hold personal data
}


class SignInRequired(Exception):
    """No valid session: the answer is the sign-in page."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the key that signed in (everything in development mode), its session
    and the session's CSRF token; ``cookie`` is a session issued with this answer."""

    principal: Principal
    session: Session
    csrf: str
    dev: bool
    cookie: str | None = None

    def may(self, scope: Scope) -> bool:
        return self.principal.may(scope)

    @property
    def admin(self) -> bool:
        return self.principal.may(Scope.ADMIN)

    def require(self, scope: Scope) -> None:
        """403 unless the key has ``scope`` (or admin)."""
        self.principal.require(scope)


@dataclass(frozen=True, slots=True)
class UiState:
    signer: SessionSigner
    templates: Environment


def when(ms: int | float | datetime | str | None) -> str:
    """A moment as ``2026-01-01 09:30:00 UTC``."""
    if ms is None or ms == "":
        return "—"
    if isinstance(ms, str):
        try:
            moment = datetime.fromisoformat(ms)
        except ValueError:
            return ms
    elif isinstance(ms, datetime):
        moment = ms
    else:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float | int | None, digits: int = 3) -> str:
    """An integer with thousands separators, a float with ``digits`` significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def percent(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{100 * value:.{digits}f}%"


def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("persona.api.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = when
    environment.filters["number"] = number
    environment.filters["percent"] = percent
    environment.filters["quote"] = lambda text: quote(str(text), safe="")
    return environment


def ui_state(engine: Engine) -> UiState:
    return UiState(SessionSigner(session_secret(engine.settings.home)), _templates())


def state_of(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def now_s(engine: Engine) -> int:
    return engine.clock.now_ms() // 1000


def viewer(request: Request) -> Viewer:
    """The signed-in viewer (a dependency of every page); ``SignInRequired`` otherwise.

    In development mode the dashboard is open as the API is, and a session is still issued,
    for its CSRF token. A session's key must still exist, unrevoked, with the ``read`` scope
    (or admin); each page counts against the key's rate limit as an API request does."""
    engine = engine_of(request)
    signer = state_of(request).signer
    session = signer.read(request.cookies.get(COOKIE), now_s(engine))
    if engine.settings.dev_mode:
        cookie = None
        if session is None:
            session, cookie = signer.issue(DEV_PRINCIPAL.key_id, now_s(engine))
        return Viewer(DEV_PRINCIPAL, session, signer.csrf_token(session), True, cookie)
    if session is None:
        raise SignInRequired
    principal = engine.keys.active(session.key_id)
    if principal is None or not principal.may(Scope.READ):
        raise SignInRequired
    engine.rate_limits.check(principal.key_id)  # 429 past the key's limit
    request.state.key_id = principal.key_id  # the actor of audited changes
    return Viewer(principal, session, signer.csrf_token(session), False)


def set_session_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path=UI,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page of the dashboard, with the navigation and the security headers."""
    page = state_of(request).templates.get_template(template)
    body = page.render(viewer=viewer, nav=NAV, path=request.url.path, **context)
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    if viewer is not None and viewer.cookie is not None:
        signer = state_of(request).signer
        set_session_cookie(response, request, viewer.cookie, signer.lifetime_seconds)
    return response


def redirect(location: str) -> RedirectResponse:
    """After a change, back to a page (303: the browser follows with a GET)."""
    return RedirectResponse(location, status_code=303, headers={"cache-control": "no-store"})


async def read_form(request: Request) -> dict[str, str]:
    """An url-encoded form of at most ``FORM_BYTES``, read before anything parses it; a field
    sent twice keeps its first value."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > FORM_BYTES:
        raise PayloadTooLargeError(f"a form is at most {FORM_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BYTES:
            raise PayloadTooLargeError(f"a form is at most {FORM_BYTES} bytes")
    try:
        fields = parse_qs(
            body.decode(), keep_blank_values=True, strict_parsing=False, max_num_fields=FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("the form could not be read") from exc
    return {name: values[0] for name, values in fields.items()}


def check_csrf(request: Request, viewer: Viewer, token: str | None) -> None:
    """403 unless ``token`` is the CSRF token of the viewer's session."""
    if not state_of(request).signer.csrf_matches(viewer.session, token):
        raise ForbiddenError(
            "the form's CSRF token is missing or does not match the session: reload the page"
            " and submit it again"
        )


async def checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """The form of a change, once its CSRF token matches the session (403 otherwise)."""
    form = await read_form(request)
    check_csrf(request, viewer, form.get(CSRF_FIELD))
    return form


def error_page(
    request: Request, status: int, title: str, detail: str, headers: Mapping[str, str] | None
) -> HTMLResponse:
    response = render(request, "error.html", None, status=status, title=title, detail=detail)
    response.headers.update(headers or {})
    return response


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class UiRoute(APIRoute):
    """A dashboard route: a request without a session goes to the sign-in page, and a refusal
    or an error of the domains is a page with its status, not problem+json."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = request.url.path if request.method == "GET" else UI
                return redirect(f"{LOGIN}?next={quote(target, safe='/')}")
            except PersonaError as exc:
                headers = getattr(exc, "headers", None)
                return error_page(request, exc.status, exc.title, exc.detail, headers)
            except RequestValidationError:
                return error_page(
                    request, 404, "Not found", "there is no such page of the dashboard", None
                )

        return handle
