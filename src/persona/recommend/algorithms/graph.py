"""RP3beta: three-step random walks on the user-item graph, popularity-penalized."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

from persona.recommend.algorithms.base import ItemSimilarityScorer, binary
from persona.recommend.dataset import Interactions

BLOCK = 1024  # item rows walked at once: the dense block is BLOCK x n_items floats


@dataclass(frozen=True)
class RP3betaConfig:
    alpha: float = 0.8
    beta: float = 0.3
    neighbours: int = 200


class RP3beta(ItemSimilarityScorer):
    """Item-to-item transition probabilities raised to ``alpha``, divided by popularity^beta.

    Hand-written because no maintained library offers it; it is a few sparse products
    (Paudel et al., 2017), with each item's row pruned to its ``neighbours`` best.
    """

    name = "rp3beta"

    def __init__(self, config: RP3betaConfig | None = None) -> None:
        super().__init__(config or RP3betaConfig())

    def fit(self, data: Interactions) -> None:
        c = self.config
        x = binary(data.matrix())
        user_to_item = normalize(x, norm="l1", axis=1).power(c.alpha)
        item_to_user = normalize(x.T.tocsr(), norm="l1", axis=1).power(c.alpha)
        popularity = np.asarray(x.sum(axis=0)).ravel()
        penalty = np.power(np.maximum(popularity, 1.0), -c.beta).astype(np.float32)
        self.similarity = sparse.vstack(
            [
                _top_per_row(_walk_block(item_to_user, user_to_item, penalty, start), c.neighbours)
                for start in range(0, x.shape[1], BLOCK)
            ],
            format="csr",
        )


def _walk_block(
    item_to_user: sparse.csr_matrix,
    user_to_item: sparse.csr_matrix,
    penalty: np.ndarray,
    start: int,
) -> np.ndarray:
    """Rows ``start:start + BLOCK`` of the penalized two-step walk, dense, no self-loops."""
    stop = min(start + BLOCK, item_to_user.shape[0])
    walk: np.ndarray = (item_to_user[start:stop] @ user_to_item).toarray().astype(np.float32)
    walk *= penalty[None, :]
    walk[np.arange(stop - start), np.arange(start, stop)] = 0.0
    return walk


def _top_per_row(dense: np.ndarray, k: int) -> sparse.csr_matrix:
    k = min(k, dense.shape[1])
    keep = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(dense.shape[0]), k)
    values = np.take_along_axis(dense, keep, axis=1).ravel()
    m = sparse.csr_matrix((values, (rows, keep.ravel())), shape=dense.shape, dtype=np.float32)
    m.eliminate_zeros()
    return m
