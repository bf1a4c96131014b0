"""Profile read latency: `GET /v1/profiles/{id}` at 16 concurrent clients, beside `/healthz`.

A fresh home gets the MovieLens demo data (9,066 movies, 100,004 ratings from 671 people, loaded
through the ingest service) and a `read` key; then a real `persona serve` process answers 16
client threads, each with its own persistent connection (the standard library's `http.client`,
so the load generator costs little next to the server), asking for random people in a closed
loop for a fixed time after a warm-up. `/healthz`, measured the same way in the same run, is the
baseline of the bare HTTP stack. Bar: p99 of profile reads under 10 ms. Best of `--rounds`.

    .venv/bin/python benchmarks/profile_read.py [--rounds 3] [--seconds 10] [--clients 16]
"""

from __future__ import annotations

import argparse
import http.client
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from persona.demo.movielens import load_movielens
from persona.engine import Engine
from persona.settings import load_settings
from server_process import create_key, running_server

BAR_P99_MS = 10.0
WARM_UP_SECONDS = 1.0


@dataclass(frozen=True)
class Latencies:
    """Per-request latencies (seconds) of one closed-loop run."""

    samples: np.ndarray
    seconds: float

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.samples, q) * 1000)

    @property
    def rate(self) -> float:
        return len(self.samples) / self.seconds

    def row(self, name: str) -> str:
        p50, p95, p99 = (self.percentile_ms(q) for q in (50, 95, 99))
        return f"{name:<10} {p50:>7.2f} {p95:>7.2f} {p99:>7.2f} {self.rate:>9,.0f}"


def closed_loop(
    port: int, clients: int, seconds: float, next_path: Callable[[random.Random], str], key: str
) -> Latencies:
    """``clients`` threads send one request at a time each; latencies after the warm-up."""
    headers = {"Authorization": f"Bearer {key}"}
    start = threading.Barrier(clients + 1)
    results: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    measure_from = measure_until = 0.0

    def run(worker: int) -> None:
        rng = random.Random(worker)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        samples = results[worker]
        start.wait()
        while True:
            sent = time.perf_counter()
            if sent >= measure_until:
                break
            connection.request("GET", next_path(rng), headers=headers)
            response = connection.getresponse()
            response.read()
            done = time.perf_counter()
            if response.status != 200:
                failures.append(f"{response.status} from {worker}")
                break
            if sent >= measure_from:
                samples.append(done - sent)
        connection.close()

    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    measure_from = time.perf_counter() + WARM_UP_SECONDS
    measure_until = measure_from + seconds
    start.wait()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"requests failed: {failures[0]}")
    return Latencies(np.concatenate([np.array(r) for r in results]), seconds)


def prepare_home(home: Path) -> list[str]:
    """The demo data in ``home``; returns the ids of the people it holds."""
    engine = Engine.open(load_settings(home=home))
    try:
        load_movielens(engine)
        with engine.storage.read() as uow:
            people = sorted({e.user_id for e in uow.events.iter_all() if e.user_id})
    finally:
        engine.close()
    return people


def run_round(directory: Path, clients: int, seconds: float) -> tuple[Latencies, Latencies]:
    home = directory / "home"
    people = prepare_home(home)
    key = create_key(home, "read")
    with running_server(home) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        profiles = closed_loop(
            port, clients, seconds, lambda rng: f"/v1/profiles/{rng.choice(people)}", key
        )
        health = closed_loop(port, clients, seconds, lambda _: "/healthz", key)
    return profiles, health


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best p99 counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per route")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    options = parser.parse_args()
    print(f"{options.clients} clients, {options.seconds:.0f} s per route after a 1 s warm-up")
    print(f"{'round':<6} {'route':<10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>9}")
    rounds = []
    for number in range(1, options.rounds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            profiles, health = run_round(Path(tmp), options.clients, options.seconds)
        rounds.append((profiles, health))
        print(f"{number:<6} {profiles.row('profile')}")
        print(f"{'':<6} {health.row('healthz')}")
    profiles, health = min(rounds, key=lambda r: r[0].percentile_ms(99))
    p99 = profiles.percentile_ms(99)
    print(
        f"best p99: profile {p99:.2f} ms, healthz {health.percentile_ms(99):.2f} ms"
        f" (x{p99 / health.percentile_ms(99):.1f}); throughput {profiles.rate / health.rate:.0%}"
        " of healthz"
    )
    ok = p99 < BAR_P99_MS
    print(f"bar: p99 < {BAR_P99_MS:.0f} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
