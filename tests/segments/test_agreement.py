"""One rule, two evaluators: the real-time one (Python) and the batch one (SQL) always agree.

Hypothesis generates rules over every construct of the language and histories of a few people
(events at various ages, purchases with values, items in categories or unknown to the catalog,
traits of every JSON type, memberships of other segments, prediction scores) and checks, on SQLite and PostgreSQL,
that both evaluators select exactly the same people at a generated evaluation time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from persona.catalog.schema import ItemFields
from persona.clock import FakeClock
from persona.engine import Engine
from persona.rules import (
    PROFILE_NUMBERS,
    And,
    Comparison,
    Count,
    Did,
    EventQuery,
    Field,
    Membership,
    Not,
    Or,
    Rule,
    SegmentRef,
    parse_rule,
    to_text,
)
from persona.segments.evaluate import ProfileFacts, compile_rule
from persona.storage import tables
from persona.storage.tables.predictions import profile_scores
from persona.storage.tables.segments import segment_memberships
from tests.conftest import open_engine

MINUTE_MS = 60_000
DAY_MS = 86_400_000
TYPES = ["view", "click", "purchase"]
ITEMS = {"i1": ["Comedy"], "i2": ["Drama", "Comedy"], "i3": []}  # "i4" is not in the catalog
USERS = ["u1", "u2", "u3", "u4"]
SEGMENTS = ["s1", "s2"]

windows = st.one_of(
    st.none(),
    st.sampled_from([30 * MINUTE_MS, 6 * 3_600_000, DAY_MS, 3 * DAY_MS, 7 * DAY_MS, 14 * DAY_MS]),
)
event_queries = st.builds(
    EventQuery,
    event_type=st.sampled_from(TYPES),
    item=st.one_of(st.none(), st.sampled_from(["i1", "i2", "i4"])),
    category=st.one_of(st.none(), st.sampled_from(["Comedy", "Drama", "Horror"])),
    window_ms=windows,
)
operators = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
numbers = st.one_of(
    st.integers(-1, 12), st.sampled_from([0.5, 1.5, 2.25, 9.99, 19.98, 0.7071067811865476])
)
profile_fields = st.one_of(
    st.sampled_from(sorted(PROFILE_NUMBERS)).map(lambda name: Field("profile", (name,))),
    st.tuples(
        st.sampled_from(["count", "affinity", "scores"]),
        st.sampled_from([*TYPES, "Comedy", "Drama"]),
    ).map(lambda path: Field("profile", path)),
)
trait_fields = st.sampled_from(
    [
        Field("traits", ("country",)),
        Field("traits", ("age",)),
        Field("traits", ("vip",)),
        Field("traits", ("address", "zip")),
        Field("context", ("device",)),
    ]
)
text_values = st.sampled_from(["FR", "BE", "DE", "mobile", "75001"])


@st.composite
def trait_comparisons(draw: st.DrawFn) -> Rule:
    target = draw(trait_fields)
    value: Any = draw(st.one_of(text_values, numbers, st.booleans()))
    op = (
        draw(operators)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else draw(st.sampled_from(["=", "!="]))
    )
    return Comparison(target, op, value)


leaves = st.one_of(
    st.builds(Did, event_queries),
    st.builds(Comparison, st.builds(Count, event_queries), operators, st.integers(0, 3)),
    st.builds(Comparison, profile_fields, operators, numbers),
    trait_comparisons(),
    st.builds(
        Membership,
        trait_fields,
        st.one_of(
            st.lists(text_values, min_size=1, max_size=3).map(tuple),
            st.lists(st.integers(0, 40), min_size=1, max_size=3).map(tuple),
        ),
    ),
    st.builds(
        Membership, profile_fields, st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple)
    ),
    st.builds(SegmentRef, st.sampled_from(SEGMENTS)),
)
rules = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=6,
)

events = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(TYPES),
        st.sampled_from(["i1", "i2", "i3", "i4", None]),
        st.integers(0, 20 * 24 * 60),  # age in minutes
        st.sampled_from([None, 9.99, 5.0, 0.01]),
    ),
    max_size=25,
)
trait_values = st.one_of(
    st.none(), st.booleans(), st.integers(0, 40), text_values, st.just({"zip": "75001"})
)
traits = st.dictionaries(
    st.sampled_from(USERS),
    st.dictionaries(
        st.sampled_from(["country", "age", "vip", "address"]), trait_values, max_size=3
    ),
)
memberships = st.dictionaries(st.sampled_from(SEGMENTS), st.sets(st.sampled_from(USERS)))
# profile.scores.<name>: rows of profile_scores; names overlap those the rules may read
scores = st.dictionaries(
    st.sampled_from(USERS),
    st.dictionaries(
        st.sampled_from(["view", "purchase", "Comedy"]),
        st.sampled_from([0.0, 0.25, 0.5, 0.7071067811865476, 1.0, 2.25]),
        max_size=3,
    ),
)


@pytest.fixture
def engine(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Engine]:
    """Commits need not reach the disk here: many small transactions per example."""
    engine = open_engine(tmp_path, database_url, clock, sqlite_synchronous="NORMAL")
    yield engine
    engine.close()


def _reset(engine: Engine) -> None:
    with engine.storage.write() as uow:
        connection = uow.connection
        for table in (
            profile_scores,
            segment_memberships,
            tables.events,
            tables.profiles,
            tables.aliases,
            tables.items,
        ):
            connection.execute(delete(table))


def _load(
    engine: Engine,
    clock: FakeClock,
    history: list[Any],
    people: dict[str, Any],
    members: dict[str, set[str]],
    people_scores: dict[str, dict[str, float]] | None = None,
) -> None:
    for item_id, categories in ITEMS.items():
        engine.catalog.put(item_id, ItemFields(categories=categories))
    now = clock.now_ms()
    batch = []
    for user, event_type, item, age_minutes, value in history:
        event: dict[str, Any] = {
            "type": event_type,
            "user_id": user,
            "timestamp": (now - age_minutes * MINUTE_MS) // 1000,
            "context": {"device": "mobile" if age_minutes % 2 else "desktop"},
        }
        if item is not None:
            event["item_id"] = item
        if value is not None:
            event["value"] = value
        batch.append(event)
    if batch:
        engine.ingest.ingest(batch)
    for user, document in people.items():
        engine.profiles.set_traits(user, document)
    with engine.storage.write() as uow:
        for name, users in members.items():
            uow.segments.enter(name, [f"u:{u}" for u in users], now)
        by_name: dict[str, dict[str, float]] = {}
        for user, values in (people_scores or {}).items():
            for name, probability in values.items():
                by_name.setdefault(name, {})[f"u:{user}"] = probability
        for name, scores in by_name.items():
            uow.predictions.replace_scores(name, list(scores), list(scores.values()), now)


def _python_members(engine: Engine, rule: Rule, now: int) -> set[str]:
    predicate = compile_rule(rule)
    with engine.storage.read() as uow:
        keys = [key for key, _ in uow.profiles.all_states()]
        records = uow.profiles.load(keys)
        history = uow.events.recent_events(keys, None, TYPES)
        categories = uow.catalog.categories_for([*ITEMS, "i4"])
        current = uow.segments.open_memberships_of(keys)
        known_scores = uow.predictions.scores_by_profile(keys)
    return {
        key
        for key, record in records.items()
        if predicate(
            ProfileFacts(
                key,
                record.state,
                record.traits,
                history.get(key, ()),
                current.get(key, set()),
                categories,
                known_scores.get(key, {}),
            ),
            now,
        )
    }


def _sql_members(engine: Engine, rule: Rule, now: int) -> set[str]:
    with engine.storage.read() as uow:
        return uow.segments.matching(rule, now)


# A rule and a store's contents to evaluate it on, at a moment after they were stored.
cases = given(
    rule=rules,
    history=events,
    people=traits,
    members=memberships,
    people_scores=scores,
    later_minutes=st.integers(0, 10 * 24 * 60),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@cases
def test_real_time_and_batch_evaluators_agree(
    engine: Engine,
    clock: FakeClock,
    rule: Rule,
    history: list[Any],
    people: dict[str, Any],
    members: dict[str, set[str]],
    people_scores: dict[str, dict[str, float]],
    later_minutes: int,
) -> None:
    assert parse_rule(to_text(rule)) == rule
    _reset(engine)
    _load(engine, clock, history, people, members, people_scores)
    now = clock.now_ms() + later_minutes * MINUTE_MS
    assert _python_members(engine, rule, now) == _sql_members(engine, rule, now), to_text(rule)
