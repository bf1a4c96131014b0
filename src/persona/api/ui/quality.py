"""Data quality: what ingest refused, by rejection code and over time, and (for an admin key,
as on the API) the quarantine itself, each entry with a button that replays it once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from persona.access.keys import Scope
from persona.api.deps import engine_of
from persona.api.ui import charts
from persona.api.ui.pages import UI, UiRoute, Viewer, checked_form, redirect, render, viewer
from persona.engine import Engine

router = APIRouter(route_class=UiRoute, include_in_schema=False)

DAY_MS = 86_400_000
DAYS = 30
PAGE = 50
MAX_ROW_ID = 2**63 - 1
REPLAY_OUTCOMES = {
    "accepted": "was accepted and stored",
    "duplicate": "was a duplicate of a stored event (nothing changed)",
    "held": "was stored aside: the person has not granted consent",
    "rejected": "was rejected again and stays open (a new entry records why)",
}


def _rejections_chart(engine: Engine) -> dict[str, Any] | None:
    now = engine.clock.now_ms()
    until = now - now % DAY_MS + DAY_MS
    found = engine.ingest.activity.rejections_by_code(until - DAYS * DAY_MS, until, DAY_MS)
    if not found.counts:
        return None
    labels = charts.time_labels(found.starts_ms)
    return charts.bar(
        labels, found.counts, y_title="quarantined events", x_title="day (UTC)", stacked=True
    )


@router.get(f"{UI}/quality", name="ui_quality")
def quality_page(
    request: Request,
    after: int = Query(0, ge=0, le=MAX_ROW_ID),
    replayed: int | None = Query(None, ge=0, le=MAX_ROW_ID),
    outcome: str | None = Query(None, max_length=16),
    seen: Viewer = Depends(viewer),
) -> Response:
    engine = engine_of(request)
    entries = None
    if seen.admin:
        entries = engine.ingest.activity.quarantined(after_id=after, limit=PAGE)
    counted = engine.metrics.totals(engine.metrics.rejections)
    notice = None
    if replayed is not None and outcome in REPLAY_OUTCOMES:
        notice = f"Quarantine entry {replayed} {REPLAY_OUTCOMES[outcome]}."
    return render(
        request,
        "quality.html",
        seen,
        title="Data quality",
        rejections=engine.ingest.activity.rejection_totals(),
        rejections_chart=_rejections_chart(engine),
        days=DAYS,
        counted=sorted(((code, n) for (code,), n in counted.items()), key=lambda kv: -kv[1]),
        entries=entries,
        after=after,
        next_after=entries[-1].quarantine_id if entries and len(entries) == PAGE else None,
        notice=notice,
    )


@router.post(f"{UI}/quality/quarantine/{{quarantine_id}}/replay", name="ui_replay")
async def replay(
    request: Request,
    quarantine_id: int = Path(ge=0, le=MAX_ROW_ID),
    seen: Viewer = Depends(viewer),
) -> Response:
    """Send a quarantined event back through ingest as it was stored (admin), once."""
    await checked_form(request, seen)
    seen.require(Scope.ADMIN)
    engine = engine_of(request)
    result = await run_in_threadpool(engine.ingest.replay, quarantine_id)
    status = result.events[0]["status"] if result.events else "rejected"
    return redirect(f"{UI}/quality?replayed={quarantine_id}&outcome={status}")
