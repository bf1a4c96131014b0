"""Decision latency: `POST /v1/decisions` for 3 placements at 16 concurrent clients.

A fresh home gets the MovieLens demo data (9,066 movies, 100,004 ratings from 671 people,
through the ingest service), a trained recommendation model set, three placements (`home_hero`
by rules with segment and device targeting, `promo_banner` an A/B test with a 10% holdout,
`for_you` the recommendation pipeline's top 10) and a `decide` key. A real `persona serve`
process then answers 16 `wrk` connections, each sending one request at a time with a body drawn
at random (a person, a device, the three placements), for a fixed time after a warm-up.
`/healthz`, measured the same way in the same run, is the baseline of the bare HTTP stack. Every
answered decision is logged (committed) before its answer. A person's `for_you` items come from
the pipeline the first time and from the recommendation service's answer cache afterwards (no
events arrive during the run), so the run measures twice: "cold", right after start-up, where
most people are ranked for the first time, and "warm", after one request per person. Then the
load goes on for ``--aged`` seconds (5 minutes by default): cached answers pass their lifetime
and are refreshed in the background while requests keep coming, as on a server that has been
up a while; "aged" is measured after that. Bar: p99 under 30 ms on the warm and the aged runs
(all three are printed).

    .venv/bin/python benchmarks/decisions_http.py [--rounds 1] [--seconds 10] [--clients 16]
                                                 [--aged 300]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson

from http_load import HEADER, LoadResult, closed_loop, require_wrk
from persona.decide.schema import PlacementIn
from persona.demo.movielens import load_movielens
from persona.engine import Engine
from persona.recommend.training import train_model_set
from persona.settings import load_settings
from server_process import create_key, running_server

BAR_P99_MS = 30.0
PLACEMENTS = ["home_hero", "promo_banner", "for_you"]
DEVICES = ["mobile", "desktop", "tablet"]


# Like http_load's script, but each request's body is drawn at random from a file of bodies.
def placements() -> list[dict[str, Any]]:
    return [
        {
            "name": "home_hero",
            "policy": "rules",
            "variants": [
                {"id": "welcome", "payload": {"title": "Welcome back"}},
                {
                    "id": "vip",
                    "payload": {"title": "For our best viewers"},
                    "priority": 10,
                    "targeting": {"segments": ["vip"]},
                },
                {
                    "id": "mobile",
                    "payload": {"title": "Watch on the go"},
                    "priority": 5,
                    "targeting": {"device": ["mobile"]},
                },
            ],
        },
        {
            "name": "promo_banner",
            "policy": "ab",
            "holdout_share": 0.1,
            "variants": [
                {"id": "control", "payload": {"title": "New this week"}},
                {"id": "discount", "payload": {"title": "First month free"}},
            ],
        },
        {
            "name": "for_you",
            "policy": "recommendations",
            "recommendations": {"n": 10},
            "variants": [{"id": "editors", "payload": {"items": ["1", "2", "3"]}}],
        },
    ]


def prepare_home(home: Path) -> list[str]:
    """Demo data, a trained model set and the placements; returns the people's ids."""
    engine = Engine.open(load_settings(home=home))
    try:
        load_movielens(engine.catalog, engine.ingest)
        train_model_set(
            engine.storage,
            engine.recommendations.registry,
            engine.clock,
            engine.settings.profiles.event_weights,
        )
        engine.segments.create("vip", "count(rate) >= 200", "heavy raters")
        for raw in placements():
            config = PlacementIn.model_validate(raw)
            engine.decisions.create(config.name, config.body())
        with engine.storage.read() as uow:
            people = sorted({e.user_id for e in uow.events.iter_all() if e.user_id})
    finally:
        engine.close()
    return people


def decision_bodies(people: list[str], seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [
        orjson.dumps(
            {
                "user_id": person,
                "context": {"device": rng.choice(DEVICES)},
                "placements": PLACEMENTS,
            }
        ).decode()
        for person in people
    ]


def decisions_loop(
    base_url: str, bodies: list[str], key: str, clients: int, seconds: float
) -> LoadResult:
    return closed_loop(
        base_url,
        ["/v1/decisions"],
        key=key,
        connections=clients,
        seconds=seconds,
        method="POST",
        bodies=bodies,
    )


def send_each(base_url: str, bodies: list[str], key: str) -> None:
    """Every body once, one at a time: each person's items are then in the answer cache."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        for body in bodies:
            client.post("/v1/decisions", content=body).raise_for_status()


def run_round(
    directory: Path, clients: int, seconds: float, aged_seconds: float
) -> tuple[LoadResult, LoadResult, LoadResult, LoadResult, int]:
    home = directory / "home"
    people = prepare_home(home)
    key = create_key(home, "decide")
    bodies = decision_bodies(people)
    with running_server(home) as base_url:
        # One request first: it loads the model set, which the warm-up should not race for.
        send_each(base_url, bodies[:1], key)
        cold = decisions_loop(base_url, bodies, key, clients, seconds)
        send_each(base_url, bodies, key)
        warm = decisions_loop(base_url, bodies, key, clients, seconds)
        if aged_seconds > 0:
            decisions_loop(base_url, bodies, key, clients, aged_seconds)
        aged = decisions_loop(base_url, bodies, key, clients, seconds)
        health = closed_loop(base_url, ["/healthz"], key=key, connections=clients, seconds=seconds)
    engine = Engine.open(load_settings(home=home))
    try:
        with engine.storage.read() as uow:
            logged = uow.connection.exec_driver_sql("SELECT count(*) FROM decisions").scalar_one()
    finally:
        engine.close()
    return cold, warm, aged, health, int(logged)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median p99 counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per route")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--aged", type=float, default=300.0, help="seconds of load before the aged run"
    )
    options = parser.parse_args()
    require_wrk()
    print(f"{options.clients} connections, {options.seconds:.0f} s per route after a warm-up")
    print(f"{'round':<6} {HEADER}")
    rounds = []
    for number in range(1, options.rounds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            cold, warm, aged, health, logged = run_round(
                Path(tmp), options.clients, options.seconds, options.aged
            )
        worse = max(warm, aged, key=lambda r: r.p99_ms)
        rounds.append((worse, health))
        print(f"{number:<6} {cold.row('decisions cold')}")
        print(f"{'':<6} {warm.row('decisions warm')}")
        print(f"{'':<6} {aged.row(f'aged {options.aged:.0f} s')}")
        print(f"{'':<6} {health.row('healthz')}")
        print(f"{'':<6} {logged:,} decisions logged (3 per request, warm-ups included)")
    # A bar is met when the median round meets it: one favourable round proves nothing.
    decisions, health = sorted(rounds, key=lambda r: r[0].p99_ms)[(len(rounds) - 1) // 2]
    print(
        f"median p99 (the worse of warm and aged): decisions {decisions.p99_ms:.2f} ms, healthz"
        f" {health.p99_ms:.2f} ms;"
        f" throughput {decisions.rate:,.0f} req/s ({decisions.rate / health.rate:.0%} of healthz)"
    )
    ok = decisions.p99_ms < BAR_P99_MS
    print(f"bar: p99 < {BAR_P99_MS:.0f} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
