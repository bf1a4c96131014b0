"""Segments: their rules and sizes, each one's size over time and a sample of members, and a
form that defines or changes one with a live preview of what the rule selects.

The scopes are the API's: a ``read`` key sees sizes from ``k_anonymity`` people up; the sample
of members and the preview need ``members`` (or admin; the sample is audited and refused under
the threshold, as member lists are); defining and changing segments needs ``admin``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from persona.access.keys import Scope
from persona.api.deps import actor, engine_of
from persona.api.ui import charts
from persona.api.ui.pages import (
    CSRF_HEADER,
    FORM_BYTES,
    SECURITY_HEADERS,
    UI,
    UiRoute,
    Viewer,
    check_csrf,
    checked_form,
    redirect,
    render,
    viewer,
)
from persona.engine import Engine
from persona.errors import BusyError, KAnonymityError, PersonaError
from persona.privacy import check_k_anonymity
from persona.segments import NAME_PATTERN, PreviewIn, SegmentChange, SegmentIn, person
from persona.storage import SegmentRecord

router = APIRouter(route_class=UiRoute, include_in_schema=False)

SegmentName = Path(pattern=NAME_PATTERN)
SAMPLE = 10
PREVIEW = f"{UI}/segments/_preview"  # a segment name never starts with "_"


def _shown_size(engine: Engine, seen: Viewer, size: int) -> int | None:
    """The size a viewer may see: exact with ``members``, else only from k people up."""
    if seen.may(Scope.MEMBERS) or size >= engine.settings.privacy.k_anonymity:
        return size
    return None


def _problem(exc: ValidationError | PersonaError) -> str:
    if isinstance(exc, PersonaError):
        return exc.detail
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )


def _list_page(
    request: Request,
    seen: Viewer,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    problem: str | None = None,
) -> Response:
    engine = engine_of(request)
    rows = [
        (record, _shown_size(engine, seen, engine.segments.size(record.name)))
        for record in engine.segments.definitions()
    ]
    return render(
        request,
        "segments.html",
        seen,
        status=status,
        title="Segments",
        rows=rows,
        k=engine.settings.privacy.k_anonymity,
        form=form or {"name": "", "rule": "", "description": ""},
        problem=problem,
        preview=PREVIEW,
    )


@router.get(f"{UI}/segments", name="ui_segments")
def segments_page(request: Request, seen: Viewer = Depends(viewer)) -> Response:
    return _list_page(request, seen)


@router.post(f"{UI}/segments", name="ui_create_segment")
async def create_segment(request: Request, seen: Viewer = Depends(viewer)) -> Response:
    form = await checked_form(request, seen)
    seen.require(Scope.ADMIN)
    engine = engine_of(request)
    fields = {name: form.get(name, "") for name in ("name", "rule", "description")}
    try:
        body = SegmentIn.model_validate(fields)
        await run_in_threadpool(
            lambda: engine.segments.create(
                body.name, body.rule, body.description, actor=actor(request)
            )
        )
    except (ValidationError, PersonaError) as exc:
        status = exc.status if isinstance(exc, PersonaError) else 422
        page = partial(_list_page, request, seen, status=status, form=fields, problem=_problem(exc))
        return await run_in_threadpool(page)
    return redirect(f"{UI}/segments/{body.name}")


@router.post(PREVIEW, name="ui_preview_segment")
async def preview_segment(request: Request, seen: Viewer = Depends(viewer)) -> Response:
    """How many people a rule selects now and a few of them, as JSON for the form's script;
    nothing is saved. The CSRF token travels in a header."""
    engine = engine_of(request)
    try:
        check_csrf(request, seen, request.headers.get(CSRF_HEADER))
        seen.require(Scope.MEMBERS)
        body = await request.body()
        if len(body) > FORM_BYTES:
            raise ValueError("the rule is too long")
        asked = PreviewIn.model_validate({**orjson.loads(body), "sample": SAMPLE})
        found = await run_in_threadpool(engine.segments.preview, asked.rule, asked.sample)
    except BusyError as exc:
        return _json({"detail": exc.detail}, 503, {"retry-after": "1"})
    except PersonaError as exc:
        return _json({"detail": exc.detail}, exc.status)
    except ValidationError as exc:
        return _json({"detail": _problem(exc)}, 422)
    except (ValueError, TypeError):
        return _json({"detail": 'send {"rule": "..."}'}, 400)
    sample = [person(key).model_dump() for key in found.sample]
    return _json({"size": found.size, "sample": sample}, 200)


def _json(content: dict[str, Any], status: int, extra: dict[str, str] | None = None) -> Response:
    return JSONResponse(content, status_code=status, headers={**SECURITY_HEADERS, **(extra or {})})


def _detail_page(
    request: Request,
    seen: Viewer,
    record: SegmentRecord,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    problem: str | None = None,
) -> Response:
    engine = engine_of(request)
    size = engine.segments.size(record.name)
    shown = _shown_size(engine, seen, size)
    history = engine.segments.size_history(record.name)
    size_chart = None
    if shown is not None:
        size_chart = charts.line(
            charts.time_labels([at for at, _ in history]),
            {"members": [_shown_size(engine, seen, n) for _, n in history]},  # gaps under k
            y_title="people in the segment",
            x_title="UTC",
        )
    members: list[Any] | None = None
    members_problem = None
    if seen.may(Scope.MEMBERS):
        try:
            check_k_anonymity(size, engine.settings.privacy.k_anonymity)
            rows = engine.segments.members(record.name, after=None, limit=SAMPLE)
            details = {"after": False, "members": len(rows), "via": "dashboard"}
            engine.privacy.audit.record(
                actor(request), "segment.members", f"segment:{record.name}", details
            )
            members = [(person(r.profile_key), r.entered_at_ms) for r in rows]
        except KAnonymityError as exc:
            members_problem = exc.detail
    return render(
        request,
        "segment.html",
        seen,
        status=status,
        title=f"Segment {record.name}",
        record=record,
        size=shown,
        k=engine.settings.privacy.k_anonymity,
        size_chart=size_chart,
        members=members,
        members_problem=members_problem,
        form=form or {"rule": record.rule or "", "description": record.description},
        problem=problem,
        preview=PREVIEW,
    )


@router.get(f"{UI}/segments/{{name}}", name="ui_segment")
def segment_page(
    request: Request, name: str = SegmentName, seen: Viewer = Depends(viewer)
) -> Response:
    return _detail_page(request, seen, engine_of(request).segments.get(name))


@router.post(f"{UI}/segments/{{name}}", name="ui_update_segment")
async def update_segment(
    request: Request, name: str = SegmentName, seen: Viewer = Depends(viewer)
) -> Response:
    form = await checked_form(request, seen)
    seen.require(Scope.ADMIN)
    engine = engine_of(request)
    record = await run_in_threadpool(engine.segments.get, name)
    fields = {"rule": form.get("rule", ""), "description": form.get("description", "")}
    try:
        body = SegmentChange.model_validate(fields)
        await run_in_threadpool(
            lambda: engine.segments.update(name, body.rule, body.description, actor=actor(request))
        )
    except (ValidationError, PersonaError) as exc:
        status = exc.status if isinstance(exc, PersonaError) else 422
        page = partial(
            _detail_page, request, seen, record, status=status, form=fields, problem=_problem(exc)
        )
        return await run_in_threadpool(page)
    return redirect(f"{UI}/segments/{name}")
