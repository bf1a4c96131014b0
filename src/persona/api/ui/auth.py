"""Signing in to the dashboard with an API key, and out.

The sign-in form takes a key with the ``read`` scope (or ``admin``); the answer sets the
session cookie (HttpOnly, SameSite=Strict, Secure over https, expiring with the session). The
form itself carries a CSRF token, double-submitted: a random value in a cookie of the sign-in
page and in the form, which must agree. Keys that fail count against the address's budget of
requests without a valid key, as they do on the API.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from persona.access.keys import Scope
from persona.api.deps import engine_of
from persona.api.ui.pages import (
    CSRF_FIELD,
    LOGIN,
    UI,
    UiRoute,
    Viewer,
    checked_form,
    now_s,
    read_form,
    redirect,
    render,
    set_session_cookie,
    state_of,
    viewer,
)
from persona.api.ui.session import COOKIE
from persona.errors import ForbiddenError, UnauthorizedError

router = APIRouter(route_class=UiRoute, include_in_schema=False)

LOGIN_COOKIE = "persona_ui_login"
LOGIN_SECONDS = 3600  # how long a sign-in page's form stays usable
CANNOT_SIGN_IN = (
    "this key cannot sign in: the dashboard takes a key with the read or admin scope"
    " (a public, ingest, decide or members key has no access to it)"
)


def _next(target: str | None) -> str:
    """Where to go after signing in: a page of the dashboard, never another site."""
    if target and target.startswith(UI) and "//" not in target and "\\" not in target:
        return target
    return UI


def _login_page(
    request: Request, *, status: int = 200, message: str | None = None, target: str = UI
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, status=status, message=message, token=token, target=target
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_SECONDS,
        path=LOGIN,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get(LOGIN, name="ui_login")
def login_page(
    request: Request, target: str | None = Query(None, alias="next", max_length=2000)
) -> Response:
    if engine_of(request).settings.dev_mode:
        return redirect(_next(target))  # the dashboard is open, as the API is
    return _login_page(request, target=_next(target))


@router.post(LOGIN, name="ui_sign_in")
async def sign_in(request: Request) -> Response:
    engine = engine_of(request)
    form = await read_form(request)
    target = _next(form.get("next"))
    expected = request.cookies.get(LOGIN_COOKIE)
    offered = form.get(CSRF_FIELD) or ""
    if not expected or not secrets.compare_digest(offered.encode(), expected.encode()):
        raise ForbiddenError(
            "the sign-in form's CSRF token is missing or does not match: open the sign-in page"
            " again"
        )
    if engine.settings.dev_mode:
        return redirect(target)
    address = f"ip:{request.client.host}" if request.client else "ip:unknown"
    engine.failed_auth.refuse_if_empty(address, "too many sign-ins without a valid key")
    key = form.get("key", "").strip()
    try:
        principal = await run_in_threadpool(engine.keys.authenticate, key)
    except UnauthorizedError:
        engine.failed_auth.spend(address)
        return _login_page(request, status=401, message="That key is not valid.", target=target)
    if not principal.may(Scope.READ):
        return _login_page(request, status=403, message=CANNOT_SIGN_IN, target=target)
    signer = state_of(request).signer
    _, cookie = signer.issue(principal.key_id, now_s(engine))
    response = redirect(target)
    set_session_cookie(response, request, cookie, signer.lifetime_seconds)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN)
    return response


@router.post(f"{UI}/logout", name="ui_sign_out")
async def sign_out(request: Request, seen: Viewer = Depends(viewer)) -> Response:
    """Forgets the session in this browser. The cookie is signed, not stored: a copy taken
    before stays valid until it expires or its key is revoked (docs/ui.md)."""
    await checked_form(request, seen)
    response = redirect(UI if seen.dev else LOGIN)
    response.delete_cookie(COOKIE, path=UI, httponly=True, samesite="strict")
    return response
