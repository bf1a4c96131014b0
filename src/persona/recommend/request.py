"""What the pipeline is asked: for whom (their history), when, and in which context."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
from scipy import sparse

from persona.recommend.dataset import IntArray, Interactions, history_matrix

RECENT_ITEMS = 10  # how many of the latest items describe what a person is into right now


@dataclass(frozen=True)
class History:
    """One person's interactions in time order (item indices of the fitted data)."""

    items: IntArray
    times_s: IntArray

    @classmethod
    def empty(cls) -> History:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def recent(self, n: int = RECENT_ITEMS) -> IntArray:
        return self.items[-n:]


class Histories(Sequence[History]):
    """Every person's history, by person index, as two flat arrays in person order and the
    offset of each person: a history is two views made when asked. (A list of a million
    histories holds two million arrays: 0.7 GB and seconds to build at 10M events.)"""

    def __init__(self, items: IntArray, times_s: IntArray, offsets: IntArray) -> None:
        self._items, self._times, self._offsets = items, times_s, offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, person: int) -> History: ...
    @overload
    def __getitem__(self, person: slice) -> list[History]: ...
    def __getitem__(self, person: int | slice) -> History | list[History]:
        if isinstance(person, slice):
            return [self[i] for i in range(*person.indices(len(self)))]
        if not -len(self) <= person < len(self):
            raise IndexError(person)
        person %= len(self)
        start, end = self._offsets[person], self._offsets[person + 1]
        return History(self._items[start:end], self._times[start:end])


@dataclass(frozen=True)
class RequestBlock:
    """Requests ranked together: their histories, moments and context."""

    histories: Sequence[History]
    as_of_s: IntArray
    hours: IntArray  # hour of day of each request (0-23), a context feature
    # Each request's device and country, as codes of the fitted data (``ContextColumns``;
    # -1: unknown), by field: context features.
    contexts: Mapping[str, IntArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.histories)


@dataclass(frozen=True)
class SourceInput:
    """A block of requests as the candidate sources see it."""

    history: sparse.csr_matrix  # rows x items, 1 where the person interacted
    recent: sparse.csr_matrix  # the same for the latest RECENT_ITEMS items only
    as_of_s: IntArray
    # What a source computed for this block that another source reuses, by the source that
    # computed it (the trend at each row's moment, which category trending weighs).
    shared: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)


def source_input(block: RequestBlock, n_items: int) -> SourceInput:
    return SourceInput(
        history=history_matrix([h.items for h in block.histories], n_items),
        recent=history_matrix([h.recent() for h in block.histories], n_items),
        as_of_s=block.as_of_s,
    )


def known_candidates(data: Interactions, found: Mapping[str, Iterable[str]]) -> dict[str, IntArray]:
    """Candidate item ids by source as indices of ``data``: ids it does not know are left
    out, and so is a source left with none (the batch ranking and serving alike)."""
    indices = {name: data.item_indices(ids) for name, ids in found.items()}
    return {name: found for name, found in indices.items() if len(found)}
