"""The model registry: every stored model set, its offline metrics, which one serves; an
admin promotes one (a rollback is the promotion of an older one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from persona.access.keys import Scope
from persona.api.deps import actor, engine_of
from persona.api.ui import charts
from persona.api.ui.pages import UI, UiRoute, Viewer, checked_form, redirect, render, viewer
from persona.recommend.registry import ModelVersion

router = APIRouter(route_class=UiRoute, include_in_schema=False)

VersionName = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _ranking_metrics(versions: Sequence[ModelVersion]) -> list[str]:
    """The metrics at a cutoff (ndcg@10, recall@10, ...), not the counts beside them."""
    return sorted({name for v in versions for name in v.metrics if "@" in name})


def model_rows(versions: Sequence[ModelVersion], champion: str | None) -> list[dict[str, Any]]:
    """Newest first, as a table reads."""
    names = _ranking_metrics(versions)
    return [
        {
            "version": v.version,
            "champion": v.version == champion,
            "created_at": v.manifest.get("created_at"),
            "metrics": [(name, v.metrics.get(name)) for name in names],
            "people": v.manifest.get("people"),
            "items": v.manifest.get("items"),
            "interactions": v.manifest.get("interactions"),
            "sources": list(v.manifest.get("sources", [])),
            "left_out": v.manifest.get("left_out") or {},
        }
        for v in reversed(versions)
    ]


def models_chart(versions: Sequence[ModelVersion]) -> dict[str, Any] | None:
    """Validation metrics of each version, oldest first; None without any version."""
    if not versions:
        return None
    labels = [str(v.manifest.get("created_at", v.version))[:19].replace("T", " ") for v in versions]
    series = {name: [v.metrics.get(name) for v in versions] for name in _ranking_metrics(versions)}
    return charts.line(
        labels, series, y_title="validation metric", x_title="trained at (UTC)", points=True
    )


@router.get(f"{UI}/models", name="ui_models")
def models_page(
    request: Request,
    promoted: str | None = Query(None, max_length=100),
    seen: Viewer = Depends(viewer),
) -> Response:
    engine = engine_of(request)
    registry = engine.recommendations.registry
    versions = registry.versions()
    champion = registry.champion()
    return render(
        request,
        "models.html",
        seen,
        title="Models",
        rows=model_rows(versions, champion.version if champion else None),
        metrics_chart=models_chart(versions),
        served=engine.recommendations.served_version,
        promoted=promoted if promoted and registry.get(promoted) else None,
    )


@router.post(f"{UI}/models/{{version}}/promote", name="ui_promote_model")
async def promote(
    request: Request, version: str = VersionName, seen: Viewer = Depends(viewer)
) -> Response:
    """Make a stored model set the champion (admin): this process serves it at once, the
    others within a second; audited."""
    await checked_form(request, seen)
    seen.require(Scope.ADMIN)
    engine = engine_of(request)
    registry = engine.recommendations.registry
    before = registry.champion()
    chosen = await run_in_threadpool(registry.promote_stored, version)
    engine.privacy.audit.record(
        actor(request),
        "model.promote",
        f"model:{chosen.version}",
        {"previous": before.version if before else None},
    )
    await run_in_threadpool(engine.recommendations.reload)
    return redirect(f"{UI}/models?promoted={chosen.version}")
