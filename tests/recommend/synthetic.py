"""A small world with structure a recommender can find: people favour one category each."""

from __future__ import annotations

from typing import Any

import numpy as np

from persona.engine import Engine
from persona.recommend.dataset import Interactions, ItemTable

CATEGORIES = ["drama", "comedy", "action", "horror"]
N_ITEMS = 80
N_PEOPLE = 60
START_S = 1_600_000_000


def catalog() -> list[dict[str, Any]]:
    return [
        {
            "item_id": f"i{i}",
            "title": f"{CATEGORIES[i % 4]} story number {i}",
            "categories": [CATEGORIES[i % 4]],
        }
        for i in range(N_ITEMS)
    ]


def events(seed: int = 3) -> list[dict[str, Any]]:
    """Each person views 12-20 items, 85% from their favourite category, over a few weeks."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(N_PEOPLE):
        favourite = person % 4
        count = int(rng.integers(12, 21))
        own = [i for i in range(N_ITEMS) if i % 4 == favourite]
        other = [i for i in range(N_ITEMS) if i % 4 != favourite]
        weights = np.linspace(2.0, 0.5, len(own))  # lower ids of a category are more popular
        picks = list(
            rng.choice(own, size=min(count, len(own)), replace=False, p=weights / weights.sum())
        )
        picks += list(rng.choice(other, size=2, replace=False))
        for n, item in enumerate(picks):
            rows.append(
                {
                    "event_id": f"p{person}-{item}",
                    "type": "view",
                    "user_id": f"p{person}",
                    "item_id": f"i{item}",
                    "timestamp": START_S + person * 3600 + n * 86_400,
                }
            )
    return rows


def interactions(seed: int = 3) -> Interactions:
    rows = events(seed)
    people = sorted({r["user_id"] for r in rows})
    items = [f"i{i}" for i in range(N_ITEMS)]
    table = ItemTable.bare(N_ITEMS)
    for i, item in enumerate(catalog()):
        table.titles[i] = item["title"]
        table.categories[i] = item["categories"]
    return Interactions(
        user_ids=people,
        item_ids=items,
        users=np.asarray([people.index(r["user_id"]) for r in rows], dtype=np.int64),
        items=np.asarray([items.index(r["item_id"]) for r in rows], dtype=np.int64),
        timestamps_ms=np.asarray([r["timestamp"] * 1000 for r in rows], dtype=np.int64),
        weights=np.ones(len(rows), dtype=np.float32),
        values=np.full(len(rows), np.nan, dtype=np.float32),
        item_table=table,
    )


def stock(engine: Engine) -> None:
    """The synthetic shop stored in ``engine`` (through ingest), and a model set trained on it
    and promoted: a store ready to serve, for tests that run real servers on it."""
    from persona.catalog.schema import ItemIn

    engine.catalog.upsert([ItemIn.model_validate(item) for item in catalog()])
    rows = events()
    for start in range(0, len(rows), 1000):
        assert engine.ingest.ingest(rows[start : start + 1000]).rejected == 0
    train(engine)


def train(engine: Engine) -> None:
    """A model set trained on what ``engine`` stores, promoted (the first always is)."""
    from persona.recommend.training import train_model_set

    outcome = train_model_set(
        engine.storage,
        engine.recommendations.registry,
        engine.clock,
        engine.settings.profiles.event_weights,
    )
    assert outcome.promoted
