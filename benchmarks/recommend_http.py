"""Recommendation serving: `GET /v1/users/{id}/recommendations?n=10` at 16 concurrent clients.

A fresh home gets the MovieLens demo data (9,066 movies, 100,004 ratings from 671 people),
`persona train` builds the model set (its time is the training bar), and a real `persona serve`
process answers 16 connections of `wrk` (see `http_load.py`) asking for random people. The
baseline, in the same run: a trivial FastAPI app under uvicorn answering a real answer of the
route, byte for byte, to every request.

Configurations of the same server:

- `default`: answers are cached until the person does something new (or a minute passes);
  every person asks once, one at a time, before the clock starts (visitors who come back),
  so the measured requests reuse answers. Bars: p99 under 25 ms, throughput at least 50% of
  the trivial app's.
- `cache off` (`PERSONA_RECOMMEND__CACHE_SECONDS=0`): no answer is reused; each request
  reads the person from the store and is answered from their batch shortlist (ranked at
  training) through the filters and the rerank stage, or ranked live when they acted since.
  Bars: at least 99% of answers personalized (from the pipeline, not a fallback), p99 under
  25 ms, throughput at least that of the ALS app and 30% of the trivial app's.
- `cache off, 2 workers`: the same with `--workers 2`; bar: 1.5x the throughput of one.
- `cache off, all acted`: every person viewed a movie after training, so every request ranks
  live (no bar yet; what the shortlists do not cover).

Baselines, in the same run: the trivial app (`trivial_app.py`), and a FastAPI app asking
implicit's ALS for every request (`als_app.py`). Training under 60 s.

`--shop PEOPLE:ITEMS:EVENTS` runs the same on a synthetic shop of that size (`persona
generate`, seed 1, imported with `persona import`) instead of MovieLens; the requests ask for
up to 20,000 of its known people, the ALS app trains on the same events, and training's time is
reported without a bar (the scale issue has its own).

    .venv/bin/python benchmarks/recommend_http.py [--seconds 10] [--clients 16]
    .venv/bin/python benchmarks/recommend_http.py --shop 100000:20000:2000000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from http_load import HEADER, LoadResult, closed_loop, require_wrk
from profile_read import prepare_home
from server_process import PERSONA, _wait_ready, create_key, free_port, running_server

BAR_P99_MS = 25.0
BAR_RATIO = 0.5
BAR_UNCACHED_RATIO = 0.3
BAR_PERSONALIZED = 0.99
BAR_WORKERS = 1.5
BAR_TRAIN_SECONDS = 60.0
HERE = Path(__file__).parent


def prepare_shop(home: Path, directory: Path, shape: str) -> list[str]:
    """A generated shop imported into ``home``; returns a sample of its known people."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    people, items, events = (int(part) for part in shape.split(":"))
    size = ["--people", str(people), "--items", str(items), "--events", str(events)]
    subprocess.run(
        [*PERSONA, "generate", "--out", str(directory), "--seed", "1", *size], check=True
    )
    for name in ("items", "events"):
        started = time.perf_counter()
        subprocess.run(
            [*PERSONA, "--home", str(home), "import", name, str(directory / f"{name}.parquet")],
            check=True,
            capture_output=True,
        )
        print(f"persona import {name}: {time.perf_counter() - started:.1f} s")
    users = pc.unique(pq.read_table(directory / "events.parquet", columns=["user_id"])["user_id"])
    known = sorted(users.drop_null().to_pylist())
    chosen = np.random.default_rng(1).choice(len(known), min(20_000, len(known)), replace=False)
    return [known[i] for i in sorted(chosen)]


def train(home: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*PERSONA, "--home", str(home), "train"], check=True, capture_output=True)
    return time.perf_counter() - started


def cache_counts(base_url: str, key: str) -> dict[str, float]:
    """Answers so far by cache outcome, from the server's Prometheus metrics."""
    text = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    counts: dict[str, float] = {}
    for labels, value in re.findall(r"persona_recommendations_total\{([^}]*)\} ([\d.e+]+)", text):
        found = dict(re.findall(r'(\w+)="(\w+)"', labels))
        if found.get("route") != "recommendations":
            continue
        name = f"{found['cache']}/{found['source']}"
        counts[name] = counts.get(name, 0) + float(value)
    return counts


def measure_persona(
    home: Path,
    paths: list[str],
    key: str,
    clients: int,
    seconds: float,
    env: dict[str, str],
    *,
    warm: bool,
    acted: list[str] | None = None,
    acted_item: str = "1",
) -> tuple[LoadResult, dict[str, float], bytes]:
    # Measured once the server has compared every shortlist with the store (seconds after
    # start on a large store; before that a person's first request reads the store).
    with running_server(home, env, settled="shortlists verified") as base_url:
        headers = {"Authorization": f"Bearer {key}"}
        if acted:
            # Each of these people views a movie now: their shortlists no longer describe
            # them, and every request ranks them live on their history as it is now.
            with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
                views = [{"type": "view", "user_id": p, "item_id": acted_item} for p in acted]
                for start in range(0, len(views), 500):
                    client.post("/v1/events", json=views[start : start + 500]).raise_for_status()
        sample = httpx.get(base_url + paths[0], headers=headers, timeout=30)
        sample.raise_for_status()
        if warm:
            # Every person asks once before the clock starts, one at a time: the steady state
            # of a site whose visitors come back, which is what the cache is for.
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
                for path in paths:
                    client.get(path).raise_for_status()
        before = cache_counts(base_url, key)
        result = closed_loop(base_url, paths, key=key, connections=clients, seconds=seconds)
        after = cache_counts(base_url, key)
    # The warm-up's answers are in both counts; the difference is the measured run's (roughly:
    # wrk's last in-flight requests may land after it stops counting).
    served = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return result, served, sample.content


