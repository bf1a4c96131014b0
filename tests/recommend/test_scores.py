"""Sparse, nonzero, factor and shared scores propose and score exactly what the same scores as
a matrix do, whatever is blocked."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from persona.recommend import scores as scores_module
from persona.recommend.scores import (
    NOTHING,
    Blocked,
    DenseScores,
    FactorPool,
    FactorScores,
    NonzeroScores,
    SharedScores,
    SparseScores,
    row_dots,
    row_sum,
    sparse_product,
)


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Positive scores without ties (ties may be broken either way)."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) + 1).astype(np.float32)


def _blocked(rng: np.random.Generator, rows: int, items: int, share: float) -> Blocked:
    """Some items blocked for every row, some for one row only."""
    everyone = rng.random(items) < share / 2
    own = sparse.csr_matrix((rng.random((rows, items)) < share / 2).astype(np.float32))
    return Blocked(everyone, own)


def _every_pair(rows: int, items: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and item of every (row, item) pair, row by row."""
    every_row, every_item = (a.ravel() for a in np.indices((rows, items)))
    return every_row, every_item


def _proposals(top: np.ndarray) -> list[list[int]]:
    return [[int(i) for i in row if i != NOTHING] for row in top]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 6),
    items=st.integers(1, 40),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_what_is_blocked_is_the_same_asked_any_way(
    rows: int, items: int, share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    blocked = _blocked(rng, rows, items, share)
    every_row, every_item = _every_pair(rows, items)
    dense = blocked.dense
    assert dense.shape == blocked.shape == (rows, items)
    np.testing.assert_array_equal(blocked.at(every_row, every_item), dense.ravel())
    some = rng.choice(items, min(items, 5), replace=False)
    np.testing.assert_array_equal(blocked.columns(some), dense[:, some])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 6),
    items=st.integers(1, 40),
    n=st.integers(1, 12),
    density=st.floats(0.0, 1.0),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_sparse_scores_match_the_matrix_on_the_items_they_score(
    rows: int, items: int, n: int, density: float, share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = _distinct(rng, (rows, items)) * (rng.random((rows, items)) < density)
    blocked = _blocked(rng, rows, items, share)
    scored = SparseScores(sparse.csr_matrix(values))
    unscored = values == 0  # never proposed
    expected = DenseScores(values).top(
        n, Blocked(blocked.everyone, sparse.csr_matrix(blocked.own + unscored))
    )
    assert _proposals(scored.top(n, blocked)) == _proposals(expected)
    every_row, every_item = _every_pair(rows, items)
    np.testing.assert_array_equal(scored.at(every_row, every_item), values.ravel())


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 8),
    items=st.integers(1, 300),
    n=st.integers(1, 12),
    density=st.floats(0.0, 1.0),
    share=st.floats(0.0, 1.0),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_sparse_and_nonzero_scores_break_ties_by_item(
    rows: int, items: int, n: int, density: float, share: float, levels: int, seed: int
) -> None:
    """With few distinct scores (many ties, rows long and short), each row's proposals are
    its best allowed entries by score, then by item, whether held sparse or dense."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-levels, levels + 1, (rows, items)).astype(np.float32)
    values *= rng.random((rows, items)) < density
    blocked = _blocked(rng, rows, items, share)
    allowed = ~blocked.dense
    expected = [
        sorted(np.flatnonzero((values[r] != 0) & allowed[r]), key=lambda i: (-values[r, i], i))[:n]
        for r in range(rows)
    ]
    wanted = [[int(i) for i in row] for row in expected]
    assert _proposals(SparseScores(sparse.csr_matrix(values)).top(n, blocked)) == wanted
    assert _proposals(NonzeroScores(values).top(n, blocked)) == wanted
    every_row, every_item = _every_pair(rows, items)
    np.testing.assert_array_equal(NonzeroScores(values).at(every_row, every_item), values.ravel())


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 6),
    items=st.integers(1, 60),
    n=st.integers(1, 12),
    broken=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_scores_that_are_not_finite_count_as_zero(
    rows: int, items: int, n: int, broken: float, seed: int
) -> None:
    """A source's NaN or infinite score is a 0: never proposed by the nonzero scores, ranked as
    0 by the dense ones, read back as 0; the source's own matrix is left as it was."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 4, (rows, items)).astype(np.float32)
    where = rng.random((rows, items)) < broken
    values[where] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), where.sum())
    handed = values.copy()
    cleaned = np.where(np.isfinite(values), values, np.float32(0))
    blocked = _blocked(rng, rows, items, 0.2)
    every_row, every_item = _every_pair(rows, items)
    for kind in (DenseScores, NonzeroScores):
        scores = kind(values)
        assert _proposals(scores.top(n, blocked)) == _proposals(kind(cleaned).top(n, blocked))
        np.testing.assert_array_equal(scores.at(every_row, every_item), cleaned.ravel())
    np.testing.assert_array_equal(values, handed)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 8),
    items=st.integers(1, 60),
    features=st.integers(1, 6),
    n=st.integers(1, 12),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_a_product_dense_or_sparse_proposes_and_scores_alike(
    rows: int, items: int, features: int, n: int, weighted: bool, seed: int
) -> None:
    """Small integer entries: products are exact in either order of summation, with ties."""
    rng = np.random.default_rng(seed)
    left = sparse.csr_matrix(rng.integers(0, 3, (rows, features)) * (rng.random((rows, 1)) < 0.9))
    right = sparse.csr_matrix(rng.integers(0, 3, (items, features)).astype(np.float32))
    weights = rng.integers(0, 3, items).astype(np.float32) if weighted else None
    blocked = _blocked(rng, rows, items, 0.3)
    dense = sparse_product(left, right, weights)
    assert isinstance(dense, NonzeroScores)
    try:
        scores_module.DENSE_PRODUCT_MAX, limit = 0, scores_module.DENSE_PRODUCT_MAX
        kept_sparse = sparse_product(left, right, weights)
    finally:
        scores_module.DENSE_PRODUCT_MAX = limit
    assert isinstance(kept_sparse, SparseScores)
    assert _proposals(dense.top(n, blocked)) == _proposals(kept_sparse.top(n, blocked))
    every_row, every_item = _every_pair(rows, items)
    expected = (left @ right.T).toarray() * (1 if weights is None else weights[None, :])
    np.testing.assert_array_equal(dense.at(every_row, every_item), expected.ravel())
    np.testing.assert_array_equal(kept_sparse.at(every_row, every_item), expected.ravel())


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 6),
    items=st.integers(1, 60),
    n=st.integers(1, 20),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    pooled=st.booleans(),
)
def test_factor_scores_match_their_products(
    rows: int, items: int, n: int, share: float, seed: int, pooled: bool
) -> None:
    """Proposals as the products rank them, among a pool of proposable items if given (the
    rest as if blocked); the score of any item stays exact."""
    rng = np.random.default_rng(seed)
    people = rng.standard_normal((rows, 8)).astype(np.float32)
    catalog = rng.standard_normal((items, 8)).astype(np.float32)
    blocked = _blocked(rng, rows, items, share)
    pool = np.sort(rng.choice(items, rng.integers(1, items + 1), replace=False))
    scored = FactorScores(people, catalog, FactorPool.of(pool, catalog) if pooled else None)
    products = people @ catalog.T
    outside = np.ones(items, dtype=bool)
    outside[pool if pooled else np.arange(items)] = False
    as_dense = Blocked(blocked.everyone | outside, blocked.own)
    assert _proposals(scored.top(n, blocked)) == _proposals(DenseScores(products).top(n, as_dense))
    every_row, every_item = _every_pair(rows, items)
    np.testing.assert_allclose(
        scored.at(every_row, every_item), products.ravel(), rtol=1e-5, atol=1e-5
    )


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(0, 6),
    items=st.integers(1, 300),
    n=st.integers(1, 50),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_shared_scores_match_the_matrix_of_one_row_repeated(
    rows: int, items: int, n: int, share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    vector = _distinct(rng, (items,))
    blocked = _blocked(rng, rows, items, share)
    shared = SharedScores(vector, rows)
    dense = DenseScores(np.tile(vector, (rows, 1)))
    assert _proposals(shared.top(n, blocked)) == _proposals(dense.top(n, blocked))
    row_of = rng.integers(0, max(rows, 1), 20)
    items_of = rng.integers(0, items, 20)
    np.testing.assert_array_equal(shared.at(row_of, items_of), vector[items_of])


def test_a_row_with_everything_blocked_proposes_nothing() -> None:
    blocked = Blocked(
        np.array([False, True, False]), sparse.csr_matrix(np.array([[1.0, 0, 1.0], [0, 0, 0]]))
    )
    values = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    for scores in (
        DenseScores(values),
        SparseScores(sparse.csr_matrix(values)),
        FactorScores(np.array([[1.0], [1.0]]), np.array([[3.0], [2.0], [1.0]])),
        SharedScores(values[0], 2),
    ):
        assert _proposals(scores.top(5, blocked)) == [[], [0, 2]], type(scores).__name__


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 20),
    columns=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_a_sum_of_sparse_rows_is_the_sum_of_the_dense_rows(
    rows: int, columns: int, density: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.random((rows, columns)) * (rng.random((rows, columns)) < density)
    chosen = rng.choice(rows, rng.integers(0, rows + 1))  # repeats included
    summed = row_sum(sparse.csr_matrix(values), chosen)
    np.testing.assert_allclose(summed, values[chosen].sum(axis=0), rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 12),
    items=st.integers(1, 25),
    words=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
    dense_left=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_pair_dots_are_the_dense_products(
    rows: int, items: int, words: int, density: float, dense_left: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    left = rng.random((rows, words)) * (rng.random((rows, words)) < density)
    right = rng.random((items, words)) * (rng.random((items, words)) < density)
    pairs = int(rng.integers(0, 3 * rows * items))
    row, item = rng.integers(0, rows, pairs), rng.integers(0, items, pairs)
    maximum = scores_module.DENSE_LEFT_MAX
    scores_module.DENSE_LEFT_MAX = rows * words if dense_left else 0  # both ways of computing them
    try:
        dots = row_dots(sparse.csr_matrix(left), sparse.csr_matrix(right), row, item)
    finally:
        scores_module.DENSE_LEFT_MAX = maximum
    expected = (left[row] * right[item]).sum(axis=1)
    np.testing.assert_allclose(dots, expected, rtol=1e-5, atol=1e-6)
