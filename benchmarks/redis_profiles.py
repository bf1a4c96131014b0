"""The profile cache the processes share in Redis: its memory per million profiles, and profile
reads through it.

A generated shop (`persona generate`, 20,000 people, 200,000 events) is imported into a fresh
home; every person's profile is then read once through an engine with `PERSONA_REDIS_URL` set
(each read renders the profile and keeps it in Redis, compressed), and Redis's `used_memory`
before and after gives the bytes an entry takes, scaled to a million. Then reads through a
second engine that keeps nothing in its own memory (every read goes to Redis) against the same
reads with no cache at all (every read goes to the store), in alternating slices of 1,000 people:
each read's time, p50 and p99.

Goal (issue 18): under 0.5 GiB a million cached profiles; p99 of profile reads under 10 ms.
The store is the home's SQLite file, or PostgreSQL with `PERSONA_DATABASE_URL` (an empty
schema): there, the reads the shared cache saves are a network database's.

    .venv/bin/python benchmarks/redis_profiles.py [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis

from persona.engine import Engine
from persona.settings import load_settings
from server_process import PERSONA

PEOPLE = 20_000
EVENTS = 200_000
SLICE = 1_000
GOAL_GIB = 0.5
GOAL_P99_MS = 10.0


def shop_home(directory: Path) -> tuple[Path, list[str]]:
    """A home holding the generated shop, and the ids its events name (users and visitors)."""
    shop, home = directory / "shop", directory / "home"
    subprocess.run(
        [
            *PERSONA,
            "generate",
            *("--out", str(shop), "--people", str(PEOPLE), "--items", "2000"),
            *("--events", str(EVENTS), "--days", "60", "--seed", "5"),
        ],
        check=True,
        capture_output=True,
    )
    for kind in ("items", "events"):
        subprocess.run(
            [*PERSONA, "--home", str(home), "import", kind, str(shop / f"{kind}.parquet")],
            check=True,
            capture_output=True,
        )
    events = pq.read_table(shop / "events.parquet", columns=["user_id"])
    users = pc.unique(events["user_id"].drop_null()).to_pylist()
    return home, sorted(users)


def timed_reads(engine: Engine, people: list[str]) -> list[float]:
    times = []
    for person in people:
        started = time.perf_counter()
        engine.profiles.get(person)
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="emptied first")
    options = parser.parse_args()
    client = redis.Redis.from_url(options.redis)
    with tempfile.TemporaryDirectory() as tmp:
        home, people = shop_home(Path(tmp))
        client.flushdb()
        before = int(client.info("memory")["used_memory"])
        # entries kept an hour here, so that none expires while the others are written
        kept = {"cache_seconds": 3600}
        filling = Engine.open(load_settings(home=home, redis_url=options.redis, profiles=kept))
        for person in people:
            filling.profiles.get(person)
        filling.close()
        entries = len(client.keys("persona:profile:*"))
        used = int(client.info("memory")["used_memory"]) - before
        per_million_gib = used / entries * 1e6 / 2**30
        print(f"{entries:,} profiles cached in Redis: {used / 2**20:.1f} MiB,")
        print(f"  {used / entries:,.0f} bytes each: {per_million_gib:.2f} GiB a million")

        no_memory = {"cache_entries": 0, "cache_seconds": 3600}
        shared = Engine.open(load_settings(home=home, redis_url=options.redis, profiles=no_memory))
        direct = Engine.open(load_settings(home=home, profiles={"cache_seconds": 0}))
        through_redis: list[float] = []
        from_store: list[float] = []
        for start in range(0, len(people), SLICE):
            part = people[start : start + SLICE]
            through_redis += timed_reads(shared, part)
            from_store += timed_reads(direct, part)
        shared.close()
        direct.close()
    client.flushdb()
    for name, times in (("through Redis", through_redis), ("from the store", from_store)):
        print(
            f"{name:>15}: {len(times):,} reads, p50 {statistics.median(times):.2f} ms,"
            f" p99 {percentile(times, 0.99):.2f} ms"
        )
    p99 = percentile(through_redis, 0.99)
    print(f"goal: < {GOAL_GIB} GiB a million: {'met' if per_million_gib < GOAL_GIB else 'MISSED'}")
    print(f"bar: p99 < {GOAL_P99_MS} ms through Redis: {'met' if p99 < GOAL_P99_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
