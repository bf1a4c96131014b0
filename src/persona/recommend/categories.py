"""Which categories each item belongs to, and how a person's history spreads over them."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

from persona.recommend.dataset import Interactions
from persona.recommend.scores import dense_product


class CategoryIndex:
    """Items x categories, and a person's category shares derived from a history row."""

    def __init__(self, data: Interactions) -> None:
        names = sorted({c for cats in data.item_table.categories for c in cats})
        self.names = names
        position = {name: i for i, name in enumerate(names)}
        rows = [i for i, cats in enumerate(data.item_table.categories) for _ in cats]
        cols = [position[c] for cats in data.item_table.categories for c in cats]
        self.matrix = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(data.n_items, max(1, len(names))),
        )
        self.item_norm = sparse.csr_matrix(normalize(self.matrix), dtype=np.float32)

    def shares(self, history: sparse.csr_matrix) -> sparse.csr_matrix:
        """Rows x categories: the share of each category among the history's items."""
        counts = sparse.csr_matrix(history @ self.matrix)
        return normalize(counts, norm="l1")

    def mix(self, history: sparse.csr_matrix) -> sparse.csr_matrix:
        """Rows x categories: the history's category counts, unit length."""
        return sparse.csr_matrix(normalize(history @ self.matrix), dtype=np.float32)

    def affinity(self, history: sparse.csr_matrix) -> np.ndarray:
        """Rows x items: cosine between the person's category mix and each item's categories
        (zero for the items sharing no category with the history). Multiplied dense: nearly
        every item shares a category with a history, and the categories are few."""
        return dense_product(self.mix(history), self.item_norm)

    def leaders(self, scores: np.ndarray, n: int) -> sparse.csr_matrix:
        """Categories x items: 1 for each category's ``n`` best items by ``scores``."""
        members = self.matrix.tocoo()
        order = np.lexsort((members.row, -scores[members.row], members.col))
        items, categories = members.row[order], members.col[order]
        starts = np.searchsorted(categories, np.arange(self.matrix.shape[1]))
        kept = (np.arange(len(items)) - starts[categories]) < n
        return sparse.csr_matrix(
            (np.ones(int(kept.sum()), dtype=np.float32), (categories[kept], items[kept])),
            shape=(self.matrix.shape[1], self.matrix.shape[0]),
        )
