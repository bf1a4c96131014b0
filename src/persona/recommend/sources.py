"""Candidate sources: each proposes items for a person and scores them.

A source sees the person's history as a row of a users x items matrix (the whole history and the
latest items) and the moment of the request, never the person's index, so the newest events
count without a retrain. The
collaborative algorithms of ``algorithms/`` become sources through ``ScorerSource``; the sources
defined here are the ones that need item metadata or time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from persona.recommend.algorithms.base import ItemSimilarityScorer, Scorer, binary
from persona.recommend.algorithms.factorization import ALS
from persona.recommend.categories import CategoryIndex
from persona.recommend.dataset import IntArray, Interactions
from persona.recommend.request import SourceInput
from persona.recommend.scores import (
    DenseScores,
    FactorPool,
    FactorScores,
    FloatArray,
    PairScores,
    Scores,
    SharedScores,
    SparseScores,
    entry_rows,
    row_dots,
    row_sum,
    sparse_product,
)
from persona.recommend.timeline import ItemTimeline

WORD = r"(?u)\b\w[\w-]+\b"  # words of two characters or more, hyphens kept
# Past this many items, content and category trending propose among fewer items than all
# (see each); their scores of a candidate stay exact.
FULL_CATALOG_ITEMS = 10_000
NEWEST_ITEMS = 2_000  # content's proposals on a larger catalog: the newest items
# Matrix factorization's proposals on a larger catalog: the items most interacted with (on the
# generated 100,000-item shop, the top 20,000 hold 84% of the interactions). Searching every
# item's factors for each person was a third of the batch ranking at 10M events.
FACTOR_PROPOSABLE_ITEMS = 20_000
PROPOSABLE = "proposable"  # the saved array of a source's proposable items
CATEGORY_LEADERS = 100  # category trending's on a larger catalog: each category's top items
SIMILARITY_MEMO_MAX = 10_000_000  # catalog x pool similarities kept for exploration (40 MB)


@runtime_checkable
class CandidateSource(Protocol):
    """Proposes and scores items for requests. A source proposes nothing to a request without
    history unless it says ``needs_history = False``: what it would propose is arbitrary (every
    item scores zero), and a newcomer's list is then the best-known items, not obscure ones."""

    name: str

    def fit(self, data: Interactions) -> None: ...

    def score(self, inputs: SourceInput) -> Scores: ...


@runtime_checkable
class PersistentSource(CandidateSource, Protocol):
    """A source whose fitted state is saved with the model set instead of fitted again."""

    def to_arrays(self) -> dict[str, np.ndarray]: ...

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None: ...


class ScorerSource:
    """A collaborative scorer used as a candidate source (it ignores the moment). Item
    neighbours score only the neighbours of the history (their scores stay sparse), and
    factor models keep their factors (their best items are searched without a matrix)."""

    def __init__(self, name: str, scorer: Scorer) -> None:
        self.name = name
        self.scorer = scorer
        self._pool: FactorPool | None = None  # factors: the items searched, if not all

    def fit(self, data: Interactions, earlier: CandidateSource | None = None) -> None:
        """``earlier``: this source fitted on an earlier part of the same data, which a
        factor model starts from (see ``ALS.fit``)."""
        if (
            isinstance(self.scorer, ALS)
            and isinstance(earlier, ScorerSource)
            and isinstance(earlier.scorer, ALS)
        ):
            self.scorer.fit(data, start=earlier.scorer)
        else:
            self.scorer.fit(data)
        proposable = None
        if isinstance(self.scorer, ALS) and data.n_items > FACTOR_PROPOSABLE_ITEMS:
            proposable = np.sort(most_interacted(data, FACTOR_PROPOSABLE_ITEMS))
        self._set_pool(proposable)

    def _set_pool(self, proposable: IntArray | None) -> None:
        self._pool = None
        factors = getattr(self.scorer, "item_factors", None)
        if proposable is not None and factors is not None:
            self._pool = FactorPool.of(proposable, factors)

    def score(self, inputs: SourceInput) -> Scores:
        return self.score_rows(inputs.history)

    def score_rows(self, history: sparse.csr_matrix) -> Scores:
        if isinstance(self.scorer, ItemSimilarityScorer):
            assert self.scorer.similarity is not None, "fit first"
            return SparseScores(binary(history) @ self.scorer.similarity)
        if isinstance(self.scorer, ALS):
            assert self.scorer.item_factors is not None, "fit first"
            return FactorScores(
                self.scorer.user_factors(history), self.scorer.item_factors, self._pool
            )
        return DenseScores(self.scorer.score(history))

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = self.scorer.to_arrays()
        if self._pool is not None:
            arrays[PROPOSABLE] = self._pool.items
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        own = {k: v for k, v in arrays.items() if k != PROPOSABLE}
        self.scorer = type(self.scorer).from_arrays(self.scorer.config, own)
        self._set_pool(arrays.get(PROPOSABLE))


