"""Experiments: each arm's counts and rates, the lift over the control with its confidence
interval and confidence sequence, how the sequential test moved, the sample-ratio check and
how units were allocated. Every number is the results endpoint's (docs/experiments.md)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from persona.api.deps import engine_of
from persona.api.ui import charts
from persona.api.ui.pages import UI, UiRoute, Viewer, render, viewer
from persona.experiments import ExperimentResults, SequentialPath

router = APIRouter(route_class=UiRoute, include_in_schema=False)

ExperimentId = Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}(\.v[0-9]{1,9})?$")
Metric = Literal["conversion_rate", "click_rate"]


def _rates_chart(results: ExperimentResults) -> dict[str, Any]:
    labels = [arm.arm for arm in results.arms]
    return charts.bar(
        labels,
        {
            "click rate": [arm.click_rate for arm in results.arms],
            "conversion rate": [arm.conversion_rate for arm in results.arms],
        },
        y_title="share of units",
    )


def _lift_chart(results: ExperimentResults, metric: Metric) -> dict[str, Any] | None:
    rows = [(c.arm, getattr(c, metric)) for c in results.comparisons]
    rows = [(arm, rate) for arm, rate in rows if rate is not None]
    if not rows:
        return None
    level = f"{results.confidence:.0%}"
    return charts.intervals(
        [arm for arm, _ in rows],
        [rate.absolute_lift for _, rate in rows],
        {
            f"{level} confidence interval (fixed horizon)": [
                rate.absolute_lift_ci for _, rate in rows
            ],
            f"{level} confidence sequence (any time)": [rate.sequential_ci for _, rate in rows],
        },
        y_title=f"{metric.replace('_', ' ')}: treatment less control",
        estimate_label="observed difference",
    )


def _sequential_charts(
    paths: list[SequentialPath], alpha: float
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if not paths:
        return None
    looks = max(len(path.units) for path in paths)
    longest = max(paths, key=lambda path: len(path.units))
    labels = [str(n) for n in longest.units]

    def padded(values: list[Any]) -> list[Any]:
        return values + [None] * (looks - len(values))

    p_values: dict[str, list[Any]] = {f"{p.arm} p-value": padded(p.p_value) for p in paths}
    p_values[f"alpha = {alpha:g}"] = [alpha] * looks
    p_chart = charts.line(
        labels,
        p_values,
        y_title="always-valid p-value",
        x_title="units in the two arms",
        log=True,
        points=looks < 30,
        y_max=1.0,
    )
    bounds: dict[str, list[Any]] = {}
    for p in paths:
        bounds[f"{p.arm} difference"] = padded(p.difference)
        bounds[f"{p.arm} lower"] = padded(p.lower)
        bounds[f"{p.arm} upper"] = padded(p.upper)
    cs_chart = charts.line(
        labels,
        bounds,
        y_title="difference of rates",
        x_title="units in the two arms",
        points=looks < 30,
    )
    return p_chart, cs_chart


def _allocation_chart(results: ExperimentResults) -> dict[str, Any]:
    units = sum(arm.units for arm in results.arms)
    exposures = sum(arm.exposures for arm in results.arms)
    series: dict[str, list[float | None]] = {
        "share of units": [arm.units / units if units else None for arm in results.arms],
        "share of decisions": [
            arm.exposures / exposures if exposures else None for arm in results.arms
        ],
    }
    if any(arm.configured_share is not None for arm in results.arms):
        series["configured share"] = [arm.configured_share for arm in results.arms]
    return charts.bar([arm.arm for arm in results.arms], series, y_title="share")


@router.get(f"{UI}/experiments", name="ui_experiments")
def experiments_page(request: Request, seen: Viewer = Depends(viewer)) -> Response:
    found = engine_of(request).experiments.all().experiments
    return render(request, "experiments.html", seen, title="Experiments", experiments=found)


@router.get(f"{UI}/experiments/{{experiment_id}}", name="ui_experiment")
def experiment_page(
    request: Request,
    experiment_id: str = ExperimentId,
    asked: Metric | None = Query(None, alias="metric"),
    seen: Viewer = Depends(viewer),
) -> Response:
    """``metric``: the rate compared; by default conversions, or clicks while no arm has a
    conversion (a bandit rewarded by clicks)."""
    engine = engine_of(request)
    results = engine.experiments.results(experiment_id)
    converted = any(arm.conversions for arm in results.arms)
    metric: Metric = asked or ("conversion_rate" if converted else "click_rate")
    paths = engine.experiments.sequential_paths(experiment_id, metric)
    sequential = _sequential_charts(paths, 1 - results.confidence)
    return render(
        request,
        "experiment.html",
        seen,
        title=f"Experiment {results.experiment_id}",
        results=results,
        metric=metric,
        rates_chart=_rates_chart(results),
        lift_chart=_lift_chart(results, metric),
        p_chart=sequential[0] if sequential else None,
        cs_chart=sequential[1] if sequential else None,
        allocation_chart=_allocation_chart(results),
    )
