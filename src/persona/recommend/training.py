"""From the store to a trained, versioned model set."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from persona.clock import Clock, utc
from persona.errors import NothingToLearnError
from persona.recommend.dataset import Interactions, ItemTable
from persona.recommend.pipeline import FitReport, PipelineConfig, RecommendationPipeline
from persona.recommend.registry import ModelRegistry, ModelVersion
from persona.recommend.shortlists import ExtraCandidates, rank_everyone
from persona.storage.protocols import Storage
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


def load_training_data(
    storage: Storage,
    weights: Mapping[str, float],
    *,
    before_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainingData:
    """Every interaction (optionally only those before ``before_ms``) and every item's metadata."""
    with storage.read() as uow:
        items: list[ItemRecord] = []
        after: str | None = None
        while page := uow.catalog.list(after_id=after, limit=PAGE):
            items.extend(page)
            after = page[-1].item_id
        people: dict[str, int] = {}
        item_index = {record.item_id: i for i, record in enumerate(items)}
        item_ids = [record.item_id for record in items]
        users: list[int] = []
        item_rows: list[int] = []
        times: list[int] = []
        strengths: list[float] = []
        values: list[float] = []
        for n, row in enumerate(uow.events.interactions(), start=1):
            if row.type in NOT_INTERACTIONS:
                continue
            if before_ms is not None and row.occurred_at_ms >= before_ms:
                break  # rows come in event-time order
            users.append(people.setdefault(row.profile_key, len(people)))
            index = item_index.get(row.item_id)
            if index is None:
                index = item_index[row.item_id] = len(item_ids)
                item_ids.append(row.item_id)
            item_rows.append(index)
            times.append(row.occurred_at_ms)
            strengths.append(weights.get(row.type, 1.0))
            values.append(np.nan if row.value is None else row.value)
            if progress and n % 10_000 == 0:
                progress(10_000)
    table = _item_table(items, len(item_ids))
    interactions = Interactions(
        user_ids=list(people),
        item_ids=item_ids,
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(item_rows, dtype=np.int64),
        timestamps_ms=np.asarray(times, dtype=np.int64),
        weights=np.asarray(strengths, dtype=np.float32),
        values=np.asarray(values, dtype=np.float32),
        item_table=table,
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
) -> TrainingOutcome:
    """Train the pipeline on the stored events, save it as a new version, promote if not worse.

    The comparison is champion/challenger on validation NDCG@10: the challenger is promoted
    when it is at least as good as the serving version, or when nothing serves yet.
    """
    started = time.perf_counter()
    say = say or (lambda _: None)
    say("reading events and items")
    data = load_training_data(storage, weights, before_ms=before_ms).interactions
    if not len(data.users):
        raise NotEnoughDataError("no events with an item to learn from")
    pipeline = RecommendationPipeline(config)
    report = pipeline.fit(data, say)
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
