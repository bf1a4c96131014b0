"""A candidate source's scores for a block of requests, in the shape that costs least.

The pipeline asks two things of a source's scores: each row's best ``n`` items that no filter
blocks (its proposals), and the score of given (row, item) pairs (the ranker's features). A
rows x items matrix answers both, but on a catalog of a hundred thousand items it is the whole
cost of a ranking: filling, masking and partitioning every item for every source and row. Most
sources do not need it:

- ``DenseScores``: a matrix, for sources that score every item (matrix factorization, EASE);
- ``SparseScores``: a sparse matrix, for sources that score only some items (item neighbours of
  the history, items sharing a word or a category with it): unscored items are never proposed;
- ``NonzeroScores``: the same answers from a dense matrix whose zeros are the unscored items,
  for such sources on a small catalog, where nearly every item shares a word or a category
  with a history: the product is cheaper dense, and so is the search of its best items;
- ``SharedScores``: one row for every request (trending at one moment, the moment of a batch
  ranking or of requests served within the same second): the catalog is sorted once.

These are the product's own hot path (the per-request and batch ranking), so they are written
here on numpy and scipy rather than taken from a library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt
from implicit.cpu.topk import topk
from scipy import sparse

from persona.recommend.dataset import IntArray

BoolMatrix = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]
NOTHING = -1  # an empty slot of a row's proposals
FILTERED = -1e38  # the score implicit's top-k search gives what it filtered out


def entry_rows(matrix: sparse.csr_matrix) -> IntArray:
    """The row of each stored entry of a CSR matrix, in storage order."""
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def row_entries(matrix: sparse.csr_matrix, rows: IntArray) -> tuple[IntArray, IntArray]:
    """The stored entries of some rows of a CSR matrix (repeats included), gathered in numpy
    (scipy's row selection costs a tenth of a millisecond per call, and copies): for each
    entry, which of ``rows`` it belongs to and its position in ``data`` and ``indices``."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = ends - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    entries = np.arange(int(lengths.sum())) + np.repeat(
        starts - (np.cumsum(lengths) - lengths), lengths
    )
    return owner, entries


def row_sum(matrix: sparse.csr_matrix, rows: IntArray) -> FloatArray:
    """The sum of some rows of a sparse matrix, as a dense vector."""
    _, entries = row_entries(matrix, rows)
    summed = np.bincount(
        matrix.indices[entries], weights=matrix.data[entries], minlength=matrix.shape[1]
    )
    return summed.astype(np.float32)


def find_sorted(sorted_keys: IntArray, wanted: IntArray) -> tuple[IntArray, BoolMatrix]:
    """Where each wanted key is among ``sorted_keys``, and whether it is there. A (row, item)
    pair kept as the key ``row * n_items + item`` is then found with one search."""
    if not len(sorted_keys):
        return np.zeros(np.shape(wanted), dtype=np.int64), np.zeros(np.shape(wanted), np.bool_)
    found = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
    return found, sorted_keys[found] == wanted


class Blocked:
    """What each row of a block may not be proposed: the items blocked for everyone (not
    available now) and each row's own (its history, its request's exclusions)."""

    def __init__(self, everyone: npt.NDArray[np.bool_], own: sparse.csr_matrix) -> None:
        self.everyone = everyone
        self.own = sparse.csr_matrix(own, dtype=np.float32)
        self.own.sort_indices()
        self.own_keys = entry_rows(self.own) * len(everyone) + self.own.indices

    @property
    def shape(self) -> tuple[int, int]:
        return (self.own.shape[0], len(self.everyone))

    @cached_property
    def dense(self) -> BoolMatrix:
        """Rows x items (only sources that score every item need it)."""
        matrix = np.repeat(self.everyone[None, :], self.own.shape[0], axis=0)
        rows, items = self.own.nonzero()
        matrix[rows, items] = True
        return matrix

    def at(self, rows: IntArray, items: IntArray) -> BoolMatrix:
        """Whether each (row, item) pair is blocked."""
        wanted = np.asarray(rows, dtype=np.int64) * len(self.everyone) + items
        _, own = find_sorted(self.own_keys, wanted)
        return own | self.everyone[items]

    def columns(self, items: IntArray) -> BoolMatrix:
        """Rows x ``items``: whether each row may not be proposed each of these items."""
        own = np.asarray(self.own[:, items].toarray(), dtype=np.bool_)
        return own | self.everyone[items][None, :]


class Scores(Protocol):
    def top(self, n: int, blocked: Blocked) -> IntArray:
        """Rows x ``n``: each row's best items that ``blocked`` lets through, best first,
        ``NOTHING`` past the last one the source scores."""
        ...

    def at(self, rows: IntArray, items: IntArray) -> FloatArray:
        """The score of each (row, item) pair; 0 where the source scores nothing."""
        ...


