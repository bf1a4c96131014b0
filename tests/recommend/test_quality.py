"""The pipeline's quality, guarded: on the evaluation protocol's MovieLens split (each person's
latest 20% held out), persona's NDCG@10 beats popularity and the best of its own candidate
sources ranked alone by a stated margin; with its ranker's order inverted, it does not."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from persona.recommend.algorithms.popularity import MostPopular
from persona.recommend.evaluation import (
    DEPTH,
    CoOccurrence,
    ScorerRecommender,
    Split,
    hit_rate,
    movielens,
    next_items,
    protocol_splits,
    ranking_metrics,
)
from persona.recommend.pipeline import RecommendationPipeline, Request
from persona.recommend.scores import NOTHING

# Measured on this split (2026-12-06): persona 0.1616; its sources alone EASE 0.1403 (the best),
# recent neighbours 0.1231, ALS 0.1208, ItemKNN 0.1190, trending 0.0697, category trending
# 0.0686, content 0.0135; popularity 0.0856; the inverted ranker 0.0013. The margins leave room
# for the pipeline seeds' spread (0.004 a seed).
OVER_BEST_SOURCE = 1.05
OVER_POPULARITY = 1.5
# Similar items on the next item after each person's last (hit rate@10, 2026-12-07): 0.0879
# against item co-occurrence's 0.0492 (1.79x).
SIMILAR_OVER_COOCCURRENCE = 1.2


@pytest.fixture(scope="module")
def fitted() -> tuple[Split, RecommendationPipeline]:
    _, test = protocol_splits(movielens())
    pipeline = RecommendationPipeline()
    pipeline.fit(test.train)
    return test, pipeline


def ndcg(top: np.ndarray, split: Split) -> float:
    return ranking_metrics(top, split.truth, split.train)["ndcg@10"]


def persona_ndcg(split: Split, pipeline: RecommendationPipeline) -> float:
    people = np.arange(split.train.n_users, dtype=np.int64)
    return ndcg(pipeline.recommend(people, split.train.matrix(), DEPTH), split)


def source_alone(split: Split, pipeline: RecommendationPipeline, source: str) -> float:
    """One candidate source's own best items for each person, filtered as the pipeline
    filters, as of the person's last event."""
    top = np.full((split.train.n_users, DEPTH), NOTHING, dtype=np.int64)
    histories = pipeline.histories()
    for person in range(len(histories)):
        history = histories[person]
        as_of = int(history.times_s[-1]) if len(history.times_s) else 0
        request = Request(history, as_of, hour=as_of // 3600 % 24)
        items = [item for item, _ in pipeline.rank_by_source(request, source, DEPTH)]
        top[person, : len(items)] = items
    return ndcg(top, split)


def test_the_pipeline_beats_popularity_and_each_of_its_sources_alone(
    fitted: tuple[Split, RecommendationPipeline],
) -> None:
    split, pipeline = fitted
    persona = persona_ndcg(split, pipeline)
    popularity = ScorerRecommender(MostPopular())
    popularity.fit(split.train)
    people = np.arange(split.train.n_users, dtype=np.int64)
    popular = ndcg(popularity.recommend(people, split.train.matrix(), DEPTH), split)
    sources = {s.name: source_alone(split, pipeline, s.name) for s in pipeline.sources}
    best = max(sources.values())
    assert persona >= OVER_POPULARITY * popular, (persona, popular)
    assert persona >= OVER_BEST_SOURCE * best, (persona, sources)


def test_a_ranker_whose_order_is_inverted_fails_the_margin(
    fitted: tuple[Split, RecommendationPipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    split, pipeline = fitted
    ranker = pipeline.ranker
    assert ranker is not None
    predict: Callable[[np.ndarray], np.ndarray] = ranker.predict
    monkeypatch.setattr(ranker, "predict", lambda features: -predict(features))
    inverted = persona_ndcg(split, pipeline)
    best = max(source_alone(split, pipeline, s.name) for s in pipeline.sources)
    assert inverted < OVER_BEST_SOURCE * best, (inverted, best)


def test_similar_items_find_the_next_item_more_often_than_co_occurrence(
    fitted: tuple[Split, RecommendationPipeline],
) -> None:
    split, pipeline = fitted
    task = next_items(movielens(), split)
    assert len(task.people) > 600
    as_of = int(split.train.timestamps_ms.max() // 1000)
    ours = [[s.item for s in pipeline.similar(int(i), DEPTH // 2, as_of).items] for i in task.last]
    baseline = CoOccurrence(split.train)
    theirs = [baseline.similar(int(i), DEPTH // 2) for i in task.last]
    assert all(len(found) == DEPTH // 2 for found in ours)
    ours_rate, theirs_rate = hit_rate(ours, task.following), hit_rate(theirs, task.following)
    assert ours_rate >= SIMILAR_OVER_COOCCURRENCE * theirs_rate, (ours_rate, theirs_rate)


def test_a_newcomer_gets_well_known_items_not_arbitrary_ones(
    fitted: tuple[Split, RecommendationPipeline],
) -> None:
    from persona.recommend.request import History

    split, pipeline = fitted
    as_of = int(split.train.timestamps_ms.max() // 1000)
    [ranked] = pipeline.rank([Request(History.empty(), as_of, hour=12)], 10)
    counts = np.bincount(split.train.items, minlength=split.train.n_items)
    known = int((counts > 0).sum())
    place = np.empty(len(counts), dtype=np.int64)
    place[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    places = [int(place[s.item]) for s in ranked.items]
    assert len(places) == 10
    assert all(sources == ["trending"] for sources in ranked.sources), ranked.sources
    # Trending weighs the latest interactions: well known, not necessarily the all-time top.
    assert max(places) < 0.15 * known, places
