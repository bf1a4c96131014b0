"""Folding a batch at once gives the state of folding its events one by one, also through ingest."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.catalog.schema import ItemIn
from persona.clock import FakeClock
from persona.engine import Engine
from persona.profiles.aggregate import AggregateRules, FoldEvent, ProfileState
from tests.conftest import open_engine
from tests.profiles.test_aggregate import CATEGORIES, RULES, assert_same, events_strategy

# one item lists a category twice: its share is still split by the length of the list
CATEGORIES_WITH_REPEATS = {**CATEGORIES, "i4": ["drama", "drama", "action"]}


def categories_of(event: FoldEvent) -> list[str]:
    return CATEGORIES_WITH_REPEATS.get(event.item_id or "", [])


def one_by_one(events: list[FoldEvent], rules: AggregateRules = RULES) -> ProfileState:
    state = ProfileState()
    for event in events:
        state.apply(event, categories_of(event), rules)
    return state


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.lists(st.integers(0, 40), max_size=4))
def test_batches_fold_like_single_events(events: list[FoldEvent], cuts: list[int]) -> None:
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    state = ProfileState()
    for start, end in itertools.pairwise(bounds):
        state.apply_many([(e, categories_of(e)) for e in events[start:end]], RULES)
    assert_same(state, one_by_one(events))


def test_a_batch_bridges_sessions_and_keeps_the_newest_context() -> None:
    minute = 60_000
    state = one_by_one(
        [FoldEvent("a", "view", 0), FoldEvent("b", "view", 100 * minute, context={"d": "old"})]
    )
    state.apply_many(
        [
            (FoldEvent("c", "view", 75 * minute, context={"d": "mid"}), []),
            (FoldEvent("d", "view", 25 * minute), []),
            (FoldEvent("f", "view", 50 * minute), []),
            (FoldEvent("e", "view", 100 * minute, context={"d": "new"}), []),
        ],
        RULES,
    )
    assert state.sessions == [(0, 100 * minute)]
    assert state.last_context == {"d": "new"}  # same time as "b", greater event id
    assert state.event_count == 6


def test_empty_batch_changes_nothing() -> None:
    state = one_by_one([FoldEvent("a", "purchase", 5, "i1", 2.5)])
    before = state.to_dict()
    state.apply_many([], RULES)
    assert state.to_dict() == before


def _batch() -> list[dict[str, Any]]:
    t0 = 1_700_000_000
    anonymous = {"anonymous_id": "visitor"}
    return [
        {"event_id": "v1", "type": "view", "item_id": "i1", "timestamp": t0, **anonymous},
        {"event_id": "u1", "type": "view", "user_id": "ann", "item_id": "i2", "timestamp": t0 + 5},
        {
            "event_id": "link",
            "type": "identify",
            "user_id": "ann",
            "anonymous_id": "visitor",
            "timestamp": t0 + 10,
        },
        {"event_id": "v2", "type": "click", "item_id": "i3", "timestamp": t0 + 20, **anonymous},
        {
            "event_id": "other",
            "type": "identify",
            "user_id": "bob",
            "anonymous_id": "visitor",
            "timestamp": t0 + 30,
        },
        {"event_id": "b1", "type": "purchase", "user_id": "bob", "value": 3.5, "timestamp": t0},
    ]


def _stored(engine: Engine) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    with engine.storage.read() as uow:
        states = {k: r.state for k, r in uow.profiles.load(["u:ann", "u:bob", "a:visitor"]).items()}
        keys = {e.event_id: e.profile_key for e in uow.events.iter_all()}
        links = uow.profiles.resolve_aliases(["a:visitor"])
    return states, keys, links


@pytest.fixture
def engines(tmp_path: Path, database_url: str, clock: FakeClock) -> Any:
    whole = open_engine(tmp_path / "whole", database_url, clock)
    single = open_engine(tmp_path / "single", f"sqlite:///{tmp_path / 'single.db'}", clock)
    yield whole, single
    whole.close()
    single.close()


def test_identify_inside_a_batch_equals_one_event_per_call(engines: tuple[Engine, Engine]) -> None:
    whole, single = engines
    for engine in engines:
        engine.catalog.upsert(
            [
                ItemIn(item_id="i1", categories=["drama"]),
                ItemIn(item_id="i2", categories=["drama", "comedy"]),
                ItemIn(item_id="i3", categories=["action"]),
            ]
        )
    assert whole.ingest.ingest(_batch()).accepted == 6
    for event in _batch():
        assert single.ingest.ingest([event]).accepted == 1
    states, keys, links = _stored(whole)
    single_states, single_keys, single_links = _stored(single)
    assert (keys, links) == (single_keys, single_links)
    assert states.keys() == single_states.keys()
    for key, state in states.items():
        expected = dict(single_states[key])
        affinity, expected_affinity = state["affinity"], expected.pop("affinity")
        assert {k: v for k, v in state.items() if k != "affinity"} == expected
        assert affinity == pytest.approx(expected_affinity, rel=1e-12)
    assert set(states) == {"u:ann", "u:bob"}  # the anonymous profile was merged away
    assert links == {"a:visitor": "u:ann"}  # the first link wins
    assert keys["v1"] == keys["v2"] == "u:ann"
    assert states["u:ann"]["counts"] == {"click": 1, "identify": 1, "view": 2}
    assert set(states["u:ann"]["affinity"]) == {"drama", "comedy", "action"}
