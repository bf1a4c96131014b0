"""The overview: what arrives, what is refused, how many people, how the models do, and how
often recommendations fall back."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from persona.api.deps import engine_of
from persona.api.ui import charts
from persona.api.ui.models import model_rows, models_chart
from persona.api.ui.pages import UI, UiRoute, Viewer, render, viewer
from persona.engine import Engine

router = APIRouter(route_class=UiRoute, include_in_schema=False)

MINUTE_MS = 60_000
WINDOW_MS = {"hour": 3_600_000, "day": 86_400_000}
OUTCOMES = ("accepted", "duplicate", "rejected", "held")


def activity(engine: Engine, window: str) -> dict[str, Any]:
    """Events per minute by type over the window, ending with the current minute."""
    now = engine.clock.now_ms()
    until = now - now % MINUTE_MS + MINUTE_MS
    found = engine.ingest.activity.events_by_type(until - WINDOW_MS[window], until, MINUTE_MS)
    labels = charts.time_labels(found.starts_ms)
    chart = charts.line(labels, found.counts, y_title="events per minute", x_title="UTC")
    return {"chart": chart, "total": found.total, "types": sorted(found.counts)}


def recommendation_sources(engine: Engine) -> dict[str, Any]:
    """Answers of this process by the source that answered: the pipeline, or a fallback."""
    by_source: dict[str, float] = {}
    for (_, source, _), count in engine.metrics.totals(engine.metrics.recommendations).items():
        by_source[source] = by_source.get(source, 0.0) + count
    total = sum(by_source.values())
    fallback = total - by_source.get("pipeline", 0.0)
    return {
        "by_source": sorted(by_source.items(), key=lambda kv: -kv[1]),
        "total": total,
        "fallback_share": fallback / total if total else None,
    }


@router.get(UI, name="ui_overview")
def overview(
    request: Request,
    window: Literal["hour", "day"] = Query("hour"),
    seen: Viewer = Depends(viewer),
) -> Response:
    engine = engine_of(request)
    outcomes = {
        outcome: count for (outcome,), count in engine.metrics.totals(engine.metrics.events).items()
    }
    registry = engine.recommendations.registry
    versions = registry.versions()
    champion = registry.champion()
    return render(
        request,
        "overview.html",
        seen,
        title="Overview",
        window=window,
        activity=activity(engine, window),
        outcomes=[(outcome, outcomes.get(outcome, 0.0)) for outcome in OUTCOMES],
        totals=engine.ingest.activity.totals(),
        rejections=engine.ingest.activity.rejection_totals(),
        models=model_rows(versions, champion.version if champion else None),
        models_chart=models_chart(versions),
        recommendations=recommendation_sources(engine),
    )
