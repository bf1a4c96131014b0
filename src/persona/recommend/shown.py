"""What people were shown in lists, and what they clicked there: lessons for the ranker.

What a person did next says which items they chose; a list they were shown also says which
items they saw and passed over. A page reports a served list with an ``impression`` per item it
showed and a ``click`` per item chosen, each naming the list (the decision's ``decision_id``,
or a ``list_id`` property for a list got otherwise) and the item's ``position`` in it. Every
list with a click and at least two items shown becomes a group of the ranker's examples: its
items, labelled by the clicks, among the examples of the people the ranker learns from; what
it is measured on (early stopping, the model set's validation) stays what people did next
unprompted, which no position biased.

People see and click the top of a list more, whatever is there: a ranker that learned from
clicks as they come would learn to keep at the top whatever was there before. Each example
carries the position its item was shown at, and LightGBM's unbiased LambdaMART (its
``position`` data) learns how much being at each position adds, so that what the ranker learns
is the items' part. Examples of what came next, never shown by position, share one position of
their own (``NOT_SHOWN``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from persona.recommend.dataset import IntArray, Interactions

NOT_SHOWN = 0  # the position of the examples of what came next
MAX_POSITION = 30  # lower positions are told apart; those below share the last one
UNKNOWN_POSITION = MAX_POSITION + 1  # shown, at a position the page did not say


@dataclass(frozen=True)
class ShownLists:
    """Lists with a click, each a person's (fitted index) at the moment of its first
    impression: its items in the order shown, their positions, and which were clicked."""

    people: IntArray  # per list
    moments_s: IntArray  # per list
    offsets: IntArray  # list ``k``'s items are ``items[offsets[k]:offsets[k + 1]]``
    items: IntArray
    positions: IntArray
    clicked: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.people)

    @classmethod
    def empty(cls) -> ShownLists:
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing, np.zeros(1, dtype=np.int64), nothing, nothing, nothing > 0)

    @classmethod
    def from_columns(cls, shown: pa.Table, data: Interactions) -> ShownLists:
        """From ``Storage.shown_columns``: rows of people and items ``data`` does not know are
        left out; a list is one list id shown to one person."""
        people = np.asarray(
            pc.fill_null(pc.index_in(shown["profile_key"], pa.array(data.user_ids)), -1),
            dtype=np.int64,
        )
        items = np.asarray(
            pc.fill_null(pc.index_in(shown["item_id"], pa.array(data.item_ids)), -1),
            dtype=np.int64,
        )
        lists = pc.dictionary_encode(shown["list_id"]).combine_chunks()
        list_codes = np.asarray(lists.indices, dtype=np.int64)
        clicks = np.asarray(pc.equal(shown["type"], "click"), dtype=np.bool_)
        times_s = np.asarray(shown["occurred_at_ms"], dtype=np.int64) // 1000
        given = np.asarray(pc.fill_null(shown["position"], -1), dtype=np.int64)
        positions = np.where(given >= 0, np.minimum(given, MAX_POSITION), UNKNOWN_POSITION)
        positions = np.maximum(positions, 1)  # 0 and 1 both say "first"
        keep = (people >= 0) & (items >= 0)
        people, items, list_codes = people[keep], items[keep], list_codes[keep]
        clicks, times_s, positions = clicks[keep], times_s[keep], positions[keep]
        if not len(people):
            return cls.empty()
        # One row per (list, person, item): shown at its best position, clicked if any click.
        lists_of_people, group = np.unique(
            np.stack([list_codes, people]), axis=1, return_inverse=True
        )
        pair, row = np.unique(np.stack([group.ravel(), items]), axis=1, return_inverse=True)
        row = row.ravel()
        best = np.full(pair.shape[1], UNKNOWN_POSITION, dtype=np.int64)
        np.minimum.at(best, row, positions)
        chosen = np.zeros(pair.shape[1], dtype=np.bool_)
        np.logical_or.at(chosen, row, clicks)
        first_s = np.full(lists_of_people.shape[1], np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_s, group.ravel(), times_s)
        # Lists with a click and something passed over, their items in the order shown.
        groups = pair[0]
        sizes = np.bincount(groups, minlength=lists_of_people.shape[1])
        clicked_lists = np.bincount(groups, weights=chosen, minlength=len(sizes)) > 0
        wanted = np.flatnonzero(clicked_lists & (sizes >= 2))
        rows = np.flatnonzero(np.isin(groups, wanted))
        rows = rows[np.lexsort((pair[1][rows], best[rows], groups[rows]))]
        counts = np.bincount(groups[rows], minlength=len(sizes))[wanted]
        offsets = np.zeros(len(wanted) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(
            people=lists_of_people[1][wanted],
            moments_s=first_s[wanted],
            offsets=offsets,
            items=pair[1][rows],
            positions=best[rows],
            clicked=chosen[rows],
        )

    def of(self, k: int) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
        """List ``k``'s items, positions and clicks."""
        start, end = self.offsets[k], self.offsets[k + 1]
        return self.items[start:end], self.positions[start:end], self.clicked[start:end]

    def by_person(self) -> dict[int, list[int]]:
        """The lists of each person, by person index."""
        found: dict[int, list[int]] = {}
        for k, person in enumerate(self.people.tolist()):
            found.setdefault(person, []).append(k)
        return found
