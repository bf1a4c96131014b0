"""Every scoring algorithm keeps the same contract: shapes, history-only scoring, save/load."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from scipy import sparse

from persona.recommend.algorithms import ease as ease_module
from persona.recommend.algorithms.base import Scorer
from persona.recommend.algorithms.ease import EASE, CatalogTooLargeError, EASEConfig
from persona.recommend.algorithms.factorization import ALS, BPR, ALSConfig, BPRConfig
from persona.recommend.algorithms.graph import RP3beta, RP3betaConfig
from persona.recommend.algorithms.neighbours import ItemKNN, ItemKNNConfig
from persona.recommend.algorithms.popularity import DecayedPopularity, MostPopular
from persona.recommend.evaluation import ScorerRecommender
from tests.recommend.synthetic import N_ITEMS, interactions

SCORERS: dict[str, Callable[[], Any]] = {
    "most_popular": MostPopular,
    "decayed_popularity": DecayedPopularity,
    "itemknn_cosine": lambda: ItemKNN(ItemKNNConfig(neighbours=20)),
    "itemknn_bm25": lambda: ItemKNN(ItemKNNConfig(neighbours=20, similarity="bm25")),
    "itemknn_candidate": lambda: ItemKNN(ItemKNNConfig(neighbours=20, neighbourhood="candidate")),
    "als": lambda: ALS(ALSConfig(factors=8, iterations=5)),
    "bpr": lambda: BPR(BPRConfig(factors=8, iterations=20)),
    "ease": lambda: EASE(EASEConfig(l2=50.0)),
    "rp3beta": lambda: RP3beta(RP3betaConfig(neighbours=20)),
}


def test_every_scorer_class_is_covered() -> None:
    classes = {type(build()) for build in SCORERS.values()}
    assert classes == {MostPopular, DecayedPopularity, ItemKNN, ALS, BPR, EASE, RP3beta}


@pytest.mark.parametrize("build", SCORERS.values(), ids=list(SCORERS))
def test_scorer_contract_and_round_trip(build: Callable[[], Scorer]) -> None:
    scorer = build()
    assert isinstance(scorer, Scorer)
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
    assert json.loads(json.dumps(asdict(scorer.config))) == asdict(scorer.config)


@pytest.mark.parametrize("build", SCORERS.values(), ids=list(SCORERS))
def test_history_items_are_never_recommended(build: Callable[[], Scorer]) -> None:
    data = interactions()
    recommender = ScorerRecommender(build())
    recommender.fit(data)
    history = data.matrix()
    top = recommender.recommend(np.arange(data.n_users, dtype=np.int64), history, 10)
    assert top.shape == (data.n_users, 10)
    assert (top >= 0).all()  # every person has far more than ten unseen items
    assert not (history.toarray()[np.arange(data.n_users)[:, None], top] > 0).any()
    assert all(len(set(row)) == 10 for row in top.tolist())


def test_scores_depend_on_the_history_not_the_person() -> None:
    data = interactions()
    scorer = ALS(ALSConfig(factors=8, iterations=5))
    scorer.fit(data)
    one = scorer.score(data.history_rows([[0, 4, 8]]))
    twice = scorer.score(data.history_rows([[1, 2], [0, 4, 8]]))
    np.testing.assert_allclose(twice[1], one[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "build", [SCORERS["itemknn_cosine"], SCORERS["ease"], SCORERS["rp3beta"], SCORERS["als"]]
)
def test_collaborative_scorers_favour_the_history_category(build: Callable[[], Scorer]) -> None:
    scorer = build()
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


@pytest.mark.parametrize(
    "side", ["items, dense gram", "items, sparse gram", "people (more items than people)"]
)
def test_ease_matches_the_closed_form_and_leaves_unseen_items_at_zero(
    side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inverse is taken items x items, or through the people when they are fewer (the
    Woodbury identity): the weights are the closed form's either way."""
    if side == "items, sparse gram":
        monkeypatch.setattr(ease_module, "DENSE_GRAM_MAX", 0)
    taken = []
    for name in ("_symmetric_positive_inverse", "_inverse_through_people"):
        inverse = getattr(ease_module, name)
        monkeypatch.setattr(
            ease_module,
            name,
            lambda *args, _name=name, _inverse=inverse: taken.append(_name) or _inverse(*args),
        )
    data = interactions()  # 60 people, 80 items
    kept = data.items != 3  # item 3 never seen
    if side.startswith("items"):
        kept &= data.items < 40
    data = data.subset(np.flatnonzero(kept))
    model = EASE(EASEConfig(l2=50.0))
    model.fit(data)
    people_side = side.startswith("people")
    assert taken == ["_inverse_through_people" if people_side else "_symmetric_positive_inverse"]
    assert model.weights is not None and model.weights.flags.c_contiguous
    x = (data.matrix().toarray() > 0).astype(np.float64)
    active = np.flatnonzero(x.sum(axis=0))
    gram = x[:, active].T @ x[:, active] + 50.0 * np.eye(len(active))
    precision = np.linalg.inv(gram)
    expected = precision / -np.diag(precision)
    np.fill_diagonal(expected, 0.0)
    history = data.history_rows([[0, 4, 8], [1, 5]])
    scores = model.score(history)
    np.testing.assert_allclose(
        scores[:, active], history.toarray()[:, active] @ expected, rtol=1e-4, atol=1e-5
    )
    assert (scores[:, 3] == 0).all()


