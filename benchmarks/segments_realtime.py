"""Real-time segment evaluation: what 50 active rule segments add to ingest, per event.

Two engines in fresh homes (SQLite, default durability) take the same stream of batches of
1000 events in the same run, alternately batch by batch so that both see the same machine: one
engine has no segment, the other has 50 rule segments (``segment_rules.rule_mix``). The cost of
segments is the difference of the mean ingest time per event. Bar: under 1 ms per event.

    .venv/bin/python benchmarks/segments_realtime.py [--batches 40] [--people 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from persona.catalog.schema import ItemFields
from persona.engine import Engine
from persona.settings import Settings
from segment_rules import CATEGORIES, COUNTRIES, rule_mix

BATCH = 1000
ITEMS = 500
TYPES = ["view"] * 12 + ["click"] * 4 + ["add_to_cart", "purchase", "rate"]
BAR_MS = 1.0


def batches(n: int, people: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n):
        users = rng.integers(0, people, BATCH)
        kinds = rng.integers(0, len(TYPES), BATCH)
        items = rng.integers(0, ITEMS, BATCH)
        batch = []
        for j in range(BATCH):
            event: dict[str, Any] = {
                "event_id": f"b{b}-{j}",
                "type": TYPES[kinds[j]],
                "user_id": f"u{users[j]}",
                "item_id": f"i{items[j]}",
            }
            if event["type"] == "purchase":
                event["value"] = float(1 + items[j] % 50)
            batch.append(event)
        out.append(batch)
    return out


def open_engine(home: Path, segments: int, people: int) -> Engine:
    engine = Engine.open(Settings(home=home))
    for i in range(ITEMS):
        engine.catalog.put(f"i{i}", ItemFields(categories=[CATEGORIES[i % len(CATEGORIES)]]))
    for u in range(0, people, 7):
        plan = "gold" if u % 3 == 0 else "basic"
        engine.profiles.set_traits(
            f"u{u}", {"country": COUNTRIES[u % len(COUNTRIES)], "plan": plan}
        )
    for name, rule in rule_mix(segments):
        engine.segments.create(name, rule)
    return engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--segments", type=int, default=50)
    args = parser.parse_args()
    stream = batches(args.batches + 2, args.people)
    with tempfile.TemporaryDirectory() as directory:
        plain = open_engine(Path(directory) / "plain", 0, args.people)
        segmented = open_engine(Path(directory) / "segmented", args.segments, args.people)
        seconds = {"plain": 0.0, "segmented": 0.0}
        for index, batch in enumerate(stream):
            for name, engine in (("plain", plain), ("segmented", segmented)):
                started = time.perf_counter()
                result = engine.ingest.ingest(batch)
                elapsed = time.perf_counter() - started
                assert result.accepted == len(batch), result.as_dict()
                if index >= 2:  # the first two batches warm caches up
                    seconds[name] += elapsed
        members = sum(segmented.segments.size(name) for name, _ in rule_mix(args.segments))
        plain.close()
        segmented.close()
    events = args.batches * BATCH
    plain_ms = seconds["plain"] * 1000 / events
    segmented_ms = seconds["segmented"] * 1000 / events
    added = segmented_ms - plain_ms
    print(f"{events:,} events in batches of {BATCH}, {args.people:,} people")
    print(f"ingest without segments: {plain_ms:.4f} ms/event")
    print(f"ingest with {args.segments} segments: {segmented_ms:.4f} ms/event")
    print(f"added by segments: {added:.4f} ms/event (bar {BAR_MS} ms); {members:,} memberships")
    return 0 if added < BAR_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
