"""The learned ranker: where it stops boosting, what it reports, what it saves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from persona.recommend.ranker import LearnedRanker, RankerConfig

SIZE = 30  # candidates a group


def groups(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` groups of candidates whose first feature makes them relevant, each group with at
    least one relevant candidate."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n * SIZE, 3)).astype(np.float32)
    labels = (features[:, 0] + rng.normal(size=n * SIZE) > 1.8).astype(np.int8)
    labels[np.arange(n) * SIZE + rng.integers(0, SIZE, n)] = 1
    return features, labels, np.full(n, SIZE, dtype=np.int64)


def test_the_report_measures_the_best_round_on_the_held_out_groups() -> None:
    features, labels, sizes = groups(2, 400)
    held_out = np.arange(400) >= 300
    ranker = LearnedRanker(RankerConfig(min_data_in_leaf=20, early_stopping_rounds=10))
    report = ranker.fit(features, labels, sizes, held_out, ["signal", "noise_a", "noise_b"])
    assert ranker.booster is not None and report.groups == 400
    # It stopped early, and kept the trees up to the best round only.
    assert 0 < report.trees == ranker.booster.num_trees() < RankerConfig().n_estimators
    rows = np.repeat(held_out, sizes)
    truth = labels[rows].reshape(-1, SIZE)
    measured = ndcg_score(truth, ranker.predict(features[rows]).reshape(-1, SIZE), k=10)
    # LightGBM's own measure; apart from how ties among the outputs are ordered, the same.
    assert report.validation_ndcg10 == pytest.approx(measured, abs=1e-3)
    # The signal is learned: far better than an order at random.
    at_random = np.random.default_rng(5).random(truth.shape)
    assert report.validation_ndcg10 > ndcg_score(truth, at_random, k=10) + 0.2


def test_a_saved_ranker_ranks_as_the_fitted_one() -> None:
    features, labels, sizes = groups(3, 200)
    ranker = LearnedRanker(RankerConfig(min_data_in_leaf=20))
    ranker.fit(features, labels, sizes, np.arange(200) >= 150, ["a", "b", "c"])
    loaded = LearnedRanker.from_text(ranker.to_text(), RankerConfig(), ranker.calibration)
    assert loaded.feature_names == ["a", "b", "c"]
    np.testing.assert_allclose(loaded.predict(features), ranker.predict(features))
    assert loaded.probability(0.5) == ranker.probability(0.5)
