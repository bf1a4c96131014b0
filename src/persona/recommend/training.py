"""From the store to a trained, versioned model set."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from persona.clock import Clock, utc
from persona.errors import NothingToLearnError
from persona.recommend.dataset import ContextColumns, Interactions, ItemTable
from persona.recommend.pipeline import (
    FitReport,
    PipelineConfig,
    RecommendationPipeline,
    SourceFactory,
)
from persona.recommend.registry import ModelRegistry, ModelVersion
from persona.recommend.shortlists import ExtraCandidates, rank_everyone
from persona.recommend.shown import ShownLists
from persona.storage.protocols import InteractionSource, Storage
from persona.storage.records import ItemRecord

# Events that show an item was put in front of someone say nothing about their taste.
NOT_INTERACTIONS = frozenset({"impression"})
PAGE = 5_000


class NotEnoughDataError(NothingToLearnError):
    status, code, title = 409, "not_enough_data", "Not enough data"


@dataclass(frozen=True)
class TrainingData:
    interactions: Interactions
    catalog_items: int  # items known to the catalog (the rest appear only in events)


def interaction_rows(source: InteractionSource, before_ms: int | None = None) -> pa.Table:
    """The events recommenders learn from (before ``before_ms`` if given), as columns: every
    event naming an item, types in ``NOT_INTERACTIONS`` aside."""
    columns = source.interaction_columns(before_ms)
    return columns.filter(pc.invert(pc.is_in(columns["type"], pa.array(NOT_INTERACTIONS))))


def load_training_data(
    storage: Storage,
    weights: Mapping[str, float],
    *,
    before_ms: int | None = None,
    events: InteractionSource | None = None,
) -> TrainingData:
    """Every interaction (optionally only those before ``before_ms``) and every item's metadata.

    The events come as columns from ``events`` (the lake, which the store keeps the same rows
    in; the store itself by default) and become index arrays in Arrow and numpy: people are
    numbered in the order of their first interaction, catalog items in catalog order, then
    items known only from events in order of first appearance.
    """
    with storage.read() as uow:
        items: list[ItemRecord] = []
        after: str | None = None
        while page := uow.catalog.list(after_id=after, limit=PAGE):
            items.extend(page)
            after = page[-1].item_id
    columns = interaction_rows(storage if events is None else events, before_ms)
    people = pc.dictionary_encode(columns["profile_key"]).combine_chunks()
    item_ids = [record.item_id for record in items]
    in_catalog = pc.index_in(columns["item_id"], value_set=pa.array(item_ids, pa.string()))
    unknown = pc.dictionary_encode(
        columns["item_id"].filter(pc.is_null(in_catalog))
    ).combine_chunks()
    item_rows = np.asarray(pc.fill_null(in_catalog, -1), dtype=np.int64)
    item_rows[item_rows < 0] = len(item_ids) + np.asarray(unknown.indices, dtype=np.int64)
    item_ids += unknown.dictionary.to_pylist()
    kinds = pc.dictionary_encode(columns["type"]).combine_chunks()
    strength = np.asarray([weights.get(t, 1.0) for t in kinds.dictionary.to_pylist()], np.float32)
    interactions = Interactions(
        user_ids=people.dictionary.to_pylist(),
        item_ids=item_ids,
        users=np.asarray(people.indices, dtype=np.int64),
        items=item_rows,
        timestamps_ms=np.asarray(columns["occurred_at_ms"], dtype=np.int64),
        weights=strength[np.asarray(kinds.indices, dtype=np.int64)],
        values=np.asarray(pc.fill_null(columns["value"], np.nan), dtype=np.float32),
        item_table=_item_table(items, len(item_ids)),
        context=ContextColumns.from_json(columns["context"]),
    )
    return TrainingData(interactions, len(items))


def _item_table(items: list[ItemRecord], n_items: int) -> ItemTable:
    """Catalog metadata; items known only from events get none (and count as available)."""
    table = ItemTable.bare(n_items)
    for i, record in enumerate(items):
        table.titles[i] = record.title or ""
        table.categories[i] = list(record.categories)
        table.tags[i] = list(record.tags)
        table.created_at_ms[i] = record.created_at_ms
        table.available[i] = record.available
    return table


@dataclass(frozen=True)
class TrainingOutcome:
    version: ModelVersion
    promoted: bool
    champion_before: str | None
    report: FitReport
    seconds: float


def train_model_set(
    storage: Storage,
    registry: ModelRegistry,
    clock: Clock,
    weights: Mapping[str, float],
    *,
    config: PipelineConfig | None = None,
    before_ms: int | None = None,
    extra_candidates: ExtraCandidates | None = None,
    say: Callable[[str], None] | None = None,
    events: InteractionSource | None = None,
    sources: SourceFactory | None = None,
) -> TrainingOutcome:
    """Train the pipeline on the stored events, save it as a new version, promote if not worse.

    The events are read from ``events`` when given (the lake), else from the store; the
    candidate sources are made by ``sources`` (``spark.spark_sources``), else the local ones. The
    comparison is champion/challenger on validation NDCG@10: the challenger is promoted
    when it is at least as good as the serving version, or when nothing serves yet.
    """
    started = time.perf_counter()
    say = say or (lambda _: None)
    say("reading events and items")
    data = load_training_data(storage, weights, before_ms=before_ms, events=events).interactions
    if not len(data.users):
        raise NotEnoughDataError("no events with an item to learn from")
    say("reading the lists people were shown")
    shown = ShownLists.from_columns(storage.shown_columns(before_ms), data)
    pipeline = RecommendationPipeline(config, sources)
    report = pipeline.fit(data, say, shown)
    now_ms = clock.now_ms()
    say("ranking everyone (the shortlists requests start from)")
    shortlists = rank_everyone(pipeline, now_ms // 1000, extra_candidates)
    version = registry.new_version_name(now_ms)
    manifest: dict[str, Any] = {
        "version": version,
        "created_at": utc(now_ms).isoformat(),
        "trained_before": before_ms,
        "config": {"candidates": pipeline.config.candidates},
        "sources": report.sources,
        "left_out": report.left_out,
        "metrics": report.metrics,
        "ranker": asdict(report.ranker) if report.ranker else None,
        "people": report.people,
        "items": report.items,
        "interactions": report.interactions,
    }
    champion = registry.champion()
    saved = registry.save(
        version,
        manifest,
        data,
        pipeline.source_arrays(),
        pipeline.ranker.to_text() if pipeline.ranker else None,
        shortlists,
    )
    promoted = _challenger_wins(saved, champion)
    if promoted:
        registry.promote(version)
    return TrainingOutcome(
        saved,
        promoted,
        champion.version if champion else None,
        report,
        time.perf_counter() - started,
    )


def _challenger_wins(challenger: ModelVersion, champion: ModelVersion | None) -> bool:
    if champion is None:
        return True
    new, old = challenger.validation_ndcg, champion.validation_ndcg
    if old is None:
        return True
    return new is not None and new >= old
