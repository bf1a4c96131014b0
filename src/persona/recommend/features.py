"""The ranker's view of one (person, candidate item) pair.

Features are computed for a block of requests at once from the candidate sources' score
matrices and from facts known at each request's moment (``as_of``): nothing after it is used,
offline or online. The names are part of a saved model: a model is only loaded with the names
it was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from persona.clock import DAY_S
from persona.recommend.categories import CategoryIndex
from persona.recommend.dataset import IntArray, Interactions
from persona.recommend.request import RequestBlock, SourceInput
from persona.recommend.scores import Scores
from persona.recommend.timeline import ItemTimeline

FloatMatrix = npt.NDArray[np.float32]
TREND_WINDOWS_DAYS = (7.0, 30.0, 365.0)


class ItemFacts:
    """What the feature builder needs to know about items and people, fitted once."""

    def __init__(self, data: Interactions) -> None:
        self.n_items = data.n_items
        self.timeline = ItemTimeline(data)
        self.categories = CategoryIndex(data)
        self.log_popularity = np.log1p(self.timeline.total_counts)
        created = data.item_table.created_at_ms // 1000
        self.created_s = np.where(created > 0, created, -1).astype(np.int64)
        self.context = ContextLift(data, self.timeline.total_counts)


class ContextLift:
    """How much more an item is chosen in one context (a device, a country) than overall: the
    log of its share of the context's interactions over its share of all of them, each share
    smoothed towards the overall one by ``PRIOR_INTERACTIONS`` (a context seen a few times
    says little). Counted over the fitted interactions, which end before the moment of the
    examples the ranker learns from."""

    PRIOR_INTERACTIONS = 50.0

    def __init__(self, data: Interactions, item_counts: npt.NDArray[np.float32]) -> None:
        """``item_counts``: each item's interactions in ``data`` (``ItemTimeline``'s)."""
        self._counts: dict[str, sparse.csr_matrix] = {}
        self._totals: dict[str, npt.NDArray[np.float64]] = {}
        counts = item_counts.astype(np.float64)
        self._overall = (counts + 1.0) / (counts.sum() + data.n_items)
        if data.context is None:
            return
        for name in data.context.fields():
            codes = data.context.codes[name]
            known = codes >= 0
            per_value = sparse.csr_matrix(
                (np.ones(int(known.sum())), (codes[known], data.items[known])),
                shape=(len(data.context.values[name]), data.n_items),
            )
            per_value.sum_duplicates()
            self._counts[name] = per_value
            self._totals[name] = np.asarray(per_value.sum(axis=1)).ravel()

    def lift(self, name: str, codes: IntArray, items: IntArray) -> FloatMatrix:
        """The lift of each (context value, item) pair; NaN where the value is unknown."""
        out = np.full(len(items), np.nan, dtype=np.float32)
        per_value = self._counts.get(name)
        known = np.flatnonzero(codes >= 0)
        if per_value is None or not len(known):
            return out
        value, item = codes[known], items[known]
        count = np.asarray(per_value[value, item]).ravel()
        overall = self._overall[item]
        prior = self.PRIOR_INTERACTIONS
        share = (count + prior * overall) / (self._totals[name][value] + prior)
        out[known] = np.log(share / overall)
        return out


def feature_names(source_names: Sequence[str], context_fields: Sequence[str] = ()) -> list[str]:
    names = []
    for source in source_names:
        names += [f"{source}_score", f"{source}_rank"]
    names += [
        "sources_proposing",
        "item_log_popularity",
        *(f"item_trend_{int(d)}d" for d in TREND_WINDOWS_DAYS),
        "item_days_since_first_seen",
        "item_days_since_created",
        "person_log_history",
        "person_mean_log_popularity",
        "popularity_gap",
        "person_mean_created_days",
        "created_gap_days",
        "category_affinity",
        "recent_category_affinity",
        "days_since_related",
        "hour",
        *(f"context_{name}_lift" for name in context_fields),
    ]
    return names


def context_fields_of(names: Sequence[str]) -> list[str]:
    """The context fields a ranker trained with ``names`` (``feature_names``) uses."""
    return [
        n.removeprefix("context_").removesuffix("_lift")
        for n in names
        if n.startswith("context_") and n.endswith("_lift")
    ]


def build_features(
    facts: ItemFacts,
    block: RequestBlock,
    inputs: SourceInput,
    candidates: Sequence[IntArray],
    source_scores: Mapping[str, Scores],
    source_ranks: Mapping[str, FloatMatrix],
    context_fields: Sequence[str] = (),
) -> FloatMatrix:
    """One row per (request, candidate) in the order of ``candidates``; see ``feature_names``.

    ``source_scores`` give each source's score of any (row, item); ``source_ranks`` hold each
    candidate's position in the source's proposals (NaN where it did not propose it), in the
    order of the candidates."""
    rows = np.repeat(np.arange(len(block)), [len(c) for c in candidates])
    items = np.concatenate(candidates) if candidates else np.zeros(0, dtype=np.int64)
    as_of = block.as_of_s[rows]
    columns: list[np.ndarray] = []
    proposing = np.zeros(len(items), dtype=np.float32)
    for name in source_scores:
        columns.append(source_scores[name].at(rows, items))
        rank = source_ranks[name]
        proposing += np.isfinite(rank)
        columns.append(rank)
    columns.append(proposing)

    timeline = facts.timeline
    columns.append(facts.log_popularity[items])
    for days in TREND_WINDOWS_DAYS:
        columns.append(np.log1p(timeline.count_before(items, as_of, days)))
    first_seen = timeline.first_seen_s[items]
    columns.append(_days_between(first_seen, as_of))
    columns.append(_days_between(facts.created_s[items], as_of))

    person = _person_features(facts, block, inputs)
    columns.append(person.log_history[rows])
    columns.append(person.mean_log_popularity[rows])
    columns.append(facts.log_popularity[items] - person.mean_log_popularity[rows])
    columns.append(person.mean_created_days[rows])
    columns.append(_days_between(facts.created_s[items], as_of) - person.mean_created_days[rows])

    item_categories = facts.categories.matrix[items]
    columns.append(_row_dot(person.category_mix[rows], item_categories))
    columns.append(_row_dot(person.recent_category_mix[rows], item_categories))
    columns.append(_days_since_related(person.last_category_time_s, rows, item_categories, as_of))
    columns.append(block.hours[rows].astype(np.float32))
    unknown = np.full(len(block), -1, dtype=np.int64)
    for name in context_fields:
        codes = block.contexts.get(name, unknown)
        columns.append(facts.context.lift(name, codes[rows], items))
    return np.column_stack([np.asarray(c, dtype=np.float32) for c in columns])


@dataclass(frozen=True)
class _PersonFeatures:
    log_history: FloatMatrix
    mean_log_popularity: FloatMatrix
    mean_created_days: FloatMatrix
    category_mix: FloatMatrix  # rows x categories, unit length
    recent_category_mix: FloatMatrix
    last_category_time_s: npt.NDArray[np.int64]  # rows x categories, -1 when never


def _person_features(facts: ItemFacts, block: RequestBlock, inputs: SourceInput) -> _PersonFeatures:
    """Per row of the block, from its history; computed for the whole block at once."""
    n = len(block)
    item_cats = facts.categories.matrix
    lengths = np.asarray([len(h.items) for h in block.histories], dtype=np.int64)
    items = np.concatenate([h.items for h in block.histories]) if n else np.zeros(0, np.int64)
    times = np.concatenate([h.times_s for h in block.histories]) if n else np.zeros(0, np.int64)
    row_of = np.repeat(np.arange(n), lengths)
    some = lengths > 0
    log_history = np.log1p(lengths).astype(np.float32)
    mean_pop = np.full(n, np.nan, dtype=np.float32)
    popularity = np.bincount(row_of, weights=facts.log_popularity[items], minlength=n)
    mean_pop[some] = popularity[some] / lengths[some]
    created = _days_between(facts.created_s[items], block.as_of_s[row_of])
    known = np.isfinite(created)
    created_sum = np.bincount(row_of[known], weights=created[known], minlength=n)
    created_count = np.bincount(row_of[known], minlength=n)
    mean_created = np.full(n, np.nan, dtype=np.float32)
    dated = created_count > 0
    mean_created[dated] = created_sum[dated] / created_count[dated]
    last_time = np.full((n, item_cats.shape[1]), -1, dtype=np.int64)
    cats = item_cats[items].tocoo()
    np.maximum.at(last_time, (row_of[cats.row], cats.col), times[cats.row])
    return _PersonFeatures(
        log_history=log_history,
        mean_log_popularity=mean_pop,
        mean_created_days=mean_created,
        category_mix=_unit_rows(inputs.history @ item_cats),
        recent_category_mix=_unit_rows(inputs.recent @ item_cats),
        last_category_time_s=last_time,
    )


def _unit_rows(m: sparse.spmatrix) -> FloatMatrix:
    dense = np.asarray(m.toarray(), dtype=np.float32)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    unit: FloatMatrix = np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)
    return unit


def _row_dot(person: FloatMatrix, item_categories: sparse.csr_matrix) -> FloatMatrix:
    """Cosine of each pair's person mix with the item's categories (0 for items without any)."""
    normalized = item_categories.multiply(1.0 / np.sqrt(np.maximum(item_categories.sum(1), 1)))
    return np.asarray(normalized.multiply(person).sum(axis=1)).ravel().astype(np.float32)


def _days_since_related(
    last_time: npt.NDArray[np.int64],
    rows: IntArray,
    item_categories: sparse.csr_matrix,
    as_of: IntArray,
) -> FloatMatrix:
    """Days since the person last touched an item sharing a category with the candidate."""
    coo = item_categories.tocoo()
    latest = np.full(item_categories.shape[0], -1, dtype=np.int64)
    np.maximum.at(latest, coo.row, last_time[rows[coo.row], coo.col])
    return np.where(latest >= 0, (as_of - latest) / DAY_S, np.nan).astype(np.float32)


def _days_between(start_s: npt.NDArray[np.int64], end_s: IntArray | np.int64) -> FloatMatrix:
    """Days from ``start_s`` to ``end_s``; NaN when the start is unknown or in the future."""
    days = (np.asarray(end_s) - start_s) / DAY_S
    valid = (start_s >= 0) & (days >= 0)
    return np.where(valid, days, np.nan).astype(np.float32)