class DenseScores:
    def __init__(self, matrix: np.ndarray) -> None:
        """``matrix`` is kept as it is when every score is finite (the sources hand over
        matrices of their own, which nothing changes afterwards), else a copy with the
        non-finite scores as 0: one pass over it instead of a copy and three."""
        scores: FloatArray = np.asarray(matrix, dtype=np.float32)
        if not np.isfinite(scores).all():
            scores = np.nan_to_num(scores, nan=0, posinf=0, neginf=0)
        self.matrix = scores

    def top(self, n: int, blocked: Blocked) -> IntArray:
        return _best(self.matrix, n, blocked.dense)

    def at(self, rows: IntArray, items: IntArray) -> FloatArray:
        return self.matrix[rows, items]


class SparseScores:
    def __init__(self, matrix: sparse.csr_matrix) -> None:
        m = sparse.csr_matrix(matrix, dtype=np.float32)
        m.data = np.nan_to_num(m.data, nan=0, posinf=0, neginf=0)
        m.eliminate_zeros()
        m.sort_indices()
        self.matrix = m
        # every stored score's (row, item) as one sorted key: a pair's score is a search away
        self._keys = entry_rows(m) * m.shape[1] + m.indices

    def top(self, n: int, blocked: Blocked) -> IntArray:
        """Each row's best ``n`` (score, then item, ascending, among equal scores) of what
        it may be proposed, for the whole block at once: blocked entries are dropped, each
        row's ``n``-th best score is found (``_nth_best``), and only the entries at or above
        it are sorted. A loop over rows costs a dozen numpy calls per row, each holding the
        interpreter lock: 4 to 8 times slower on one thread, and no faster on two."""
        m = self.matrix
        keep = ~blocked.everyone[m.indices]
        if blocked.own.nnz:  # the few blocked pairs searched among the many entries
            found, hit = find_sorted(self._keys, blocked.own_keys)
            keep[found[hit]] = False
        rows, items, values = entry_rows(m)[keep], m.indices[keep], m.data[keep]
        kept = values >= _nth_best(rows, values, m.shape[0], n)[rows]
        rows, items, values = rows[kept], items[kept], values[kept]
        order = np.lexsort((items, -values, rows))
        rows, items = rows[order], items[order]
        rank = _positions_in_rows(rows, m.shape[0])
        best = np.full((m.shape[0], n), NOTHING, dtype=np.int64)
        take = rank < n
        best[rows[take], rank[take]] = items[take]
        return best

    def at(self, rows: IntArray, items: IntArray) -> FloatArray:
        wanted = np.asarray(rows, dtype=np.int64) * self.matrix.shape[1] + items
        found, hit = find_sorted(self._keys, wanted)
        if not hit.any():
            return np.zeros(len(wanted), dtype=np.float32)
        return np.where(hit, self.matrix.data[found], np.float32(0)).astype(np.float32)


# Past this many rows x items, a product of sparse matrices is kept sparse (``sparse_product``).
DENSE_PRODUCT_MAX = 4_000_000


class NonzeroScores(DenseScores):
    """``SparseScores`` held dense: a zero (or non-finite) entry is an unscored item, never
    proposed; among equal scores, the lower item comes first."""

    def top(self, n: int, blocked: Blocked) -> IntArray:
        """Each row's ``n``-th best score is found by partitioning, then the entries at or
        above it (a row scoring fewer than ``n`` items: all it scores). Only the rows where
        more than ``n`` reach it, by ties at it, keep just as many of the tied ones as there is
        room for, in item order: most rows take one comparison pass, not five and a running
        count (2026-12-07: 22 to 34 ms instead of 33 to 41 for 256 rows of 9,066 to 10,000
        items, and as fast with every row tied)."""
        m = self.matrix
        masked = np.where(blocked.dense | (m == 0), np.float32(-np.inf), m)
        n = max(1, min(n, m.shape[1]))
        # The n-th least of the negated scores: partitioned near its start, as the many -inf
        # (unscored) entries make partitioning near the end several times slower.
        negated = -masked
        negated.partition(n - 1, axis=1)
        nth = -negated[:, n - 1]
        lowest = np.maximum(nth, np.finfo(np.float32).min)  # -inf: every finite score
        take = masked >= lowest[:, None]
        crowded = np.flatnonzero(np.count_nonzero(take, axis=1) > n)
        if len(crowded):
            some, bar = masked[crowded], nth[crowded, None]
            kept = some > bar
            room = n - np.count_nonzero(kept, axis=1)
            tied_rows, tied_items = np.nonzero(some == bar)  # in item order within a row
            first = _positions_in_rows(tied_rows, len(crowded)) < room[tied_rows]
            kept[tied_rows[first], tied_items[first]] = True
            take[crowded] = kept
        rows, items = np.nonzero(take)
        order = np.lexsort((items, -masked[rows, items], rows))
        rows, items = rows[order], items[order]
        best = np.full((m.shape[0], n), NOTHING, dtype=np.int64)
        best[rows, _positions_in_rows(rows, m.shape[0])] = items
        return best


