"""The profile fold is commutative: any order, or any split then merge, gives the same state."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.profiles.aggregate import AggregateRules, FoldEvent, ProfileState

RULES = AggregateRules(
    session_gap_ms=30 * 60_000,
    half_life_ms=7 * 86_400_000.0,
    recent_limit=3,
    weights={"view": 1.0, "purchase": 5.0},
    purchase_types=frozenset({"purchase"}),
)
CATEGORIES = {"i1": ["drama"], "i2": ["drama", "comedy"], "i3": ["action"], "i4": []}

events_strategy = st.lists(
    st.builds(
        FoldEvent,
        event_id=st.uuids().map(str),
        type=st.sampled_from(["view", "purchase", "rate"]),
        occurred_at_ms=st.integers(1_600_000_000_000, 1_600_000_000_000 + 20 * 86_400_000),
        item_id=st.sampled_from(["i1", "i2", "i3", "i4", None]),
        value=st.one_of(st.none(), st.floats(0, 1000, allow_nan=False).map(lambda v: round(v, 2))),
        context=st.one_of(
            st.none(), st.fixed_dictionaries({"device": st.sampled_from(["mobile", "desktop"])})
        ),
    ),
    max_size=40,
    unique_by=lambda e: e.event_id,
)


def fold(events: list[FoldEvent]) -> ProfileState:
    state = ProfileState()
    for event in events:
        state.apply(event, CATEGORIES.get(event.item_id or "", []), RULES)
    return state


def assert_same(a: ProfileState, b: ProfileState) -> None:
    left, right = a.to_dict(), b.to_dict()
    left_affinity, right_affinity = left.pop("affinity"), right.pop("affinity")
    assert left == right
    assert left_affinity.keys() == right_affinity.keys()
    for name, score in left_affinity.items():
        assert score == pytest.approx(right_affinity[name], rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False))
def test_any_order_gives_the_same_state(events: list[FoldEvent], rng: random.Random) -> None:
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert_same(fold(events), fold(shuffled))


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.integers(0, 40))
def test_merging_two_halves_equals_folding_all(events: list[FoldEvent], cut: int) -> None:
    left, right = fold(events[:cut]), fold(events[cut:])
    left.merge(right, RULES)
    assert_same(left, fold(events))


@settings(max_examples=50, deadline=None)
@given(events_strategy)
def test_state_survives_serialization(events: list[FoldEvent]) -> None:
    state = fold(events)
    assert ProfileState.from_dict(state.to_dict()) == state


def test_sessions_split_on_a_thirty_minute_gap() -> None:
    minute = 60_000
    times = [0, 10 * minute, 39 * minute, 70 * minute, 200 * minute]
    state = fold([FoldEvent(f"e{t}", "view", t) for t in times])
    assert state.sessions == [
        (0, 39 * minute),
        (70 * minute, 70 * minute),
        (200 * minute, 200 * minute),
    ]
    # a late event bridges the first two sessions
    state.apply(FoldEvent("late", "view", 55 * minute), [], RULES)
    assert state.session_count == 2


def test_recent_items_keep_the_newest_distinct_items() -> None:
    events = [
        FoldEvent(f"e{i}", "view", t, item)
        for i, (t, item) in enumerate([(1, "a"), (5, "b"), (3, "a"), (9, "c"), (7, "d")])
    ]
    assert [item for item, _, _ in fold(events).recent] == ["c", "d", "b"]


def test_affinities_decay_with_the_half_life() -> None:
    week = 7 * 86_400_000
    state = fold([FoldEvent("old", "view", 0, "i3"), FoldEvent("new", "view", week, "i1")])
    assert state.affinity["drama"] == pytest.approx(1.0)
    assert state.affinity["action"] == pytest.approx(0.5)


def test_revenue_is_exact_and_recency_uses_purchases() -> None:
    events = [FoldEvent(f"p{i}", "purchase", i * 1000, None, 0.1) for i in range(10)]
    state = fold([*events, FoldEvent("v", "view", 99_000)])
    assert state.revenue == 1.0 and state.purchases == 10 and state.last_purchase_ms == 9000
