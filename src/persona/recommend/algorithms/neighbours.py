"""Item-item neighbours from implicit's cosine and BM25 recommenders."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning
from scipy import sparse

from persona.recommend.algorithms.base import ItemSimilarityScorer, binary
from persona.recommend.dataset import Interactions


@dataclass(frozen=True)
class ItemKNNConfig:
    """``neighbourhood`` says whose nearest neighbours count.

    "history": each history item passes its similarity on to its ``neighbours`` nearest items
    (implicit's own ``recommend``); "candidate": each item is scored from its own
    ``neighbours`` nearest items that are in the history (the classic item-based KNN).
    """

    neighbours: int = 100
    similarity: Literal["cosine", "bm25"] = "cosine"
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    neighbourhood: Literal["history", "candidate"] = "history"


class ItemKNN(ItemSimilarityScorer):
    """Score = the summed similarities of the history's items, in a top-``neighbours`` matrix."""

    name = "itemknn"

    def __init__(self, config: ItemKNNConfig | None = None) -> None:
        super().__init__(config or ItemKNNConfig())

    def fit(self, data: Interactions) -> None:
        c = self.config
        model: CosineRecommender | BM25Recommender
        if c.similarity == "bm25":
            model = BM25Recommender(K=c.neighbours, K1=c.bm25_k1, B=c.bm25_b, num_threads=0)
        else:
            model = CosineRecommender(K=c.neighbours, num_threads=0)  # every core
        with warnings.catch_warnings():
            # implicit converts an intermediate matrix of its own and warns about it.
            warnings.simplefilter("ignore", ParameterWarning)
            model.fit(binary(data.matrix()), show_progress=False)
        # implicit keeps each item's top neighbours in its row and scores a history as
        # ``history @ similarity``; the transpose keeps them in its column instead.
        similarity = sparse.csr_matrix(model.similarity, dtype=np.float32)
        if c.neighbourhood == "candidate":
            similarity = similarity.T.tocsr()
        self.similarity = similarity