class RecentView:
    """A sibling source's scorer applied to the person's latest items only.

    It proposes the neighbours of what was just viewed, which move up as soon as the view is
    stored; the sibling fits (and saves) the scorer, so this view costs nothing to train.
    """

    def __init__(self, name: str, sibling: ScorerSource) -> None:
        self.name = name
        self.sibling = sibling

    def fit(self, data: Interactions) -> None:
        """The sibling source fits the shared scorer."""

    def score(self, inputs: SourceInput) -> Scores:
        return self.sibling.score_rows(inputs.recent)


@dataclass(frozen=True)
class ContentConfig:
    min_df: int = 2
    max_features: int = 20_000


class ContentSimilarity:
    """Items like the ones in the history by their categories, tags and title words.

    TF-IDF over one document per item; a history is the sum of its items' vectors, so a
    brand-new item with a good description can be proposed before anyone interacted with it.

    On a large catalog (over ``FULL_CATALOG_ITEMS``) a history shares a category word with
    most items, and scoring them all for every person would cost more than the rest of the
    ranking: the source then proposes among the newest ``NEWEST_ITEMS`` items, where its
    job is (the collaborative sources know the others), and still scores any candidate.
    """

    name = "content"

    def __init__(self, config: ContentConfig | None = None) -> None:
        self.config = config or ContentConfig()
        self._vectors: sparse.csr_matrix | None = None
        self._similarity_memo: tuple[bytes, np.ndarray | sparse.csr_matrix] | None = None
        self._proposable: IntArray | None = None  # None: every item

    def fit(self, data: Interactions) -> None:
        table = data.item_table
        documents = [
            " ".join(
                [f"cat_{_token(c)}" for c in table.categories[i]]
                + [f"tag_{_token(t)}" for t in table.tags[i]]
                + [table.titles[i]]
            )
            for i in range(data.n_items)
        ]
        vectorizer = TfidfVectorizer(
            min_df=min(self.config.min_df, max(1, data.n_items)),
            max_features=self.config.max_features,
            token_pattern=WORD,
            sublinear_tf=True,
            dtype=np.float32,
        )
        try:
            vectors = vectorizer.fit_transform(documents)
        except ValueError:  # no item has any text: the source proposes nothing
            vectors = sparse.csr_matrix((data.n_items, 1), dtype=np.float32)
        self._vectors = normalize(vectors).astype(np.float32).tocsr()
        self._similarity_memo = None
        self._proposable = None
        if data.n_items > FULL_CATALOG_ITEMS:
            self._proposable = np.sort(newest_items(data, NEWEST_ITEMS))

    def score(self, inputs: SourceInput) -> Scores:
        """Cosine of the history's summed vectors with each item sharing a word with it."""
        v = self._vectors
        assert v is not None, "fit first"
        profile = sparse.csr_matrix(normalize(inputs.history @ v))
        if self._proposable is None:
            return sparse_product(profile, v)
        among = sparse.csr_matrix(profile @ v[self._proposable].T)
        candidates = sparse.csr_matrix(
            (among.data, self._proposable[among.indices], among.indptr),
            shape=(among.shape[0], v.shape[0]),
        )
        return PairScores(candidates, lambda rows, items: row_dots(profile, v, rows, items))

    def affinity(self, history: IntArray, items: IntArray) -> FloatArray:
        """How much each of a few ``items`` resembles the history: ``score``'s cosine times
        the norm of the history's summed vectors, a factor the same for every item, so the
        order is ``score``'s. Serving asks this on every request for the same exploration
        pool: the pool's similarity to every item is computed once, and a request sums a few
        of its rows."""
        assert self._vectors is not None, "fit first"
        seen = np.unique(history)
        similar = self._similarity_to_all(items)
        if isinstance(similar, np.ndarray):
            return np.asarray(similar[seen].sum(axis=0), dtype=np.float32)
        return row_sum(similar, seen)

    def _similarity_to_all(self, items: IntArray) -> np.ndarray | sparse.csr_matrix:
        """Catalog x ``items`` cosine similarities, kept for the latest ``items`` asked (a
        history's items are then a few rows): dense while the catalog allows
        (``SIMILARITY_MEMO_MAX``), sparse beyond (an item shares words with few others)."""
        assert self._vectors is not None, "fit first"
        key = np.asarray(items, dtype=np.int64).tobytes()
        memo = self._similarity_memo
        if memo is not None and memo[0] == key:
            return memo[1]
        v = self._vectors
        product = sparse.csr_matrix(v @ v[items].T, dtype=np.float32)
        similar: np.ndarray | sparse.csr_matrix = product
        if v.shape[0] * len(items) <= SIMILARITY_MEMO_MAX:
            similar = np.ascontiguousarray(product.toarray(), dtype=np.float32)
        self._similarity_memo = (key, similar)
        return similar

    def to_arrays(self) -> dict[str, np.ndarray]:
        assert self._vectors is not None
        v = self._vectors
        arrays = {
            "data": v.data,
            "indices": v.indices,
            "indptr": v.indptr,
            "shape": np.array(v.shape),
        }
        if self._proposable is not None:
            arrays[PROPOSABLE] = self._proposable
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        shape = tuple(int(x) for x in arrays["shape"])
        self._vectors = sparse.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape
        )
        self._similarity_memo = None
        self._proposable = arrays.get(PROPOSABLE)


