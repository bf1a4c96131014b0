"""Interactions counted as of any moment: every answer equals two searches per item."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.clock import DAY_S
from persona.recommend.dataset import Interactions, ItemTable
from persona.recommend.timeline import ItemTimeline


def interactions_at(items: np.ndarray, times_ms: np.ndarray, n_items: int) -> Interactions:
    return Interactions(
        user_ids=["p"],
        item_ids=[f"i{i}" for i in range(n_items)],
        users=np.zeros(len(items), dtype=np.int64),
        items=items.astype(np.int64),
        timestamps_ms=times_ms.astype(np.int64),
        weights=np.ones(len(items), dtype=np.float32),
        values=np.full(len(items), np.nan, dtype=np.float32),
        item_table=ItemTable.bare(n_items),
    )


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(0, 40 * DAY_S), min_size=1, max_size=300),
    moments=st.lists(st.integers(-DAY_S, 45 * DAY_S), min_size=1, max_size=12),
    seed=st.integers(0, 1_000),
)
def test_window_counts_of_moments_in_any_order_are_the_searched_counts(
    times: list[int], moments: list[int], seed: int
) -> None:
    """Moving forward from the latest counts (as serving does, second after second), going
    back in time, or jumping past many interactions: the same counts as the searches."""
    items = np.random.default_rng(seed).integers(0, 80, len(times))
    timeline = ItemTimeline(interactions_at(items, np.asarray(times) * 1000, n_items=80))
    every = np.arange(80)
    for moment in [*moments, *sorted(moments), *(m + 1 for m in sorted(moments))]:
        for days in (1.0, 7.0):
            expected = timeline.count_between(every, moment - int(days * DAY_S), moment)
            assert timeline.window_counts(moment, days).tolist() == expected.tolist()
