"""The in-memory view of interactions and items that every recommender trains and scores on.

The same structure is built from the store for serving and from the evaluation split offline,
so the pipeline that answers the API is the one that is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ItemTable:
    """Item metadata by item index (the order of ``Interactions.item_ids``)."""

    titles: list[str]
    categories: list[list[str]]
    tags: list[list[str]]
    created_at_ms: IntArray
    available: npt.NDArray[np.bool_]

    @classmethod
    def bare(cls, n_items: int) -> ItemTable:
        """Metadata for items the catalog knows nothing about."""
        return cls(
            titles=[""] * n_items,
            categories=[[] for _ in range(n_items)],
            tags=[[] for _ in range(n_items)],
            created_at_ms=np.zeros(n_items, dtype=np.int64),
            available=np.ones(n_items, dtype=np.bool_),
        )


CONTEXT_FIELDS = ("device", "country")  # what of an event's context the recommenders use
# The most frequent values of a field kept apart; rarer ones count as no value (a bound on the
# tables of ``features.ContextLift`` whatever a site sends as its devices).
MAX_CONTEXT_VALUES = 1_000


@dataclass(frozen=True)
class ContextColumns:
    """The context each interaction happened in: for each of ``CONTEXT_FIELDS``, a code per
    row into that field's values (lower-cased, most frequent first), -1 where none was sent."""

    values: dict[str, list[str]]
    codes: dict[str, IntArray]

    @classmethod
    def from_json(cls, documents: pa.Array | pa.ChunkedArray) -> ContextColumns:
        """From each event's context as JSON text (null: none). Each distinct text is parsed
        once: a site that sends a few contexts over millions of events parses a few."""
        encoded = pc.dictionary_encode(documents)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        parsed = [orjson.loads(text) for text in encoded.dictionary.to_pylist()]
        values: dict[str, list[str]] = {}
        codes: dict[str, IntArray] = {}
        for name in CONTEXT_FIELDS:
            per_text = pa.array([_context_value(d, name) for d in parsed], pa.string())
            per_row = per_text.take(encoded.indices)
            counted = pc.value_counts(per_row.drop_null()).flatten()
            by_count = sorted(
                zip(counted[0].to_pylist(), counted[1].to_pylist(), strict=True),
                key=lambda pair: (-pair[1], pair[0]),
            )
            kept = [value for value, _ in by_count[:MAX_CONTEXT_VALUES]]
            found = pc.index_in(per_row, value_set=pa.array(kept, pa.string()))
            values[name] = kept
            codes[name] = np.asarray(pc.fill_null(found, -1), dtype=np.int64)
        return cls(values, codes)

    def take(self, rows: IntArray) -> ContextColumns:
        return ContextColumns(self.values, {name: c[rows] for name, c in self.codes.items()})

    def fields(self) -> list[str]:
        """The fields some interaction has a value of."""
        return [name for name in CONTEXT_FIELDS if self.values.get(name)]

    def code(self, name: str, value: str | None) -> int:
        """The code of a value (-1: unknown, or none)."""
        if not value:
            return -1
        return self._codes.get(name, {}).get(value.strip().lower(), -1)

    @cached_property
    def _codes(self) -> dict[str, dict[str, int]]:
        return {name: {v: i for i, v in enumerate(found)} for name, found in self.values.items()}


def _context_value(document: object, name: str) -> str | None:
    value = document.get(name) if isinstance(document, dict) else None
    if not isinstance(value, str):
        return None
    return value.strip().lower() or None


@dataclass(frozen=True)
class Interactions:
    """One row per interaction, with users and items as dense indices.

    ``user_ids[u]`` and ``item_ids[i]`` map indices back to external ids. ``weights`` is the
    strength of each interaction (1.0 for a rating under the evaluation protocol).
    """

    user_ids: list[str]
    item_ids: list[str]
    users: IntArray
    items: IntArray
    timestamps_ms: IntArray
    weights: FloatArray
    values: FloatArray  # the event's value (rating, revenue) or NaN
    item_table: ItemTable
    context: ContextColumns | None = None  # None: the interactions come without one
    _user_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _item_index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._user_index.update((u, i) for i, u in enumerate(self.user_ids))
        self._item_index.update((u, i) for i, u in enumerate(self.item_ids))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_index(self, user_id: str) -> int | None:
        return self._user_index.get(user_id)

    def item_index(self, item_id: str) -> int | None:
        return self._item_index.get(item_id)

    def item_indices(self, item_ids: Iterable[str]) -> IntArray:
        """The indices of the ids this data knows, in their order (unknown ids left out)."""
        found = (self._item_index.get(i) for i in item_ids)
        return np.asarray([j for j in found if j is not None], dtype=np.int64)

    def subset(self, rows: IntArray) -> Interactions:
        """The given interactions only, with the same user and item indices."""
        return Interactions(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            users=self.users[rows],
            items=self.items[rows],
            timestamps_ms=self.timestamps_ms[rows],
            weights=self.weights[rows],
            values=self.values[rows],
            item_table=self.item_table,
            context=None if self.context is None else self.context.take(rows),
        )

    def matrix(self) -> sparse.csr_matrix:
        """Users x items, summing the weights of repeated interactions."""
        m = sparse.csr_matrix(
            (self.weights, (self.users, self.items)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        m.sum_duplicates()
        return m

    def history_rows(self, histories: Sequence[Sequence[int] | IntArray]) -> sparse.csr_matrix:
        """A users x items matrix for histories given as item indices (weight 1 each)."""
        return history_matrix(histories, self.n_items)


def history_matrix(
    histories: Sequence[Sequence[int] | IntArray], n_items: int
) -> sparse.csr_matrix:
    """Rows x items with 1 for every item of each history (repeats count once)."""
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(h) for h in histories])
    if indptr[-1]:
        indices = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    else:
        indices = np.zeros(0, dtype=np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    m = sparse.csr_matrix((data, indices, indptr), shape=(len(histories), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m
