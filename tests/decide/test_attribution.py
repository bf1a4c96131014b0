"""Attribution of outcomes to decisions, exactly-once bandit rewards and restart persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.decide.service import DecisionService
from persona.engine import Engine
from persona.ingest.service import AppliedBatch, ValidEvent
from tests.conftest import open_engine
from tests.decide.placements import ab, create, decide, outcome, post_events, thompson

HOUR_S = 3600


def arm_results(client: TestClient, experiment: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"/v1/experiments/{experiment}/results")
    assert response.status_code == 200, response.text
    return {a["arm"]: a for a in response.json()["arms"]}


def test_outcomes_count_inside_the_attribution_window_only(
    client: TestClient, clock: FakeClock
) -> None:
    create(client, ab(weights=(1.0, 0.0)))  # everyone gets v0
    inside = decide(client, "home_hero", user_id="a")[0]["decision_id"]
    outside = decide(client, "home_hero", user_id="b")[0]["decision_id"]
    clock.advance(24 * HOUR_S)
    post_events(
        client,
        [
            outcome("e1", inside, "impression", "a"),
            outcome("e2", inside, "click", "a"),
            outcome("e3", inside, "purchase", "a", item_id="i1", value=30.0),
        ],
    )
    clock.advance(7 * 24 * HOUR_S)  # b's decision is now 8 days old; the window is 7 days
    post_events(
        client,
        [
            outcome("e4", outside, "click", "b"),
            outcome("e5", outside, "purchase", "b", item_id="i1", value=99.0),
            outcome("e6", "no-such-decision", "click", "b"),
        ],
    )
    control = arm_results(client, "home_hero.v1")["v0"]
    assert (control["units"], control["exposures"]) == (2, 2)
    assert (control["impressions"], control["clicks"], control["conversions"]) == (1, 1, 1)
    assert control["revenue"] == 30.0 and control["revenue_per_unit"] == 15.0

    # replaying the same events (same ids) changes nothing
    post_events(client, [outcome("e2", inside, "click", "a")])
    assert arm_results(client, "home_hero.v1")["v0"]["clicks"] == 1


def test_window_is_configurable(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    engine = open_engine(tmp_path, database_url, clock, decisions={"attribution_window_hours": 1.0})
    try:
        with TestClient(create_app(engine)) as client:
            create(client, ab(weights=(1.0, 0.0)))
            first = decide(client, "home_hero", user_id="a")[0]["decision_id"]
            second = decide(client, "home_hero", user_id="b")[0]["decision_id"]
            clock.advance(0.5 * HOUR_S)
            post_events(client, [outcome("in", first, "click", "a")])
            clock.advance(HOUR_S)
            post_events(client, [outcome("late", second, "click", "b")])
            assert arm_results(client, "home_hero.v1")["v0"]["clicks"] == 1
    finally:
        engine.close()


def test_rewards_apply_once_per_event_and_once_per_decision(
    client: TestClient, engine: Engine
) -> None:
    create(client, thompson())
    [decision] = decide(client, "banner")
    arm, decision_id = decision["variant"], decision["decision_id"]
    assert decision["reason"] == "exploit"
    events = [
        outcome("imp-1", decision_id, "impression"),
        outcome("click-1", decision_id, "click"),
    ]
    post_events(client, events)
    expected = {"*": {arm: [1.0, 0.0]}}
    assert engine.decisions.bandit_state("banner", 1) == expected

    assert post_events(client, events)["duplicates"] == 2
    post_events(
        client,
        [
            outcome("imp-2", decision_id, "impression"),  # a second impression: no new trial
            outcome("click-2", decision_id, "click"),  # a second click: no second success
        ],
    )
    assert engine.decisions.bandit_state("banner", 1) == expected

    # Even delivered twice past ingest's own dedupe, an event id moves the counts once.
    replay = [
        _valid_event("click-1", decision_id, "click"),
        _valid_event("imp-1", decision_id, "impression"),
    ]
    for _ in range(2):
        with engine.storage.write() as uow:
            applied = AppliedBatch(replay, {}, {}, {}, {}, [], engine.clock.now_ms())
            engine.decisions.attribution.on_events(uow, applied)
    assert engine.decisions.bandit_state("banner", 1) == expected

    # an impression without a click is a failed trial; a click later turns it into a success
    [other] = decide(client, "banner", user_id="u2")
    post_events(client, [outcome("imp-3", other["decision_id"], "impression", "u2")])
    state = engine.decisions.bandit_state("banner", 1)["*"]
    assert sum(s for s, _ in state.values()) == 1.0 and sum(f for _, f in state.values()) == 1.0
    post_events(client, [outcome("click-3", other["decision_id"], "click", "u2")])
    state = engine.decisions.bandit_state("banner", 1)["*"]
    assert sum(s for s, _ in state.values()) == 2.0 and sum(f for _, f in state.values()) == 0.0


def _valid_event(event_id: str, decision_id: str, kind: str) -> ValidEvent:
    return ValidEvent(
        index=0,
        event_id=event_id,
        type=kind,
        user_id="u1",
        anonymous_id=None,
        item_id=None,
        occurred_at_ms=1_767_225_600_000,
        value=None,
        properties=None,
        context=None,
        decision_id=decision_id,
        payload_hash="0" * 32,
    )


def test_bandit_state_survives_a_restart_and_steers_choices(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, database_url, clock)
    with TestClient(create_app(engine)) as client:
        create(client, thompson(bucket_by="device"))
        for i in range(60):
            [d] = decide(client, "banner", user_id=f"p{i}", context={"device": "mobile"})
            events = [outcome(f"imp{i}", d["decision_id"], "impression", f"p{i}")]
            if d["variant"] == "arm0":  # arm0 always gets clicked, arm1 never
                events.append(outcome(f"click{i}", d["decision_id"], "click", f"p{i}"))
            post_events(client, events)
    before = engine.decisions.bandit_state("banner", 1)
    engine.close()
    assert set(before) == {"device:mobile"}
    successes, failures = before["device:mobile"]["arm0"]
    assert successes > 40 and failures == 0

    engine = open_engine(tmp_path, database_url, clock)
    try:
        assert engine.decisions.bandit_state("banner", 1) == before
        with TestClient(create_app(engine)) as client:
            chosen = [
                decide(client, "banner", user_id=f"q{i}", context={"device": "mobile"})[0][
                    "variant"
                ]
                for i in range(20)
            ]
        assert chosen.count("arm0") >= 18
    finally:
        engine.close()


def test_event_types_map_to_outcome_kinds(engine: Engine) -> None:
    assert isinstance(engine.decisions, DecisionService)
    assert engine.decisions.attribution.outcome_kind("impression") == "impression"
    assert engine.decisions.attribution.outcome_kind("click") == "click"
    assert engine.decisions.attribution.outcome_kind("purchase") == "conversion"
    assert engine.decisions.attribution.outcome_kind("view") is None