def dense_product(left: sparse.csr_matrix, right: sparse.csr_matrix) -> FloatArray:
    """``left @ right.T`` as a dense, row-major float32 matrix, for a ``left`` of few rows: the
    sparse ``right`` multiplies the dense ``left`` (one pass over ``right``'s entries)."""
    dense_left = np.asarray(left.toarray(), dtype=np.float32)
    return np.ascontiguousarray(np.asarray(right @ dense_left.T, dtype=np.float32).T)


def sparse_product(
    left: sparse.csr_matrix, right: sparse.csr_matrix, weights: FloatArray | None = None
) -> Scores:
    """The scores ``left @ right.T`` (rows x items, for ``right`` items x features), each
    item's times its ``weights`` if given; zero for an unscored item. Dense when the block is
    small enough (``NonzeroScores``), else sparse."""
    rows, items = left.shape[0], right.shape[0]
    if rows * items > DENSE_PRODUCT_MAX:
        product = sparse.csr_matrix(left @ right.T, dtype=np.float32)
        if weights is not None:
            product.data *= weights[product.indices]
        return SparseScores(product)
    dense = dense_product(left, right)
    if weights is not None:
        dense *= weights[None, :]
    return NonzeroScores(dense)


def _positions_in_rows(rows: IntArray, n_rows: int) -> IntArray:
    """Each entry's place within its row (0 for the row's first), ``rows`` ascending."""
    lengths = np.bincount(rows, minlength=n_rows)
    return np.arange(len(rows)) - (np.cumsum(lengths) - lengths)[rows]


def _nth_best(rows: IntArray, values: FloatArray, n_rows: int, n: int) -> FloatArray:
    """The ``n``-th greatest value of each row's entries (``rows`` ascending), -inf for a row
    with fewer. Rows of similar length (within a factor of two) are laid out as one dense
    matrix and partitioned together: a few numpy calls per length class, none per row."""
    lengths = np.bincount(rows, minlength=n_rows)
    nth = np.full(n_rows, -np.inf, dtype=np.float32)
    long_rows = np.flatnonzero(lengths > n)
    if not len(long_rows):
        return nth
    position = _positions_in_rows(rows, n_rows)
    length_class = np.log2(lengths[long_rows]).astype(np.int64)
    slot = np.full(n_rows, -1, dtype=np.int64)  # a row's line in the class's matrix
    for each in np.unique(length_class):
        members = long_rows[length_class == each]
        width = int(lengths[members].max())
        slot[members] = np.arange(len(members))
        inside = slot[rows] >= 0
        dense = np.full((len(members), width), -np.inf, dtype=np.float32)
        dense[slot[rows[inside]], position[inside]] = values[inside]
        nth[members] = np.partition(dense, width - n, axis=1)[:, width - n]
        slot[members] = -1
    return nth


@dataclass(frozen=True)
class FactorPool:
    """The sorted items a factor search proposes among, with their factors: taken from the
    catalog's once per fitted model, not for every block of requests."""

    items: IntArray
    factors: np.ndarray

    @classmethod
    def of(cls, items: IntArray, catalog_factors: np.ndarray) -> FactorPool:
        return cls(items, np.ascontiguousarray(catalog_factors[items], dtype=np.float32))


class FactorScores:
    """Dot products of person factors with item factors (matrix factorization): the best
    items are found by implicit's top-k search, which multiplies and selects in batches
    without a rows x items matrix, skipping what is blocked."""

    def __init__(
        self, people: np.ndarray, items: np.ndarray, pool: FactorPool | None = None
    ) -> None:
        """``pool``: the items the search proposes among (all when None); the scores of any
        item stay exact."""
        self.people = np.ascontiguousarray(people, dtype=np.float32)
        self.items = np.ascontiguousarray(items, dtype=np.float32)
        self.pool = pool

    def top(self, n: int, blocked: Blocked) -> IntArray:
        searched, everyone, own = self.items, blocked.everyone, blocked.own
        if self.pool is not None:
            searched = self.pool.factors
            everyone = everyone[self.pool.items]
            own = own[:, self.pool.items].tocsr()
        n = max(1, min(n, len(searched)))
        unavailable = np.flatnonzero(everyone).astype(np.int32)
        ids, scores = topk(
            searched,
            self.people,
            n,
            filter_query_items=own if own.nnz else None,
            filter_items=unavailable if len(unavailable) else None,
            num_threads=1,
        )
        best = np.asarray(ids, dtype=np.int64)
        if self.pool is not None:
            best = self.pool.items[best]
        best[~(np.asarray(scores) > FILTERED)] = NOTHING
        return best

    def at(self, rows: IntArray, items: IntArray) -> FloatArray:
        products = np.einsum("ij,ij->i", self.people[rows], self.items[items])
        return np.asarray(products, dtype=np.float32)


