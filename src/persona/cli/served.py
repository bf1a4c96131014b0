"""The served lists in the offline protocol's table: what people receive, measured as the
pipeline's own evaluation path is.

``ServedPersona`` is a row of ``persona evaluate`` like the baselines: it is given the same
train interactions, but writes them into a fresh home through the services the API uses
(catalog upserts, event ingestion, so profiles, dedupe and consent apply), trains there as
`persona train` does, and answers with the lists of `persona recommend --all`: the served
pipeline with its rerank (business rules, diversity, exploration), filters and fallbacks.

``home_frame`` reads a home's own events in the protocol's columns, so that the whole table
(baselines, the pipeline, the served lists) can be measured on a user's data
(`persona evaluate --home DIR`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from persona.catalog.schema import ItemIn
from persona.clock import SECOND_MS, FakeClock, utc
from persona.engine import Engine
from persona.recommend.answer import RecommendationQuery
from persona.recommend.dataset import IntArray, Interactions
from persona.recommend.evaluation import COLUMNS, Candidate
from persona.recommend.training import load_training_data
from persona.settings import Settings, load_settings

SERVED = "persona (served)"
BATCH = 1000  # events and items per write, as a client's batches
# The settings groups of a home that its served lists depend on (``--home``).
SERVED_GROUPS = ("ingest", "profiles", "privacy", "recommend")


class ServedPersona:
    """persona as a client reaches it, behind the harness's ``fit``/``recommend`` contract.

    Events are written as ``rate`` events (with the rating) or ``view`` events, one per
    interaction, so that the served path learns from what every other row of the table learns
    from. The store's clock stands one second after the latest train interaction: the lists
    are served the moment training ends, each person ranked as of their latest event, as
    `persona recommend --all` ranks them.
    """

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self._settings = settings or {}
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._engine: Engine | None = None
        self._data: Interactions | None = None

    def fit(self, data: Interactions) -> None:
        self.close()
        self._directory = tempfile.TemporaryDirectory(prefix="persona-served-")
        settings: Settings = load_settings(
            **{**self._settings, "home": Path(self._directory.name), "dev_mode": True}
        )
        last_ms = int(data.timestamps_ms.max()) if len(data.timestamps_ms) else 0
        engine = Engine.open(settings, clock=FakeClock(last_ms + SECOND_MS))
        self._engine, self._data = engine, data
        items = list(_catalog(data))
        for start in range(0, len(items), BATCH):
            engine.catalog.upsert(items[start : start + BATCH])
        events = list(_events(data))
        for start in range(0, len(events), BATCH):
            engine.ingest.ingest(events[start : start + BATCH], source="evaluation")
        from persona.recommend.training import train_model_set

        train_model_set(
            engine.storage,
            engine.recommendations.registry,
            engine.clock,
            engine.settings.profiles.event_weights,
            events=engine.lake,
        )

    def recommend(self, users: IntArray, history: sparse.csr_matrix, k: int) -> IntArray:
        if self._engine is None or self._data is None:
            raise RuntimeError("fit first")
        data = self._data
        lists: dict[int, list[int]] = {}
        for person, items in self._engine.recommendations.recommend_all(
            k, self._engine.settings.profiles.event_weights
        ):
            row = data.user_index(person)
            if row is not None:
                found = (data.item_index(i.item_id) for i in items)
                lists[row] = [j for j in found if j is not None][:k]
        top = np.full((len(users), k), -1, dtype=np.int64)
        for row, user in enumerate(users):
            chosen = lists.get(int(user))
            if chosen is None:  # no train interaction: a stranger to the home, as the API sees
                chosen = self._stranger(data.user_ids[int(user)], k)
            top[row, : len(chosen)] = chosen
        return top

    def _stranger(self, person_id: str, k: int) -> list[int]:
        assert self._engine is not None
        assert self._data is not None
        # No latency budget offline: the answer does not depend on the machine's speed.
        query = RecommendationQuery(person_id=person_id, n=k, budget_ms=60_000)
        answer = self._engine.recommendations.recommend(query)
        found = (self._data.item_index(i.item_id) for i in answer.items)
        return [j for j in found if j is not None][:k]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


def served_candidate(settings: dict[str, Any] | None = None) -> Candidate:
    """The served lists as a row of the protocol's table (nothing tuned)."""
    return Candidate(SERVED, [{}], lambda _: ServedPersona(settings), baseline=False)


def _catalog(data: Interactions) -> Iterator[ItemIn]:
    """The items the train part can recommend (the protocol's ``available``)."""
    table = data.item_table
    for index in np.flatnonzero(table.available):
        created = int(table.created_at_ms[index])
        yield ItemIn(
            item_id=data.item_ids[index],
            title=table.titles[index] or None,
            categories=table.categories[index],
            created_at=utc(created) if created > 0 else None,
        )


def _events(data: Interactions) -> Iterator[dict[str, Any]]:
    for user, item, at_ms, value in zip(
        data.users, data.items, data.timestamps_ms, data.values, strict=True
    ):
        person, item_id = data.user_ids[user], data.item_ids[item]
        event: dict[str, Any] = {
            "event_id": f"eval-{person}-{item_id}-{at_ms}",
            "type": "view" if np.isnan(value) else "rate",
            "user_id": person,
            "item_id": item_id,
            "timestamp": int(at_ms) / SECOND_MS,
        }
        if not np.isnan(value):
            event["value"] = float(value)
        yield event


def home_frame(engine: Engine) -> pd.DataFrame:
    """A home's interactions in the protocol's columns (``evaluation.COLUMNS``): each person's
    first event with each item (as the generator's data is read), with the catalog's titles,
    creation times and categories. People are the home's profiles (anonymous ids merged)."""
    weights = engine.settings.profiles.event_weights
    catalog = load_training_data(engine.storage, weights, events=engine.lake).interactions
    frame = pd.DataFrame(
        {
            "person": np.asarray(catalog.user_ids, dtype=object)[catalog.users],
            "item": np.asarray(catalog.item_ids, dtype=object)[catalog.items],
            "timestamp": catalog.timestamps_ms // SECOND_MS,
        }
    )
    frame = frame.sort_values("timestamp", kind="stable").drop_duplicates(["person", "item"])
    table = catalog.item_table
    metadata = pd.DataFrame(
        {
            "title": table.titles,
            "created_ms": [float(ms) if ms > 0 else np.nan for ms in table.created_at_ms],
            "categories": ["|".join(c) if c else np.nan for c in table.categories],
        },
        index=pd.Index(catalog.item_ids, name="item"),
    )
    joined = frame.join(metadata, on="item")
    joined["value"] = np.nan
    return joined[list(COLUMNS)].reset_index(drop=True)
