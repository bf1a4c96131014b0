"""The evaluation protocol's split and metrics, on cases small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from persona.recommend.evaluation import build_split, metrics, protocol_split, top_k_from_scores


def frame() -> pd.DataFrame:
    rows = []
    # Person 1: five ratings, two at the same second (ties broken by movieId).
    for movie, ts in [(10, 1), (30, 2), (20, 2), (40, 3), (50, 4)]:
        rows.append((1, movie, ts))
    # Person 2: a single rating goes to test.
    rows.append((2, 10, 5))
    # Person 3: three ratings, ceil(0.6) = 1 held out.
    for movie, ts in [(20, 1), (30, 2), (60, 3)]:
        rows.append((3, movie, ts))
    return pd.DataFrame(
        [
            {
                "userId": u,
                "movieId": m,
                "timestamp": t,
                "rating": 4.0,
                "title": f"m{m}",
                "year": 2000.0,
                "genres": "Drama|Comedy" if m % 20 == 0 else "Action",
            }
            for u, m, t in rows
        ]
    )


def test_split_takes_the_last_fifth_rounded_up_with_ties_by_movie_id() -> None:
    train, test = protocol_split(frame())
    held = {u: sorted(g.movieId) for u, g in test.groupby("userId")}
    assert held == {1: [50], 2: [10], 3: [60]}
    assert sorted(train[train.userId == 1].movieId) == [10, 20, 30, 40]


def test_metrics_by_hand() -> None:
    data_frame = frame()
    train, test = protocol_split(data_frame)
    split = build_split(data_frame, train, test)
    # Items in train only: 60 occurs only in test, so it is unavailable.
    item_60 = split.train.item_ids.index("60")
    assert not split.train.item_table.available[item_60]
    truth = [np.asarray([0]), np.asarray([1, 2]), np.zeros(0, dtype=np.int64)]
    top = np.asarray([[5, 0, 3] + [-1] * 17, [1, 4, 2] + [-1] * 17, [0, 1, 2] + [-1] * 17])
    result = metrics(top, truth, split.train)
    discounts = 1 / np.log2(np.arange(2, 12))
    ndcg_a = discounts[1] / discounts[0]
    ndcg_b = (discounts[0] + discounts[2]) / (discounts[0] + discounts[1])
    assert np.isclose(result["ndcg@10"], (ndcg_a + ndcg_b) / 2)  # person 3 has no test items
    assert np.isclose(result["recall@10"], 1.0)
    assert np.isclose(result["map@10"], ((1 / 2) + (1 + 2 / 3) / 2) / 2)
    assert np.isclose(result["hitrate@10"], 1.0)


def test_top_k_leaves_out_train_and_unavailable_items() -> None:
    data_frame = frame()
    train, test = protocol_split(data_frame)
    split = build_split(data_frame, train, test)
    scores = np.tile(np.arange(split.train.n_items, dtype=np.float32)[::-1], (3, 1))
    top = top_k_from_scores(scores, split.train, 2)
    seen = split.train.matrix().toarray() > 0
    for person in range(3):
        picked = top[person][top[person] >= 0]
        assert not seen[person, picked].any()
        assert split.train.item_table.available[picked].all()
    assert (top[0] == -1).all()  # person 1 has seen every available item
