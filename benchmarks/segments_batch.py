"""Batch segment evaluation: 10 rules over 100,000 synthetic profiles with a year of events.

Builds a SQLite store directly (items, a year of events per person, the profile states folded
from those events by ``ProfileState``, traits for a third of the people), defines 10 rule
segments (``segment_rules.rule_mix``) without computing them, then times ``refresh``: every
rule as one SQL query, with the enter/exit differences written. The first refresh writes every
membership; the second finds what changed (nothing). Bar: each under 30 s.

    .venv/bin/python benchmarks/segments_batch.py [--people 100000] [--events-per-person 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from persona.clock import FakeClock
from persona.engine import Engine
from persona.profiles.aggregate import FoldEvent, ProfileState
from persona.settings import Settings
from persona.storage import tables
from persona.storage.records import ItemRecord, SegmentRecord
from segment_rules import CATEGORIES, COUNTRIES, rule_mix

NOW_MS = 1_767_225_600_000
YEAR_MS = 365 * 86_400_000
ITEMS = 2000
TYPES = ["view"] * 12 + ["click"] * 4 + ["add_to_cart", "purchase", "rate"]
BAR_SECONDS = 30.0
CHUNK = 50_000


def build(engine: Engine, people: int, per_person: int, seed: int = 11) -> int:
    rng = np.random.default_rng(seed)
    rules = engine.profiles.rules
    categories = {f"i{i}": [CATEGORIES[i % len(CATEGORIES)]] for i in range(ITEMS)}
    with engine.storage.write() as uow:
        uow.catalog.upsert(
            [
                ItemRecord(i, None, c, [], None, True, NOW_MS - YEAR_MS, {}, NOW_MS)
                for i, c in categories.items()
            ]
        )
    counts = rng.poisson(per_person, people) + 1
    total = int(counts.sum())
    owners = np.repeat(np.arange(people), counts)
    kinds = rng.integers(0, len(TYPES), total)
    items = rng.integers(0, ITEMS, total)
    ages = rng.integers(0, YEAR_MS, total)
    states: dict[str, ProfileState] = {}
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.storage.write() as uow:
            uow.connection.execute(tables.events.insert(), rows)
        rows.clear()

    for n in range(total):
        key = f"u:u{owners[n]}"
        kind, item, at = TYPES[kinds[n]], f"i{items[n]}", NOW_MS - int(ages[n])
        value = float(1 + items[n] % 50) if kind == "purchase" else None
        event_id = f"e{n}"
        states.setdefault(key, ProfileState()).apply(
            FoldEvent(event_id, kind, at, item, value, None), categories[item], rules
        )
        rows.append(
            {
                "event_id": event_id,
                "type": kind,
                "profile_key": key,
                "user_id": key[2:],
                "anonymous_id": None,
                "item_id": item,
                "occurred_at_ms": at,
                "received_at_ms": at,
                "value": value,
                "properties": None,
                "context": None,
                "decision_id": None,
                "payload_hash": "0" * 32,
                "source": "benchmark",
            }
        )
        if len(rows) == CHUNK:
            flush()
    if rows:
        flush()
    profile_rows = [
        {
            "profile_key": key,
            "state": state.to_dict(),
            "traits": {
                "country": COUNTRIES[i % len(COUNTRIES)],
                "plan": "gold" if i % 2 else "basic",
            }
            if i % 3 == 0
            else None,
            "updated_at_ms": NOW_MS,
        }
        for i, (key, state) in enumerate(states.items())
    ]
    with engine.storage.write() as uow:
        connection = uow.connection
        for start in range(0, len(profile_rows), CHUNK):
            connection.execute(tables.profiles.insert(), profile_rows[start : start + CHUNK])
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events-per-person", type=int, default=20)
    parser.add_argument("--rules", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(home=Path(directory), sqlite_synchronous="NORMAL")
        engine = Engine.open(settings, clock=FakeClock(NOW_MS))
        started = time.perf_counter()
        events = build(engine, args.people, args.events_per_person)
        built = time.perf_counter() - started
        print(f"built {args.people:,} profiles, {events:,} events in {built:.1f} s")
        with engine.storage.write() as uow:
            store = uow.segments
            for name, rule in rule_mix(args.rules):
                store.insert(SegmentRecord(name, "rule", rule, "", NOW_MS, NOW_MS))
        timings = []
        for label in ("first refresh (every membership written)", "second refresh (no change)"):
            started = time.perf_counter()
            summary = engine.segments.refresh()
            seconds = time.perf_counter() - started
            timings.append(seconds)
            entered = sum(e for e, _ in summary.changes.values())
            print(f"{label}: {seconds:.2f} s, {entered:,} entries")
        for name, rule in rule_mix(args.rules):
            print(f"  {name}: {engine.segments.size(name):>7,}  {rule}")
        engine.close()
    worst = max(timings)
    print(f"{args.rules} rules over {args.people:,} profiles: worst {worst:.2f} s")
    print(f"bar: {BAR_SECONDS} s")
    return 0 if worst < BAR_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
