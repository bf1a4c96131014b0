"""HTTP ingest on PostgreSQL: one API process against two on the same database, and against a
bare `executemany` of the same rows.

40,000 events in batches of 1000 are posted by 4 clients over persistent HTTP connections
(`http.client`), from one of two sources (`--data`):
- `shop`: a synthetic shop's first 40,000 events (`persona generate`, 10,000 people: views,
  clicks, carts, purchases, anonymous visitors who identify) in time order, as a collector
  forwards a live stream: a batch holds about 470 people, of whom 30 to 70 are also in each
  batch sent beside it;
- `movielens`: the first 40,000 MovieLens ratings as `rate` events, person by person, as a
  history is backfilled: batches beside each other share a person at most.
With `--routing person`, each client sends the events of its own people instead (a person's
anonymous and user ids are one person; the events keep their order within a client), as a
collector or load balancer that routes by person would: batches sent side by side then share
no one, and never wait for each other's profile locks.
They go:
- to one `persona serve` process (all 4 clients);
- to two, each with a home of its own on the same database, as on two hosts (2 clients each).
Each run starts on a fresh schema holding the shop's items and a key. The rate counts every
event from the first request to the last answer, and only those the answers report accepted.

The baseline writes the same rows (as the server stores them: ids, keys, times, documents,
hash) into a fresh copy of the `events` table with psycopg's `executemany` (pipeline mode), one
transaction per 1000 rows on one connection: the bare database's speed for this work.

The three alternate within each round, in a rotating order (the machine's speed drifts); the
median round counts. PostgreSQL shares the machine's two cores with the servers and clients.

Bars: two processes at least 1.3x the events/s of one; one process at least 30% of the bare
`executemany`.

Where the time goes, for each way through the servers (means over the rounds):
- the processor, in cores, from each process's own counters in /proc (Linux): the servers,
  PostgreSQL's processes, this process (the clients), and the whole machine;
- the ingest transactions, sampled every 10 ms from `pg_stat_activity`: how many wait for an
  advisory lock (a profile, or an event id another batch is storing), how many run or wait in
  PostgreSQL otherwise (the commit's flush included), and how many are idle in their transaction
  while the server works (in Python) or sends the next statement.

    .venv/bin/python benchmarks/ingest_postgres.py [--rounds 3] [--url postgresql://...]
        [--data shop|movielens] [--routing time|person]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from cryptography.fernet import Fernet
from psycopg.types.json import Jsonb

from ingest_http import post_all
from persona.demo.movielens import movie_items, rating_events, ratings_frame
from persona.engine import Engine
from persona.settings import load_settings
from server_process import PERSONA, create_key, running_server

EVENTS = 40_000
PEOPLE = 10_000
BATCH = 1000
CLIENTS = 4
MIN_SPEEDUP = 1.3
MIN_RATIO = 0.30
DEFAULT_URL = os.environ.get(
    "PERSONA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Round:
    one: float  # events/s through one process
    two: float  # ... through two
    bare: float  # rows/s of the bare executemany

    @property
    def speedup(self) -> float:
        return self.two / self.one

    @property
    def ratio(self) -> float:
        return self.one / self.bare


# Where the time of a run through the servers went (see the module's docstring).
ACCOUNTS = (
    ("servers", "cores: servers"),
    ("postgres", "PostgreSQL"),
    ("clients", "clients"),
    ("machine", "machine"),
    ("locked", "transactions: waiting for a lock"),
    ("database", "in PostgreSQL"),
    ("server", "in the server"),
)


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """Every process's processor seconds (user and system), by pid, with its part: the
    servers (`persona ... serve`), PostgreSQL, this process, or other."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if int(entry.name) == os.getpid():
            part = "clients"
        elif command.startswith("postgres"):
            part = "postgres"
        elif " serve " in command and "--port" in command:
            part = "servers"
        else:
            part = "other"
        found[int(entry.name)] = (part, seconds)
    return found


