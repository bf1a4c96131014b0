"""What a recommendation request asks and what it is answered: the vocabulary the serving path,
its fallbacks, the batch export and the routes share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from persona.recommend.pipeline import Ranked, RecommendationPipeline
from persona.recommend.registry import ModelVersion
from persona.recommend.shortlists import Freshness, ShortlistTable


@dataclass(frozen=True)
class RecommendationQuery:
    person_id: str
    n: int = 10
    placement: str | None = None
    device: str | None = None
    country: str | None = None
    hour: int | None = None
    category: str | None = None
    exclude: Sequence[str] = ()
    budget_ms: float | None = None  # None: the service's latency budget


@dataclass(frozen=True)
class RecommendedItem:
    item_id: str
    score: float
    sources: list[str]


@dataclass(frozen=True)
class RecommendationResult:
    items: list[RecommendedItem]
    source: str  # "pipeline", or what answered instead: "context_trending", "trending", ...
    model_version: str | None
    reason: str | None = None  # why the pipeline did not answer
    personalized: bool = True
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False  # reused from an earlier identical request (see cache.py)


@dataclass
class ServedModel:
    """The model set in service and the pipeline restored from it."""

    version: ModelVersion
    pipeline: RecommendationPipeline
    shortlists: ShortlistTable | None = None  # the batch ranking saved with the model set
    freshness: Freshness = field(default_factory=Freshness)  # whose shortlists are true
    stamp: int = 0  # when the model set's files last changed, as loaded


def ranked_items(pipeline: RecommendationPipeline, ranked: Ranked) -> list[RecommendedItem]:
    assert pipeline.data is not None
    ids = pipeline.data.item_ids
    return [
        RecommendedItem(ids[slot.item], json_score(slot.score), sources)
        for slot, sources in zip(ranked.items, ranked.sources, strict=True)
    ]


def json_score(score: float) -> float:
    """Scores are finite in JSON: pinned items rank above all, explored ones below."""
    score = float(score)
    if score == math.inf:
        return 1e9
    if not math.isfinite(score):
        return -1e9
    return score