def most_interacted(data: Interactions, n: int) -> IntArray:
    """The ``n`` items with the most interactions, most first (ties: lower index first)."""
    counts = np.bincount(data.items, minlength=data.n_items)
    return np.argsort(-counts, kind="stable")[:n].astype(np.int64)


def newest_items(data: Interactions, n: int) -> IntArray:
    """The ``n`` items that appeared last: created (by the catalog's date) or, without one,
    first interacted with; newest first."""
    first_seen = np.full(data.n_items, -1, dtype=np.int64)
    if len(data.items):
        first_seen[:] = np.iinfo(np.int64).max
        np.minimum.at(first_seen, data.items, data.timestamps_ms)
        first_seen[first_seen == np.iinfo(np.int64).max] = -1
    created = data.item_table.created_at_ms
    appeared = np.where(created > 0, created, first_seen)
    return np.argsort(-appeared, kind="stable")[:n].astype(np.int64)


def _token(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower())


@dataclass(frozen=True)
class TrendingConfig:
    windows_days: tuple[float, ...] = (7.0, 30.0, 365.0)


class Trending:
    """What many people interacted with shortly before the moment of the request."""

    name = "trending"
    needs_history = False  # the one source with something to propose to a newcomer

    def __init__(self, config: TrendingConfig | None = None) -> None:
        self.config = config or TrendingConfig()
        self.timeline: ItemTimeline | None = None
        self._moments: dict[int, tuple[FloatArray, IntArray]] = {}

    def fit(self, data: Interactions) -> None:
        self.timeline = ItemTimeline(data)
        self._moments = {}

    def score(self, inputs: SourceInput) -> Scores:
        """One list for a block at one moment (serving, the batch ranking); a row per
        moment for rows at many (the ranker's training examples)."""
        assert self.timeline is not None, "fit first"
        moments = np.asarray(inputs.as_of_s, dtype=np.int64)
        if len(moments) and (moments == moments[0]).all():
            vector, order = self.at_moment(int(moments[0]))
            return SharedScores(vector, len(moments), order)
        # Rows at many moments (the ranker's examples) cost a search per item and window;
        # category trending asks for the same block's again.
        scores = inputs.shared.get(self)
        if scores is None:
            recent = self.timeline.trending(moments, self.config.windows_days)
            scores = inputs.shared[self] = DenseScores(recent + self._tie_breaker()[None, :])
        assert isinstance(scores, DenseScores)
        return scores

    def at_moment(self, as_of_s: int) -> tuple[FloatArray, IntArray]:
        """Every item's score at one moment and the catalog in that order (memoized: the
        requests of a second, or a whole batch ranking, share them)."""
        assert self.timeline is not None, "fit first"
        found = self._moments.get(as_of_s)
        if found is None:
            recent = self.timeline.trending(np.asarray([as_of_s]), self.config.windows_days)[0]
            vector = recent + self._tie_breaker()
            found = (vector, np.argsort(-vector, kind="stable"))
            if len(self._moments) >= 4:
                self._moments.clear()
            self._moments[as_of_s] = found
        return found

    def _tie_breaker(self) -> FloatArray:
        """All-time popularity, which breaks ties where nothing happened recently (a quiet
        catalog)."""
        assert self.timeline is not None, "fit first"
        return np.float32(1e-6) * np.log1p(self.timeline.total_counts)


