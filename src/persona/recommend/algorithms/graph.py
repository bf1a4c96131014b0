"""RP3beta: three-step random walks on the user-item graph, popularity-penalized."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from implicit.nearest_neighbours import ItemItemRecommender
from scipy import sparse

from persona.recommend.algorithms.base import ItemSimilarityScorer, binary
from persona.recommend.dataset import Interactions


@dataclass(frozen=True)
class RP3betaConfig:
    alpha: float = 0.8
    beta: float = 0.3
    neighbours: int = 200


class RP3beta(ItemSimilarityScorer):
    """Item-to-item transition probabilities raised to ``alpha``, divided by popularity^beta.

    Hand-written because no maintained library offers it (Paudel et al., 2017): a weighting
    of the interactions, implicit's nearest-item search, and each item's row pruned to its
    ``neighbours`` best.
    """

    name = "rp3beta"

    def __init__(self, config: RP3betaConfig | None = None) -> None:
        super().__init__(config or RP3betaConfig())

    def fit(self, data: Interactions) -> None:
        """The walk from item i to item j is W_ij = pop_i^-alpha * C_ij * pop_j^-beta, with
        C = X' D_u^-alpha X (X binary, D_u people's degrees, pop the items' degrees). With
        Y = D_u^(-alpha/2) X D_pop^-beta, the Gram matrix Y'Y is pop_i^-beta C_ij pop_j^-beta:
        in each row, the same order as W. implicit's item-item search (multi-threaded, a
        top-k heap per item) finds each row's best of Y'Y; a row's scale makes them W."""
        c = self.config
        x = binary(data.matrix())
        degrees = np.asarray(x.sum(axis=1)).ravel()
        popularity = np.maximum(np.asarray(x.sum(axis=0)).ravel(), 1.0)
        people = np.power(np.maximum(degrees, 1.0), -c.alpha / 2)
        y = sparse.diags(people) @ x @ sparse.diags(np.power(popularity, -c.beta))
        search = ItemItemRecommender(K=c.neighbours + 1, num_threads=0)  # + itself
        search.fit(sparse.csr_matrix(y, dtype=np.float64), show_progress=False)
        gram = sparse.csr_matrix(search.similarity, dtype=np.float32)
        gram.setdiag(0.0)  # no self-loops
        gram.eliminate_zeros()
        walk = sparse.diags(np.power(popularity, c.beta - c.alpha).astype(np.float32)) @ gram
        self.similarity = _top_per_row(sparse.csr_matrix(walk, dtype=np.float32), c.neighbours)


def _top_per_row(m: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Each row's ``k`` largest entries (the search kept one more, for the item itself)."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))  # by row, then largest first
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - m.indptr[rows[order]]
    m.data[rank >= k] = 0.0
    m.eliminate_zeros()
    return m