@pytest.mark.parametrize("least", [2, 5, 10_000])
def test_ease_leaves_out_items_with_fewer_interactions_than_its_minimum(least: int) -> None:
    """They take no part in the inverse and score zero; with none left, everything does."""
    data = interactions()
    counts = np.diff(data.matrix().tocsc().indptr)  # people who interacted with each item
    model = EASE(EASEConfig(l2=50.0, min_interactions=least))
    model.fit(data)
    assert model.active is not None
    np.testing.assert_array_equal(model.active, np.flatnonzero(counts >= least))
    scores = model.score(data.history_rows([[0, 4, 8], [1, 5]]))
    assert (scores[:, counts < least] == 0).all()
    assert (scores[:, counts >= least] != 0).any() == bool((counts >= least).sum() > 1)


def test_ease_weights_are_row_major_after_fitting_and_after_loading() -> None:
    # Scoring multiplies a sparse history by the weights; with a column-major matrix scipy
    # copies all of it on every call (seconds at a real catalog's size), so serving depends
    # on this layout.
    model = EASE(EASEConfig(l2=50.0))
    model.fit(interactions())
    assert model.weights is not None
    assert model.weights.flags.c_contiguous
    column_major = np.asfortranarray(model.weights)
    arrays = {**model.to_arrays(), "weights": column_major}
    assert EASE.from_arrays(EASEConfig(), arrays).weights.flags.c_contiguous  # type: ignore[union-attr]


@pytest.mark.parametrize("order", ["C", "F"])
def test_the_symmetric_inverse_works_in_place_in_either_memory_order(order: str) -> None:
    """LAPACK wants column-major order: a row-major matrix is inverted through its transposed
    view (the same matrix, being symmetric), in its own memory, and comes back row-major."""
    rng = np.random.default_rng(7)
    a = rng.random((300, 300), dtype=np.float32)
    gram = np.asarray(a @ a.T + 300 * np.eye(300), dtype=np.float32, order=order)  # type: ignore[call-overload]
    expected = np.linalg.inv(gram.astype(np.float64))
    inverse = ease_module._symmetric_positive_inverse(gram, block=64)
    np.testing.assert_allclose(inverse, expected, rtol=1e-3, atol=1e-7)
    assert inverse.dtype == np.float32
    assert np.shares_memory(inverse, gram)  # no copy of a real catalog's matrix
    assert inverse.flags.c_contiguous == (order == "C")


def test_item_knn_candidate_neighbourhood_is_the_transposed_history_one() -> None:
    data = interactions()
    by_history = ItemKNN(ItemKNNConfig(neighbours=5))
    by_candidate = ItemKNN(ItemKNNConfig(neighbours=5, neighbourhood="candidate"))
    by_history.fit(data)
    by_candidate.fit(data)
    assert by_history.similarity is not None
    assert by_candidate.similarity is not None
    assert (np.diff(by_history.similarity.indptr) <= 5).all()  # K per history item
    np.testing.assert_allclose(by_candidate.similarity.toarray(), by_history.similarity.toarray().T)


def test_ease_loads_weights_saved_for_the_whole_catalog() -> None:
    weights = np.asarray([[0.0, 0.5], [0.25, 0.0]], dtype=np.float32)
    model = EASE.from_arrays(EASEConfig(), {"weights": weights})
    scores = model.score(sparse.csr_matrix(np.asarray([[1.0, 0.0]], dtype=np.float32)))
    np.testing.assert_allclose(scores, [[0.0, 0.5]])


def test_rp3beta_keeps_each_items_best_walks_of_the_dense_definition() -> None:
    """Item i's row holds its ``neighbours`` largest W_ij = P(i -> u)^alpha P(u -> j)^alpha
    summed over people u, divided by pop_j^beta, with no step back to i itself (ties at the
    edge may pick either item: the values kept are compared)."""
    config = RP3betaConfig(alpha=0.7, beta=0.4, neighbours=6)
    data = interactions()
    scorer = RP3beta(config)
    scorer.fit(data)
    x = (data.matrix().toarray() > 0).astype(np.float64)
    to_item = (x / np.maximum(x.sum(axis=1, keepdims=True), 1)) ** config.alpha
    to_person = (x.T / np.maximum(x.T.sum(axis=1, keepdims=True), 1)) ** config.alpha
    walk = (to_person @ to_item) / np.maximum(x.sum(axis=0), 1)[None, :] ** config.beta
    np.fill_diagonal(walk, 0.0)
    kept = scorer.similarity.toarray()
    for item in range(x.shape[1]):
        best = np.sort(walk[item])[::-1][: config.neighbours]
        found = np.sort(kept[item])[::-1][: config.neighbours]
        np.testing.assert_allclose(found, best, rtol=1e-5, atol=1e-9)
        assert (kept[item] > 0).sum() <= config.neighbours and kept[item, item] == 0
