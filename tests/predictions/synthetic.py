"""Synthetic histories whose structure is known, for the prediction tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from persona.clock import DAY_MS
from persona.predictions.events import EventLog

START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def buyers_and_browsers(
    people: int = 600, days: int = 360, seed: int = 0
) -> tuple[EventLog, dict[str, bool]]:
    """Everyone views at a rate of their own; buyers also purchase often, browsers rarely.

    Whether someone purchases next month depends on being a buyer, which the past purchases
    show and total activity and recency (the heuristic's inputs) do not.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, int, float | None]] = []
    kinds: dict[str, bool] = {}
    for p in range(people):
        key = f"u:p{p}"
        buyer = bool(rng.random() < 0.5)
        kinds[key] = buyer
        view_rate = float(rng.lognormal(-1.0, 0.8))
        purchase_rate = 0.05 if buyer else 0.003
        for day in range(days):
            at = START_MS + day * DAY_MS
            for _ in range(rng.poisson(view_rate)):
                rows.append((key, "view", at + int(rng.integers(0, DAY_MS)), None))
            if rng.random() < purchase_rate:
                rows.append((key, "purchase", at + int(rng.integers(0, DAY_MS)), 10.0))
    return EventLog.from_rows(rows), kinds


def behaviour_groups(per_group: int = 12) -> list[dict[str, Any]]:
    """Three well-separated kinds of people, as API events over the 30 days before 2026-01-01.

    ``viewer_<n>``: many views of Comedy items; ``buyer_<n>``: a few views and several
    purchases of Drama items; ``casual_<n>``: one view long ago.
    """
    end_s = 1_767_225_600
    events: list[dict[str, Any]] = []
    for n in range(per_group):
        for k in range(40):
            events.append(
                {
                    "type": "view",
                    "user_id": f"viewer_{n}",
                    "item_id": f"c{k % 5}",
                    "timestamp": end_s - 86_400 * (k % 10) - 60 * k - n,
                }
            )
        for k in range(6):
            events.append(
                {
                    "type": "purchase",
                    "user_id": f"buyer_{n}",
                    "item_id": f"d{k % 3}",
                    "timestamp": end_s - 86_400 * 3 * k - n,
                    "value": 50.0 + k,
                }
            )
            events.append(
                {
                    "type": "view",
                    "user_id": f"buyer_{n}",
                    "item_id": f"d{k % 3}",
                    "timestamp": end_s - 86_400 * 3 * k - 600 - n,
                }
            )
        events.append(
            {
                "type": "view",
                "user_id": f"casual_{n}",
                "item_id": "c0",
                "timestamp": end_s - 86_400 * 200 - n,
            }
        )
    return events


def shop_events(
    people: int = 80, days: int = 120, end_s: int = 1_767_225_600, seed: int = 0
) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    """API events of buyers (purchase most weeks) and browsers (hardly ever), ending at end_s.

    Returns the events and, per user id, whether the user is a buyer.
    """
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    kinds: dict[str, bool] = {}
    start_s = end_s - days * 86_400
    for p in range(people):
        user = f"p{p}"
        buyer = p % 2 == 0
        kinds[user] = buyer
        for day in range(days):
            at = start_s + day * 86_400
            for k in range(int(rng.poisson(0.6))):
                events.append(
                    {
                        "type": "view",
                        "user_id": user,
                        "item_id": f"i{int(rng.integers(0, 20))}",
                        "timestamp": at + int(rng.integers(0, 86_000)),
                        "event_id": f"v-{p}-{day}-{k}",
                    }
                )
            if rng.random() < (0.15 if buyer else 0.005):
                events.append(
                    {
                        "type": "purchase",
                        "user_id": user,
                        "item_id": f"i{int(rng.integers(0, 20))}",
                        "timestamp": at + int(rng.integers(0, 86_000)),
                        "value": 20.0,
                        "event_id": f"p-{p}-{day}",
                    }
                )
    events.sort(key=lambda e: e["timestamp"])
    return events, kinds


def ingest_all(engine: Any, events: list[dict[str, Any]], batch: int = 1000) -> None:
    for start in range(0, len(events), batch):
        result = engine.ingest.ingest(events[start : start + batch])
        assert not result.rejected, result
