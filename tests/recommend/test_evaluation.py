"""The evaluation protocol's split, metrics and harness, on cases small enough to check by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from persona.recommend.algorithms.popularity import MostPopular
from persona.recommend.dataset import IntArray, Interactions, ItemTable
from persona.recommend.evaluation import (
    Candidate,
    Recommender,
    Report,
    Row,
    ScorerRecommender,
    baselines,
    build_split,
    grid,
    protocol_split,
    ranking_metrics,
    run_protocol,
    top_k,
)
from tests.recommend.synthetic import events

DISCOUNTS = 1 / np.log2(np.arange(2, 12))


def frame() -> pd.DataFrame:
    rows = []
    # Person 1: five ratings, two at the same second (ties broken by the item).
    for movie, ts in [(10, 1), (30, 2), (20, 2), (40, 3), (50, 4)]:
        rows.append((1, movie, ts))
    # Person 2: a single rating goes to test.
    rows.append((2, 10, 5))
    # Person 3: three ratings, ceil(0.6) = 1 held out.
    for movie, ts in [(20, 1), (30, 2), (60, 3)]:
        rows.append((3, movie, ts))
    return protocol_frame(rows)


def protocol_frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "person": u,
                "item": m,
                "timestamp": t,
                "value": 4.0,
                "title": f"m{m}",
                "created_ms": 946_684_800_000.0,
                "categories": "Drama|Comedy" if m % 20 == 0 else "Action",
            }
            for u, m, t in rows
        ]
    )


def test_split_takes_the_last_fifth_rounded_up_with_ties_by_item() -> None:
    train, test = protocol_split(frame())
    held = {u: sorted(g.item) for u, g in test.groupby("person")}
    assert held == {1: [50], 2: [10], 3: [60]}
    assert sorted(train[train.person == 1].item) == [10, 20, 30, 40]


@pytest.mark.parametrize(("size", "held"), [(1, 1), (4, 1), (5, 1), (6, 2), (15, 3), (16, 4)])
def test_split_rounds_up_exactly(size: int, held: int) -> None:
    # 15 * 0.2 is 3.0000000000000004 in floating point; three are held out, not four.
    train, test = protocol_split(protocol_frame([(1, m, m) for m in range(size)]))
    assert len(test) == held
    assert sorted(test.item) == list(range(size - held, size))
    assert len(train) == size - held


def test_split_keeps_unseen_items_unavailable_and_the_truth() -> None:
    data_frame = frame()
    split = build_split(data_frame, *protocol_split(data_frame))
    item_60 = split.train.item_ids.index("60")  # occurs only in test
    assert not split.train.item_table.available[item_60]
    assert split.train.item_table.categories[split.train.item_ids.index("20")] == [
        "Drama",
        "Comedy",
    ]
    truth = {
        split.train.user_ids[u]: sorted(split.train.item_ids[i] for i in split.truth[u].indices)
        for u in range(split.train.n_users)
    }
    assert truth == {"1": ["50"], "2": ["10"], "3": ["60"]}
    assert split.train.n_users == 3 and len(split.train.items) == 6


def padded(rows: list[list[int]]) -> IntArray:
    return np.asarray([r + [-1] * (20 - len(r)) for r in rows], dtype=np.int64)


def test_metrics_by_hand() -> None:
    data_frame = frame()
    split = build_split(data_frame, *protocol_split(data_frame))
    # Person 0's truth is item 0; person 1's items 1 and 2; person 2 has none (not averaged).
    truth = sparse.csr_matrix(
        (np.ones(3, dtype=np.float32), ([0, 1, 1], [0, 1, 2])), shape=(3, split.train.n_items)
    )
    top = padded([[5, 0, 3], [1, 4, 2], [0, 1, 2]])
    result = ranking_metrics(top, truth, split.train)
    ndcg_a = DISCOUNTS[1] / DISCOUNTS[0]
    ndcg_b = (DISCOUNTS[0] + DISCOUNTS[2]) / (DISCOUNTS[0] + DISCOUNTS[1])
    assert np.isclose(result["ndcg@10"], (ndcg_a + ndcg_b) / 2)
    assert np.isclose(result["recall@10"], 1.0)
    assert np.isclose(result["recall@20"], 1.0)
    # MAP@10 divides by min(10, |test|): person 0: 1/2; person 1: (1 + 2/3) / 2.
    assert np.isclose(result["map@10"], ((1 / 2) + (1 + 2 / 3) / 2) / 2)
    assert np.isclose(result["hitrate@10"], 1.0)
    # Items 0..5 recommended (coverage counts every row), out of the train items.
    n_available = int(split.train.item_table.available.sum())
    assert np.isclose(result["coverage@10"], 6 / n_available)
    counts = np.bincount(split.train.items, minlength=split.train.n_items)
    recommended = [5, 0, 3, 1, 4, 2, 0, 1, 2]
    assert np.isclose(result["mean_popularity@10"], counts[recommended].mean())


def test_recall_divides_by_k_when_the_truth_is_larger() -> None:
    n_items = 40
    data = Interactions(
        user_ids=["a"],
        item_ids=[str(i) for i in range(n_items)],
        users=np.zeros(1, dtype=np.int64),
        items=np.asarray([39], dtype=np.int64),
        timestamps_ms=np.zeros(1, dtype=np.int64),
        weights=np.ones(1, dtype=np.float32),
        values=np.ones(1, dtype=np.float32),
        item_table=ItemTable.bare(n_items),
    )
    truth = sparse.csr_matrix(np.r_[np.ones(30), np.zeros(10)].reshape(1, -1))
    # Hits at ranks 1, 3 (items 0, 1) and 12 (item 2); 30 relevant items.
    ranked = [0, 35, 1, 36, 37, 38, 34, 33, 32, 31, 30, 2, *range(3, 11)]
    result = ranking_metrics(np.asarray([ranked]), truth, data)
    assert np.isclose(result["recall@10"], 2 / 10)
    assert np.isclose(result["recall@20"], 11 / 20)
    assert np.isclose(result["ndcg@10"], (DISCOUNTS[0] + DISCOUNTS[2]) / DISCOUNTS.sum())
    assert np.isclose(result["map@10"], (1 + 2 / 3) / 10)


def test_metrics_need_twenty_recommendations() -> None:
    data_frame = frame()
    split = build_split(data_frame, *protocol_split(data_frame))
    with pytest.raises(ValueError, match="20 recommendations"):
        ranking_metrics(np.zeros((3, 10), dtype=np.int64), split.truth, split.train)


def test_top_k_leaves_out_history_and_unavailable_items() -> None:
    data_frame = frame()
    split = build_split(data_frame, *protocol_split(data_frame))
    scores = np.tile(np.arange(split.train.n_items, dtype=np.float32)[::-1], (3, 1))
    history = split.train.matrix()
    top = top_k(scores, history, 2, split.train.item_table.available)
    seen = history.toarray() > 0
    for person in range(3):
        picked = top[person][top[person] >= 0]
        assert not seen[person, picked].any()
        assert split.train.item_table.available[picked].all()
        assert list(picked) == sorted(picked)  # best first: lower index scores higher
    assert (top[0] == -1).all()  # person 1 has seen every available item


def synthetic_frame() -> pd.DataFrame:
    rows = [(int(e["user_id"][1:]), int(e["item_id"][1:]), e["timestamp"]) for e in events(seed=5)]
    return protocol_frame(rows)


class FirstItems:
    """A stand-in for persona's pipeline: the lowest item indices not in the history."""

    def fit(self, data: Interactions) -> None:
        self.n_items = data.n_items

    def recommend(self, users: IntArray, history: sparse.csr_matrix, k: int) -> IntArray:
        scores = -np.tile(np.arange(self.n_items, dtype=np.float32), (len(users), 1))
        return top_k(scores, history, k)