def _machine_busy() -> float:
    """Processor seconds the whole machine has spent busy (all but idle and I/O wait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


_ACTIVITY = """
SELECT count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock'),
       count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'),
       count(*) FILTER (WHERE state = 'idle in transaction')
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND datname = current_database()
"""


@contextlib.contextmanager
def accounted(url: str, into: dict[str, float]) -> Iterator[None]:
    """Fill ``into`` with where the block's time went (``ACCOUNTS``): processor cores by part,
    and the mean number of transactions in each state (sampled every 10 ms)."""
    samples: list[tuple[int, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            while not done.wait(0.01):
                row = connection.execute(_ACTIVITY).fetchone()
                if row is not None:
                    samples.append(row)

    sampler = threading.Thread(target=sample)
    before, busy, started = _cpu_seconds(), _machine_busy(), time.perf_counter()
    sampler.start()
    try:
        yield
    finally:
        after, busy, seconds = _cpu_seconds(), _machine_busy() - busy, time.perf_counter() - started
        done.set()
        sampler.join()
    for pid, (part, cpu) in after.items():
        into[part] = into.get(part, 0.0) + (cpu - before.get(pid, (part, 0.0))[1]) / seconds
    into["machine"] = busy / seconds
    for index, name in enumerate(("locked", "database", "server")):
        into[name] = statistics.fmean(s[index] for s in samples) if samples else float("nan")


def movielens(directory: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The MovieLens movies as an items file, and the first ``EVENTS`` ratings as events."""
    frame = ratings_frame()
    items = directory / "movies.jsonl"
    items.write_bytes(
        b"\n".join(orjson.dumps(item.model_dump(mode="json")) for item in movie_items(frame))
    )
    events = list(itertools.islice(rating_events(frame), EVENTS))
    for event in events:  # as the shop's: an ISO 8601 time
        event["timestamp"] = datetime.fromtimestamp(event["timestamp"], UTC).isoformat()
    return items, events


