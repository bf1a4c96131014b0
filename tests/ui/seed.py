"""A home with something on every page of the dashboard, played out over an hour of a fake
clock: the synthetic shop and three model sets, steady recent activity, a segment that grows,
an A/B test and a bandit with decisions and outcomes, consent, and quarantined events.

Written through the services only, so the same store serves a TestClient and a real
``persona serve``; the clock ends an hour after it started (for a real server, start it an
hour before now)."""

from __future__ import annotations

import random
from typing import Any

from persona.clock import FakeClock
from persona.decide.schema import DecisionRequest, PlacementIn
from persona.engine import Engine
from persona.recommend.training import train_model_set
from tests.decide.placements import ab, thompson
from tests.recommend.synthetic import N_ITEMS, N_PEOPLE, stock

AB = "home_hero"
BANDIT = "banner"
SEGMENT = "recent_buyers"
PERSON = "p1"
STEPS = 12  # of five minutes
UNITS_PER_STEP = 50
EVENTS_PER_STEP = 60
STEP_SECONDS = 290  # and 5 s more for the last outcomes to arrive
HOUR_SECONDS = 3600


def _ingest(engine: Engine, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        engine.ingest.ingest(events[start : start + 1000])


def _activity(engine: Engine, rng: random.Random, step: int) -> None:
    """Views, clicks, carts and purchases of the shop's people over the last five minutes."""
    now_s = engine.clock.now_ms() // 1000
    kinds = ["view"] * 6 + ["click"] * 2 + ["add_to_cart", "purchase"]
    events = []
    for n in range(EVENTS_PER_STEP + rng.randrange(-15, 15)):
        kind = rng.choice(kinds)
        event: dict[str, Any] = {
            "event_id": f"recent-{step}-{n}",
            "type": kind,
            "user_id": f"p{rng.randrange(N_PEOPLE)}",
            "item_id": f"i{rng.randrange(N_ITEMS)}",
            "timestamp": now_s - rng.randrange(STEP_SECONDS),
            "context": {"device": rng.choice(["mobile", "desktop"]), "country": "DE"},
        }
        if kind == "purchase":
            event["value"] = round(rng.uniform(5, 50), 2)
        events.append(event)
    _ingest(engine, events)


def _experiment_units(engine: Engine, clock: FakeClock, rng: random.Random, step: int) -> None:
    """New units, one every few seconds, meet both placements: v1 and arm1 are clicked and
    bought more. Their outcomes follow their decisions by seconds."""
    outcomes: list[dict[str, Any]] = []
    for n in range(UNITS_PER_STEP):
        clock.advance(STEP_SECONDS / UNITS_PER_STEP)
        at_s = clock.now_ms() // 1000
        user = PERSON if (step, n) == (0, 0) else f"unit-{step}-{n}"
        request = DecisionRequest(user_id=user, placements=[AB, BANDIT])
        for decision in engine.decisions.decide(request):
            best = decision.variant in ("v1", "arm1")
            base = {"user_id": user, "decision_id": decision.decision_id}
            key = f"{step}-{n}-{decision.placement}"
            outcomes.append(
                {**base, "event_id": f"imp-{key}", "type": "impression", "timestamp": at_s + 1}
            )
            if rng.random() < (0.35 if best else 0.2):
                click = {"type": "click", "timestamp": at_s + 2}
                outcomes.append({**base, "event_id": f"click-{key}", **click})
                if decision.placement == AB and rng.random() < 0.5:
                    purchase = {"type": "purchase", "item_id": "i1", "value": 20.0}
                    outcomes.append(
                        {**base, "event_id": f"buy-{key}", "timestamp": at_s + 3, **purchase}
                    )
    clock.advance(5)  # the last outcomes happened
    _ingest(engine, outcomes)


def _train(engine: Engine) -> None:
    train_model_set(
        engine.storage,
        engine.recommendations.registry,
        engine.clock,
        engine.settings.profiles.event_weights,
    )


def _quarantine(engine: Engine, step: int) -> None:
    refused = [
        {"type": "view", "item_id": "i1"},  # missing_identity
        {"type": "view", "user_id": "p2", "colour": "red"},  # unknown_field
        {"type": "view", "user_id": "p3", "timestamp": "yesterday"},  # invalid_timestamp
    ]
    engine.ingest.ingest(refused[: 1 + step % 3])


def seed(engine: Engine, clock: FakeClock) -> None:
    """``engine`` must run on ``clock``, which this moves an hour forward."""
    rng = random.Random(11)
    stock(engine)  # the shop, its history and a first model set
    engine.decisions.create(AB, PlacementIn.model_validate(ab(AB)).body())
    engine.decisions.create(BANDIT, PlacementIn.model_validate(thompson(BANDIT)).body())
    engine.privacy.consent.set(PERSON, {"marketing": "granted"}, actor="seed")
    clock.advance(60)
    engine.segments.create(SEGMENT, "did(purchase) within 1d", "bought in the last day")
    for step in range(STEPS):
        _experiment_units(engine, clock, rng, step)  # a step of five minutes
        _activity(engine, rng, step)
        if step % 4 == 1:
            _quarantine(engine, step)
        if step in (5, 10):
            _train(engine)
    clock.advance(HOUR_SECONDS - 60 - STEPS * (STEP_SECONDS + 5))
