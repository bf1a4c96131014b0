"""Chart.js configurations, built here and sent to the page as JSON: the page's script only
hands each one to ``new Chart`` (static/ui.js). Times are labels already formatted in UTC, so
no date adapter is needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

PALETTE = (
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#4b5563",
    "#65a30d",
    "#9333ea",
)

Values = Sequence[float | int | None]


def color(n: int) -> str:
    return PALETTE[n % len(PALETTE)]


def time_labels(times_ms: Sequence[int]) -> list[str]:
    """Moments as labels as precise as their span needs (UTC)."""
    span = max(times_ms) - min(times_ms) if times_ms else 0
    if span < 600_000:
        form = "%H:%M:%S"
    elif span < 86_400_000:
        form = "%H:%M"
    elif span < 7 * 86_400_000:
        form = "%m-%d %H:%M"
    else:
        form = "%Y-%m-%d"
    return [datetime.fromtimestamp(ms / 1000, UTC).strftime(form) for ms in times_ms]


def _options(
    y_title: str,
    x_title: str | None,
    *,
    stacked: bool = False,
    log: bool = False,
    horizontal: bool = False,
    y_min: float | None = None,
    y_max: float | None = None,
) -> dict[str, Any]:
    value_axis: dict[str, Any] = {
        "title": {"display": True, "text": y_title},
        "stacked": stacked,
    }
    if log:
        value_axis["type"] = "logarithmic"
    if y_min is not None:
        value_axis["min"] = y_min
    if y_max is not None:
        value_axis["max"] = y_max
    label_axis: dict[str, Any] = {"stacked": stacked, "ticks": {"maxTicksLimit": 12}}
    if x_title:
        label_axis["title"] = {"display": True, "text": x_title}
    scales = (
        {"x": value_axis, "y": label_axis} if horizontal else {"x": label_axis, "y": value_axis}
    )
    options: dict[str, Any] = {
        "animation": False,
        "responsive": True,
        "maintainAspectRatio": False,
        "interaction": {"mode": "index", "intersect": False},
        "plugins": {"legend": {"position": "bottom"}},
        "scales": scales,
    }
    if horizontal:
        options["indexAxis"] = "y"
    return options


def line(
    labels: Sequence[str],
    series: Mapping[str, Values],
    *,
    y_title: str,
    x_title: str | None = None,
    log: bool = False,
    points: bool = False,
    y_min: float | None = None,
    y_max: float | None = None,
) -> dict[str, Any]:
    datasets = [
        {
            "label": name,
            "data": list(values),
            "borderColor": color(n),
            "backgroundColor": color(n),
            "pointRadius": 3 if points else 0,
            "borderWidth": 2,
            "spanGaps": False,
            "tension": 0,
        }
        for n, (name, values) in enumerate(series.items())
    ]
    return {
        "type": "line",
        "data": {"labels": list(labels), "datasets": datasets},
        "options": _options(y_title, x_title, log=log, y_min=y_min, y_max=y_max),
    }


def bar(
    labels: Sequence[str],
    series: Mapping[str, Values],
    *,
    y_title: str,
    x_title: str | None = None,
    stacked: bool = False,
    horizontal: bool = False,
) -> dict[str, Any]:
    datasets = [
        {"label": name, "data": list(values), "backgroundColor": color(n)}
        for n, (name, values) in enumerate(series.items())
    ]
    return {
        "type": "bar",
        "data": {"labels": list(labels), "datasets": datasets},
        "options": _options(y_title, x_title, stacked=stacked, horizontal=horizontal),
    }


def intervals(
    labels: Sequence[str],
    estimates: Values,
    ranges: Mapping[str, Sequence[tuple[float, float] | None]],
    *,
    y_title: str,
    estimate_label: str,
) -> dict[str, Any]:
    """Floating bars, one per interval kind and label, with the point estimate as a dot."""
    datasets: list[dict[str, Any]] = [
        {
            "type": "line",
            "label": estimate_label,
            "data": list(estimates),
            "showLine": False,
            "pointRadius": 5,
            "borderColor": "#111827",
            "backgroundColor": "#111827",
            "order": 0,
        }
    ]
    widths = [0.3 + 0.3 * n for n in range(len(ranges))]  # each narrower than the next
    for n, (name, values) in enumerate(ranges.items()):
        datasets.append(
            {
                "type": "bar",
                "label": name,
                "data": [list(v) if v is not None else None for v in values],
                "backgroundColor": color(n) + "55",
                "borderColor": color(n),
                "borderWidth": 1,
                "grouped": False,  # every interval centred on its arm, the estimate on top
                "barPercentage": widths[n],
                "order": n + 1,
            }
        )
    options = _options(y_title, None)
    options["interaction"] = {"mode": "nearest", "intersect": True}
    return {
        "type": "bar",
        "data": {"labels": list(labels), "datasets": datasets},
        "options": options,
    }