def shop(directory: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The generator's shop (JSON Lines), and its first ``EVENTS`` events."""
    out = directory / "shop"
    subprocess.run(
        [
            *PERSONA,
            "generate",
            *("--out", str(out), "--people", str(PEOPLE), "--items", "2000"),
            *("--events", str(EVENTS), "--days", "30", "--seed", "3", "--format", "jsonl"),
        ],
        check=True,
        capture_output=True,
    )
    lines = (out / "events.jsonl").read_bytes().splitlines()
    return out / "items.jsonl", [orjson.loads(line) for line in lines[:EVENTS]]


@contextlib.contextmanager
def schema(url: str) -> Iterator[str]:
    """A fresh, empty schema; yields a URL whose search_path is it."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {name} CASCADE")


def store_settings(url: str) -> dict[str, str]:
    """The settings every host of one store shares: the database, and the privacy keys (a
    payload's hash and a pseudonym must not depend on the host that computes them)."""
    return {
        "PERSONA_DATABASE_URL": url,
        "PERSONA_PRIVACY__PSEUDONYM_KEY": hashlib.sha256(url.encode()).hexdigest(),
        "PERSONA_PRIVACY__ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }


def prepared_homes(
    directory: Path, items: Path, count: int, env: dict[str, str]
) -> tuple[list[Path], str]:
    """``count`` homes on one store (migrated, the shop's items, a key)."""
    homes = [directory / f"home-{n}" for n in range(count)]
    for home in homes:
        home.mkdir(parents=True)
    subprocess.run(
        [*PERSONA, "--home", str(homes[0]), "import", "items", str(items)],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    saved = dict(os.environ)
    os.environ.update(env)  # create_key's command reads them
    try:
        key = create_key(homes[0], "ingest", "read")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return homes, key


def by_person(events: list[dict[str, Any]]) -> list[list[bytes]]:
    """The events as ``CLIENTS`` lanes of batches, each person's in one lane (an anonymous id
    in the lane of the user it is identified as), in their order."""
    linked: dict[str, str] = {}
    for e in events:
        if e["type"] == "identify" and e.get("user_id") and e.get("anonymous_id"):
            linked.setdefault(e["anonymous_id"], e["user_id"])
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(CLIENTS)]
    for e in events:
        person = e.get("user_id") or linked.get(e["anonymous_id"], e["anonymous_id"])
        lanes[
            int(hashlib.blake2b(person.encode(), digest_size=4).hexdigest(), 16) % CLIENTS
        ].append(e)
    return [
        [orjson.dumps(lane[i : i + BATCH]) for i in range(0, len(lane), BATCH)] for lane in lanes
    ]


def through_servers(
    directory: Path,
    url: str,
    items: Path,
    bodies: list[bytes],
    processes: int,
    accounts: dict[str, float],
    lanes: list[list[bytes]] | None = None,
) -> float:
    with schema(url) as fresh:
        env = store_settings(fresh)
        homes, key = prepared_homes(directory, items, processes, env)
        with contextlib.ExitStack() as servers:
            urls = [servers.enter_context(running_server(home, env)) for home in homes]
            with accounted(url, accounts):
                accepted, seconds = post_all(urls, key, bodies, CLIENTS, lanes)
    if accepted != EVENTS:
        raise RuntimeError(f"{accepted} of {EVENTS} events accepted")
    return accepted / seconds


def stored_rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows the server stores for these events, in the columns of ``BARE_INSERT``."""
    now_ms = int(time.time() * 1000)
    rows = []
    for e in events:
        user, anonymous = e.get("user_id"), e.get("anonymous_id")
        key = f"u:{user}" if user else f"a:{anonymous}"
        properties, context = e.get("properties"), e.get("context")
        rows.append(
            (
                e["event_id"],
                e["type"],
                key,
                user,
                anonymous,
                e.get("item_id"),
                int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000),
                now_ms,
                e.get("value"),
                None if properties is None else Jsonb(properties),
                None if context is None else Jsonb(context),
                e.get("decision_id"),
                hashlib.blake2b(orjson.dumps(e), digest_size=16).hexdigest(),
                "api",
                1,
            )
        )
    return rows


BARE_INSERT = """
INSERT INTO events (
    event_id, type, profile_key, user_id, anonymous_id, item_id, occurred_at_ms, received_at_ms,
    value, properties, context, decision_id, payload_hash, source, write_seq
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def bare(directory: Path, url: str, rows: list[tuple[Any, ...]]) -> float:
    """Rows/s of ``executemany`` (pipeline mode) into a fresh, migrated ``events`` table."""
    with schema(url) as fresh:
        Engine.open(load_settings(home=directory / "bare", database_url=fresh)).close()
        with psycopg.connect(fresh) as connection:
            started = time.perf_counter()
            for start in range(0, len(rows), BATCH):
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.executemany(BARE_INSERT, rows[start : start + BATCH])
            seconds = time.perf_counter() - started
    return len(rows) / seconds


def run_round(
    number: int,
    url: str,
    items: Path,
    events: list[dict[str, Any]],
    rows: list[Any],
    accounts: dict[str, list[dict[str, float]]],
    routing: str,
) -> Round:
    bodies = [orjson.dumps(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
    lanes = by_person(events) if routing == "person" else None
    results: dict[str, float] = {}
    order = ["one", "two", "bare"]
    shift = (number - 1) % len(order)
    for name in order[shift:] + order[:shift]:
        with tempfile.TemporaryDirectory() as tmp:
            if name == "bare":
                results[name] = bare(Path(tmp), url, rows)
            else:
                processes = 1 if name == "one" else 2
                account: dict[str, float] = {}
                results[name] = through_servers(
                    Path(tmp), url, items, bodies, processes, account, lanes
                )
                accounts.setdefault(name, []).append(account)
    return Round(results["one"], results["two"], results["bare"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median one counts")
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL (a schema per run)")
    parser.add_argument("--data", choices=["shop", "movielens"], default="shop")
    parser.add_argument(
        "--routing",
        choices=["time", "person"],
        default="time",
        help="time: the next batch of the stream to the next free client; person: each "
        "client sends its own people's events",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        items, events = (shop if options.data == "shop" else movielens)(Path(tmp))
        rows = stored_rows(events)
        print(
            f"{options.data}: {len(events):,} events in batches of {BATCH}, {CLIENTS} clients,"
            f" routed by {options.routing}"
        )
        print(
            f"{'round':<6} {'1 process':>10} {'2 processes':>12} {'bare rows/s':>12}"
            f" {'2 / 1':>6} {'1 / bare':>9}"
        )
        rounds = []
        accounts: dict[str, list[dict[str, float]]] = {}
        for number in range(1, options.rounds + 1):
            result = run_round(number, options.url, items, events, rows, accounts, options.routing)
            rounds.append(result)
            print(
                f"{number:<6} {result.one:>10,.0f} {result.two:>12,.0f} {result.bare:>12,.0f}"
                f" {result.speedup:>6.2f} {result.ratio:>9.0%}"
            )
    print("where the time went (means of the rounds):")
    for name, title in (("one", "1 process"), ("two", "2 processes")):
        parts = ", ".join(
            f"{label} {statistics.fmean(a.get(key, 0.0) for a in accounts[name]):.2f}"
            for key, label in ACCOUNTS
        )
        print(f"  {title}: {parts}")
    speedup = statistics.median(r.speedup for r in rounds)
    ratio = statistics.median(r.ratio for r in rounds)
    print(f"median: 2 / 1 = {speedup:.2f}x, 1 / bare = {ratio:.0%}")
    faster, near = speedup >= MIN_SPEEDUP, ratio >= MIN_RATIO
    print(f"bar: two processes >= {MIN_SPEEDUP}x one: {'met' if faster else 'MISSED'}")
    print(f"bar: one process >= {MIN_RATIO:.0%} of bare: {'met' if near else 'MISSED'}")
    return 0 if faster and near else 1


if __name__ == "__main__":
    raise SystemExit(main())
