"""Memberships kept current: on ingest (real time), by refresh (windows expire), with history."""

from __future__ import annotations

import time

import pytest

from persona.catalog.schema import ItemFields
from persona.clock import FakeClock
from persona.engine import Engine
from persona.errors import ConflictError, InvalidRuleError, NotFoundError

DAY_S = 86_400


def view(user: str, item: str = "i1", **extra: object) -> dict[str, object]:
    return {"type": "view", "user_id": user, "item_id": item, **extra}


def stays(engine: Engine, key: str) -> list[tuple[str, int, int | None]]:
    return [(s.segment, s.entered_at_ms, s.exited_at_ms) for s in engine.segments.history(key)]


def test_an_event_that_makes_a_person_enter_is_visible_when_ingest_returns(engine: Engine) -> None:
    engine.segments.create(
        "cart_abandoners", "did(add_to_cart) within 7d and not did(purchase) within 7d"
    )
    started = time.perf_counter()
    engine.ingest.ingest([{"type": "add_to_cart", "user_id": "u1", "item_id": "i1"}])
    assert engine.segments.memberships("u:u1") == {"cart_abandoners"}
    engine.ingest.ingest([{"type": "purchase", "user_id": "u1", "item_id": "i1", "value": 5}])
    assert engine.segments.memberships("u:u1") == set()
    assert time.perf_counter() - started < 1.0


def test_windows_expire_through_scheduled_refresh(engine: Engine, clock: FakeClock) -> None:
    engine.segments.create("recent_viewers", "did(view) within 7d")
    engine.ingest.ingest([view("u1"), view("u2")])
    entered = clock.now_ms()
    clock.advance(6 * DAY_S)
    engine.ingest.ingest([view("u2")])  # u2 keeps viewing
    clock.advance(2 * DAY_S)  # day 8 for u1, day 2 for u2's last view
    summary = engine.segments.refresh()
    assert summary.changes["recent_viewers"] == (0, 1)
    assert engine.segments.memberships("u:u1") == set()
    assert engine.segments.memberships("u:u2") == {"recent_viewers"}
    assert stays(engine, "u:u1") == [("recent_viewers", entered, clock.now_ms())]
    assert engine.segments.refresh().changes["recent_viewers"] == (0, 0)  # idempotent


def test_history_keeps_every_stay(engine: Engine, clock: FakeClock) -> None:
    engine.segments.create("viewers", "did(view) within 1d")
    engine.ingest.ingest([view("u1")])
    first = clock.now_ms()
    clock.advance(2 * DAY_S)
    engine.segments.refresh()
    left = clock.now_ms()
    clock.advance(DAY_S)
    engine.ingest.ingest([view("u1")])
    again = clock.now_ms()
    assert stays(engine, "u:u1") == [("viewers", first, left), ("viewers", again, None)]
    page = engine.segments.members("viewers", after=None, limit=10)
    assert [(m.profile_key, m.entered_at_ms) for m in page] == [("u:u1", again)]


def test_real_time_and_refresh_reach_the_same_memberships(engine: Engine, clock: FakeClock) -> None:
    engine.catalog.put("c1", ItemFields(categories=["Comedy"]))
    engine.segments.create("comedy_fans", 'count(view, category = "Comedy") within 14d >= 2')
    engine.segments.create("buyers", "profile.frequency >= 1")
    engine.segments.create("loyal_fans", 'segment("comedy_fans") and segment("buyers")')
    events = [view(f"u{i % 5}", "c1" if i % 3 else "x") for i in range(30)]
    events += [{"type": "purchase", "user_id": "u1", "item_id": "c1", "value": 3}]
    engine.ingest.ingest(events)
    before = {f"u:u{i}": engine.segments.memberships(f"u:u{i}") for i in range(5)}
    assert before["u:u1"] == {"comedy_fans", "buyers", "loyal_fans"}
    summary = engine.segments.refresh()
    assert all(change == (0, 0) for change in summary.changes.values()), summary
    assert list(summary.changes).index("loyal_fans") == 2  # after what it refers to


def test_a_merged_anonymous_profile_leaves_its_segments(engine: Engine) -> None:
    engine.segments.create("viewers", "did(view)")
    engine.ingest.ingest([{"type": "view", "anonymous_id": "a1", "item_id": "i1"}])
    assert engine.segments.memberships("a:a1") == {"viewers"}
    engine.ingest.ingest([{"type": "identify", "anonymous_id": "a1", "user_id": "u9"}])
    assert engine.segments.memberships("a:a1") == set()
    assert engine.segments.memberships("u:u9") == {"viewers"}  # the merged history counts
    assert engine.segments.refresh().changes["viewers"] == (0, 0)


def test_creating_computes_members_and_updating_recomputes_dependents(engine: Engine) -> None:
    engine.ingest.ingest(
        [view("u1"), view("u2"), {"type": "click", "user_id": "u2", "item_id": "i"}]
    )
    created = engine.segments.create("clickers", "did(click)", "people who click")
    assert created.description == "people who click"
    engine.segments.create("clicking_viewers", 'segment("clickers") and did(view)')
    assert engine.segments.size("clickers") == 1
    assert engine.segments.size("clicking_viewers") == 1
    engine.segments.update("clickers", "did(view)", None)
    assert engine.segments.size("clickers") == 2
    assert engine.segments.size("clicking_viewers") == 2


def test_references_must_exist_and_must_not_cycle(engine: Engine) -> None:
    with pytest.raises(InvalidRuleError, match="unknown segment 'nope'") as caught:
        engine.segments.create("a", 'did(view) and segment("nope")')
    assert (caught.value.extra["line"], caught.value.extra["column"]) == (1, 15)
    with pytest.raises(InvalidRuleError, match="cycle"):
        engine.segments.create("selfish", 'segment("selfish")')
    engine.segments.create("a", "did(view)")
    engine.segments.create("b", 'segment("a")')
    with pytest.raises(InvalidRuleError, match="cycle"):
        engine.segments.update("a", 'segment("b")', None)
    with pytest.raises(ConflictError, match="used by b"):
        engine.segments.delete("a")
    with pytest.raises(ConflictError):
        engine.segments.create("a", "did(click)")
    engine.segments.delete("b")
    engine.segments.delete("a")
    with pytest.raises(NotFoundError):
        engine.segments.get("a")


def test_traits_and_profile_quantities_are_read_on_the_next_evaluation(
    engine: Engine, clock: FakeClock
) -> None:
    engine.segments.create(
        "french_spenders", 'profile.monetary > 10 and traits.country in ["FR", "BE"]'
    )
    engine.profiles.set_traits("u1", {"country": "FR"})
    engine.ingest.ingest([{"type": "purchase", "user_id": "u1", "item_id": "i", "value": 12.5}])
    assert engine.segments.memberships("u:u1") == {"french_spenders"}
    engine.profiles.set_traits("u1", {"country": "DE"})
    engine.segments.refresh()
    assert engine.segments.memberships("u:u1") == set()
