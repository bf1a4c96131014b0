"""Every scoring algorithm keeps the same contract: shapes, history-only scoring, save/load."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from persona.recommend.algorithms.base import Scorer
from persona.recommend.algorithms.ease import EASE, CatalogTooLargeError, EASEConfig
from persona.recommend.algorithms.factorization import ALS, BPR, ALSConfig, BPRConfig
from persona.recommend.algorithms.graph import RP3beta
from persona.recommend.algorithms.neighbours import ItemKNN, ItemKNNConfig
from persona.recommend.algorithms.popularity import DecayedPopularity, MostPopular
from tests.recommend.synthetic import N_ITEMS, interactions

SCORERS: list[Any] = [
    MostPopular(),
    DecayedPopularity(),
    ItemKNN(ItemKNNConfig(neighbours=20)),
    ItemKNN(ItemKNNConfig(neighbours=20, similarity="bm25")),
    ALS(ALSConfig(factors=8, iterations=5)),
    BPR(BPRConfig(factors=8, iterations=20)),
    EASE(EASEConfig(l2=50.0)),
    RP3beta(),
]


@pytest.mark.parametrize("scorer", SCORERS, ids=lambda s: f"{s.name}-{id(s) % 1000}")
def test_scorer_contract_and_round_trip(scorer: Scorer) -> None:
    data = interactions()
    scorer.fit(data)
    history = data.history_rows([[0, 4, 8], [1], []])
    scores = scorer.score(history)
    assert scores.shape == (3, N_ITEMS)
    assert np.isfinite(scores).all()

    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **scorer.to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as saved:
        restored = type(scorer).from_arrays(scorer.config, {k: saved[k] for k in saved.files})
    np.testing.assert_allclose(restored.score(history), scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "scorer", [ItemKNN(ItemKNNConfig(neighbours=20)), EASE(EASEConfig(l2=50.0)), RP3beta()]
)
def test_item_based_scorers_favour_the_history_category(scorer: Scorer) -> None:
    data = interactions()
    scorer.fit(data)
    drama_history = data.history_rows([[0, 4, 8, 12]])
    scores = scorer.score(drama_history)[0]
    scores[[0, 4, 8, 12]] = -np.inf
    top = np.argsort(-scores)[:5]
    assert all(data.item_table.categories[i] == ["drama"] for i in top)


def test_ease_refuses_a_catalog_over_its_limit() -> None:
    with pytest.raises(CatalogTooLargeError):
        EASE(EASEConfig(max_items=10)).fit(interactions())