def test_run_protocol_tunes_refits_and_reports_extra_rows() -> None:
    chosen = {c.name: c for c in baselines()}
    candidates = [chosen["MostPopular"], chosen["ItemKNN-cosine"], chosen["EASE"]]
    seen_steps: list[str] = []
    extra = Candidate("persona", grid(depth=[1, 2]), lambda _: FirstItems(), baseline=False)
    rows = list(
        run_protocol(candidates, extra=[extra], frame=synthetic_frame(), step=seen_steps.append)
    )
    assert [r.name for r in rows] == ["MostPopular", "ItemKNN-cosine", "EASE", "persona"]
    assert len(seen_steps) == sum(c.steps for c in [*candidates, extra])
    by_name = {r.name: r for r in rows}
    assert by_name["ItemKNN-cosine"].params["neighbours"] in {50, 100, 200}
    assert by_name["ItemKNN-cosine"].validation_ndcg is not None
    assert by_name["MostPopular"].validation_ndcg is None  # nothing to tune
    for row in rows:
        assert 0.0 <= row.metrics["ndcg@10"] <= 1.0
        assert row.train_s >= 0.0 and row.score_s >= 0.0
    # People favour one category each: collaborative models beat popularity.
    assert by_name["EASE"].metrics["ndcg@10"] > by_name["MostPopular"].metrics["ndcg@10"]
    report = Report(rows)
    best = report.best_baseline()
    assert best is not None and best.name != "persona"
    ratios = report.ratios()
    assert ratios is not None
    assert np.isclose(
        ratios["ndcg@10"], by_name["persona"].metrics["ndcg@10"] / best.metrics["ndcg@10"]
    )
    assert report.to_json()["best_baseline"] == best.name


def test_report_without_persona_has_no_ratio() -> None:
    row = Row("MostPopular", {}, {"ndcg@10": 0.1, "recall@10": 0.1}, 0.0, 0.0)
    assert Report([row]).ratios() is None


def test_scorers_and_the_pipeline_keep_the_recommender_contract() -> None:
    from persona.recommend.pipeline import RecommendationPipeline

    recommenders: list[Any] = [ScorerRecommender(MostPopular()), RecommendationPipeline()]
    assert all(isinstance(r, Recommender) for r in recommenders)
