"""What a recommendation request asks and what it is answered: the vocabulary the serving path,
its fallbacks, the batch export and the routes share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from persona.recommend.business import BusinessRule
from persona.recommend.dataset import Interactions
from persona.recommend.pipeline import Ranked, RecommendationPipeline
from persona.recommend.ranker import LearnedRanker
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
    rules: tuple[BusinessRule, ...] = ()  # the placement's business rules
    model_version: str | None = None  # a stored model set to answer from (None: the champion)


@dataclass(frozen=True)
class RecommendedItem:
    item_id: str
    score: float
    sources: list[str]
    # Why, in data a page can render (see ``explain``); None for answers kept from before.
    explanation: dict[str, Any] | None = None


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


def ranked_items(
    pipeline: RecommendationPipeline, ranked: Ranked, *, probabilities: bool = True
) -> list[RecommendedItem]:
    """The slots as answered: ids, scores that mean something (``served_scores``), sources
    and explanations. ``probabilities``: the slots' scores are the ranker's outputs (the
    pipeline's lists), else a source's own scores (similar items, trending)."""
    assert pipeline.data is not None
    ids = pipeline.data.item_ids
    because = ranked.because or [[] for _ in ranked.items]
    ranker = pipeline.ranker if probabilities else None
    scores = served_scores([slot.score for slot in ranked.items], ranker)
    return [
        RecommendedItem(
            ids[slot.item], score, sources, explain(pipeline.data, slot.item, sources, led_by)
        )
        for slot, score, sources, led_by in zip(
            ranked.items, scores, ranked.sources, because, strict=True
        )
    ]


def served_scores(raw: Sequence[float], ranker: LearnedRanker | None = None) -> list[float]:
    """Scores in [0, 1] that never rise down a list, with no sentinel values:

    - with ``ranker``: the probability that the person takes the item next (the ranker's
      output calibrated on people it did not learn from, ``ranker.calibrate``);
    - otherwise: the source's score relative to the list's first item (1.0), or, where the
      scores say nothing (none positive), the place in the list: 1, (n-1)/n, ... 1/n.

    A pinned item (score +inf) counts as 1.0 and an explored one (NaN) as the score of the
    item above it; then each score is capped by the one above, so that a boost, a pin or the
    diversity rule that moved an item up never shows a higher score below a lower one.
    """
    n = len(raw)
    finite = [r for r in raw if math.isfinite(r)]
    top = max(finite, default=0.0)
    values: list[float] = []
    for place, r in enumerate(raw):
        if r == math.inf:
            value = 1.0
        elif not math.isfinite(r):
            value = values[-1] if values else 0.0
        elif ranker is not None:
            value = ranker.probability(r)
        elif top > 0:
            value = max(0.0, r / top)
        else:
            value = (n - place) / n
        values.append(min(value, values[-1]) if values else value)
    return values


# What a source's proposal says about why, when no history item explains it, most telling first.
_KIND_OF_SOURCE = {
    "rule": "rule",
    "exploration": "new",
    "segment_trending": "segment",
    "context_trending": "context",
    "category_trending": "trending_in_category",
    "trending": "trending",
    "popular": "popular",
}


def explain(
    data: Interactions, item: int, sources: Sequence[str], led_by: Sequence[int]
) -> dict[str, Any]:
    """Why ``item`` is in a list, for a page to render:

    - ``{"kind": "history", "items": [{"item_id", "title"}, ...]}``: the person's items most
      alike to it ("because you watched Toy Story"), or the item asked about for similar items;
    - ``{"kind": "new", "category": ...}``: a new item shown to explore ("new in Comedy");
    - ``{"kind": "trending_in_category", "category": ...}``, ``{"kind": "trending"}``,
      ``{"kind": "popular"}``: what many people take lately;
    - ``{"kind": "segment"}`` / ``{"kind": "context"}``: what people of the person's segments,
      or on the same device and in the same country, take lately;
    - ``{"kind": "rule"}``: placed by a business rule;
    - ``{"kind": "taste"}``: the person's history as a whole (factors, content), with no one
      item standing out.
    """
    categories = data.item_table.categories[item]
    category = categories[0] if categories else None
    if "rule" in sources:
        return explanation("rule")
    if "exploration" in sources:
        return explanation("new", category=category)
    if led_by:
        titles = data.item_table.titles
        named = [{"item_id": data.item_ids[i], "title": titles[i] or None} for i in led_by]
        return explanation("history", items=named)
    for source, kind in _KIND_OF_SOURCE.items():
        if source in sources:
            return explanation(kind, category=category if kind == "trending_in_category" else None)
    return explanation("taste")


def explanation(
    kind: str, *, items: list[dict[str, Any]] | None = None, category: str | None = None
) -> dict[str, Any]:
    """One explanation, every key present (the API's ``ExplanationOut``)."""
    return {"kind": kind, "items": items, "category": category}