def measure_app(
    module: str, clients: int, seconds: float, paths: list[str], env: dict[str, str]
) -> LoadResult:
    """One of the baseline apps under uvicorn (one process), as persona runs."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        log_path = Path(tmp) / "app.log"
        with log_path.open("wb") as log:
            command = [sys.executable, "-m", "uvicorn", f"{module}:app", "--port", str(port)]
            process = subprocess.Popen(
                [*command, "--no-access-log"],
                cwd=HERE,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, base_url, log_path, path=paths[0])
            return closed_loop(base_url, paths, connections=clients, seconds=seconds)
        finally:
            process.terminate()
            process.wait(timeout=15)


def personalized_share(served: dict[str, float]) -> float:
    total = sum(served.values())
    pipeline = sum(v for k, v in served.items() if k.endswith("/pipeline"))
    return pipeline / total if total else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--shop", help="PEOPLE:ITEMS:EVENTS of a synthetic shop, not MovieLens")
    options = parser.parse_args()
    require_wrk()
    uncached = {"PERSONA_RECOMMEND__CACHE_SECONDS": "0"}
    shop = Path(tempfile.mkdtemp()) / "shop"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        people = prepare_shop(home, shop, options.shop) if options.shop else prepare_home(home)
        seconds_to_train = train(home)
        bar = "" if options.shop else f" (bar: under {BAR_TRAIN_SECONDS:.0f} s)"
        print(f"persona train: {seconds_to_train:.1f} s{bar}")
        key = create_key(home, "decide", "read", "ingest")
        paths = [f"/v1/users/{person}/recommendations?n=10" for person in people]
        print(f"{len(paths)} people, {options.clients} connections, {options.seconds:.0f} s each")
        print(HEADER)
        cached, served, body = measure_persona(
            home, paths, key, options.clients, options.seconds, {}, warm=True
        )
        print(cached.row("default"), f"   answers: {served}")
        off, served_off, _ = measure_persona(
            home, paths, key, options.clients, options.seconds, uncached, warm=False
        )
        share = personalized_share(served_off)
        print(off.row("cache off"), f"   answers: {served_off} ({share:.1%} personalized)")
        two, _, _ = measure_persona(
            home,
            paths,
            key,
            options.clients,
            options.seconds,
            {**uncached, "PERSONA_SERVER__WORKERS": "2"},
            warm=False,
        )
        print(two.row("cache off, 2 workers"))
        live, served_live, _ = measure_persona(
            home,
            paths,
            key,
            options.clients,
            options.seconds,
            uncached,
            warm=False,
            acted=people,
            acted_item="i1" if options.shop else "1",
        )
        live_share = personalized_share(served_live)
        print(
            live.row("cache off, all acted"),
            f"   answers: {served_live} ({live_share:.1%} personalized)",
        )
    als_data = {"ALS_SHOP": str(shop)} if options.shop else {}
    als = measure_app("als_app", options.clients, options.seconds, paths, als_data)
    print(als.row("FastAPI + ALS"))
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "answer.json"
        body_path.write_bytes(body)
        trivial = measure_app(
            "trivial_app",
            options.clients,
            options.seconds,
            ["/trivial"],
            {"TRIVIAL_BODY": str(body_path)},
        )
    print(trivial.row("trivial FastAPI"), f"   ({len(body)} bytes per answer)")
    ratio = cached.rate / trivial.rate
    print(
        f"of the trivial app: default {ratio:.0%}, cache off {off.rate / trivial.rate:.0%}; "
        f"cache off / ALS app {off.rate / als.rate:.2f}; 2 workers / 1: {two.rate / off.rate:.2f}"
    )
    checks = {
        f"default: p99 < {BAR_P99_MS:.0f} ms": cached.p99_ms < BAR_P99_MS,
        f"default: throughput >= {BAR_RATIO:.0%} of trivial": ratio >= BAR_RATIO,
        f"cache off: >= {BAR_PERSONALIZED:.0%} personalized": share >= BAR_PERSONALIZED,
        f"cache off: p99 < {BAR_P99_MS:.0f} ms": off.p99_ms < BAR_P99_MS,
        "cache off: throughput >= the ALS app's": off.rate >= als.rate,
        f"cache off: throughput >= {BAR_UNCACHED_RATIO:.0%} of trivial": off.rate
        >= BAR_UNCACHED_RATIO * trivial.rate,
        f"2 workers: >= {BAR_WORKERS}x one": two.rate >= BAR_WORKERS * off.rate,
    }
    if not options.shop:
        checks[f"train < {BAR_TRAIN_SECONDS:.0f} s"] = seconds_to_train < BAR_TRAIN_SECONDS
    for name, ok in checks.items():
        print(f"bar: {name}: {'met' if ok else 'MISSED'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