class CategoryTrending:
    """Trending items weighted by how much the person favours their categories.

    On a large catalog (over ``FULL_CATALOG_ITEMS``) it proposes among each of the person's
    categories' ``CATEGORY_LEADERS`` most trending items (the rest of a category trails
    them), and still scores any candidate."""

    name = "category_trending"

    def __init__(self, trending: Trending) -> None:
        self._trending = trending
        self._categories: CategoryIndex | None = None
        self._leaders: dict[int, sparse.csr_matrix] = {}  # by moment

    def fit(self, data: Interactions) -> None:
        """Indexes categories; the trending source it wraps is fitted on its own."""
        self._categories = CategoryIndex(data)
        self._leaders = {}

    def score(self, inputs: SourceInput) -> Scores:
        """Only items sharing a category with the history score: at one moment, the scores
        stay sparse (the trend is one vector for every row)."""
        categories = self._categories
        assert categories is not None, "fit first"
        trend = self._trending.score(inputs)
        if not isinstance(trend, SharedScores):
            assert isinstance(trend, DenseScores)
            affinity = categories.affinity(inputs.history)  # rows x items, in [0, 1]
            return DenseScores(affinity * trend.matrix)
        vector = trend.vector
        if categories.matrix.shape[0] <= FULL_CATALOG_ITEMS:
            # the affinity (``CategoryIndex.affinity``) times the trend
            return sparse_product(categories.mix(inputs.history), categories.item_norm, vector)
        mix = categories.mix(inputs.history)
        moment = int(inputs.as_of_s[0])
        leaders = self._leaders.get(moment)
        if leaders is None:
            leaders = categories.leaders(vector, CATEGORY_LEADERS)
            self._leaders = {moment: leaders}
        candidates = sparse.csr_matrix((mix != 0).astype(np.float32) @ leaders)
        candidates.sum_duplicates()

        def score(rows: IntArray, items: IntArray) -> FloatArray:
            return vector[items] * row_dots(mix, categories.item_norm, rows, items)

        candidates.data = score(entry_rows(candidates), candidates.indices.astype(np.int64))
        return PairScores(candidates, score)