class PairScores:
    """Exact scores of any (row, item) pair, proposing only among some candidates (given
    with their scores): for sources whose scores reach most of a large catalog, where
    scoring every item for every row would cost more than the rest of the ranking."""

    def __init__(
        self, candidates: sparse.csr_matrix, score: Callable[[IntArray, IntArray], FloatArray]
    ) -> None:
        self._proposals = SparseScores(candidates)
        self._score = score

    def top(self, n: int, blocked: Blocked) -> IntArray:
        return self._proposals.top(n, blocked)

    def at(self, rows: IntArray, items: IntArray) -> FloatArray:
        return self._score(np.asarray(rows, dtype=np.int64), items)


DENSE_LEFT_MAX = 4_000_000  # entries of ``row_dots``' left matrix made dense (16 MB)


def row_dots(
    left: sparse.csr_matrix, right: sparse.csr_matrix, rows: IntArray, items: IntArray
) -> FloatArray:
    """The dot product of ``left[row]`` and ``right[item]`` for each pair.

    ``left`` is a block's few rows (a history's words or categories), ``right`` the catalog's
    sparse vectors, and the pairs are every candidate of the block: with ``left`` dense, each
    pair is a gather of its item's few entries, in numpy (scipy's row selection and product
    took 7% of a 10M training)."""
    if not len(rows):
        return np.zeros(0, dtype=np.float32)
    if left.shape[0] * left.shape[1] > DENSE_LEFT_MAX:
        products = left[rows].multiply(right[items])
        return np.asarray(products.sum(axis=1), dtype=np.float32).ravel()
    dense = left.toarray()
    pair, entries = row_entries(right, items)
    values = dense[np.asarray(rows)[pair], right.indices[entries]] * right.data[entries]
    return np.bincount(pair, weights=values, minlength=len(items)).astype(np.float32)


class SharedScores:
    """The same scores for every row; ``order`` (the catalog sorted best first, computed once
    per moment by the source) makes each row's proposals a walk down one list."""

    def __init__(self, vector: FloatArray, rows: int, order: IntArray | None = None) -> None:
        self.vector = np.nan_to_num(np.asarray(vector, dtype=np.float32), nan=0, posinf=0)
        self.rows = rows
        self.order = np.argsort(-self.vector, kind="stable") if order is None else order

    def top(self, n: int, blocked: Blocked) -> IntArray:
        n_items = len(self.vector)
        n = max(1, min(n, n_items))
        length = min(n_items, 2 * n + 64)
        while True:  # a prefix of the catalog long enough for every row's n unblocked items
            prefix = self.order[:length]
            allowed = ~blocked.columns(prefix)
            if length == n_items or allowed.sum(axis=1).min(initial=n) >= n:
                break
            length = min(n_items, length * 4)
        rank = np.cumsum(allowed, axis=1) - 1  # each allowed item's place among the allowed
        rows, columns = np.nonzero(allowed & (rank < n))
        best = np.full((self.rows, n), NOTHING, dtype=np.int64)
        best[rows, rank[rows, columns]] = prefix[columns]
        return best

    def at(self, rows: IntArray, items: IntArray) -> FloatArray:
        return self.vector[items]


class RowScores:
    """One row's scores of any items (exploration asks for the content source's)."""

    def __init__(self, scores: Scores, row: int) -> None:
        self._scores = scores
        self._row = row

    def __call__(self, items: IntArray) -> FloatArray:
        return self._scores.at(np.full(len(items), self._row, dtype=np.int64), items)


def _best(matrix: np.ndarray, n: int, blocked: BoolMatrix) -> IntArray:
    """Each row's ``n`` highest finite scores that are not blocked, best first."""
    masked = np.where(blocked, -np.inf, matrix)
    n = max(1, min(n, masked.shape[1]))
    part = np.argpartition(-masked, n - 1, axis=1)[:, :n]
    picked = np.take_along_axis(masked, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best[~np.isfinite(np.take_along_axis(picked, order, axis=1))] = NOTHING
    return best
