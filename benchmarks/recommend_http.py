"""Recommendation serving: `GET /v1/users/{id}/recommendations?n=10` at 16 concurrent clients.

A fresh home gets the MovieLens demo data (9,066 movies, 100,004 ratings from 671 people),
`persona train` builds the model set (its time is the training bar), and a real `persona serve`
process answers 16 connections of `wrk` (see `http_load.py`) asking for random people. The
baseline, in the same run: a trivial FastAPI app under uvicorn answering a real answer of the
route, byte for byte, to every request.

Two configurations of the same server:

- `default`: answers are cached until the person does something new (or a minute passes);
  every person asks once, one at a time, before the clock starts (visitors who come back),
  so the measured requests reuse answers. The bars apply here.
- `cache off` (`PERSONA_RECOMMEND__CACHE_SECONDS=0`): every request runs the whole pipeline
  (history from the store, seven candidate sources, features, LightGBM, reranking); what a
  person who just acted waits for.

Bars: p99 under 25 ms, throughput at least 50% of the trivial app's; training under 60 s.

    .venv/bin/python benchmarks/recommend_http.py [--seconds 10] [--clients 16]
"""

from __future__ import annotations

import argparse
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
BAR_TRAIN_SECONDS = 60.0
HERE = Path(__file__).parent


def train(home: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*PERSONA, "--home", str(home), "train"], check=True, capture_output=True)
    return time.perf_counter() - started


def cache_counts(base_url: str, key: str) -> dict[str, float]:
    """Answers so far by cache outcome, from the server's Prometheus metrics."""
    text = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    counts: dict[str, float] = {}
    for source, cache, value in re.findall(
        r'persona_recommendations_total\{cache="(\w+)",source="(\w+)"\} ([\d.e+]+)', text
    ):
        counts[f"{cache}/{source}"] = counts.get(f"{cache}/{source}", 0) + float(value)
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
) -> tuple[LoadResult, dict[str, float], bytes]:
    with running_server(home, env) as base_url:
        headers = {"Authorization": f"Bearer {key}"}
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


def measure_trivial(body: bytes, clients: int, seconds: float) -> LoadResult:
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "answer.json"
        body_path.write_bytes(body)
        port = free_port()
        log_path = Path(tmp) / "trivial.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "trivial_app:app",
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                cwd=HERE,
                env={"TRIVIAL_BODY": str(body_path), "PATH": "/usr/bin:/bin"},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, base_url, log_path)
            return closed_loop(base_url, ["/trivial"], connections=clients, seconds=seconds)
        finally:
            process.terminate()
            process.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    options = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        people = prepare_home(home)
        seconds_to_train = train(home)
        print(f"persona train: {seconds_to_train:.1f} s (bar: under {BAR_TRAIN_SECONDS:.0f} s)")
        key = create_key(home, "decide", "read")
        paths = [f"/v1/users/{person}/recommendations?n=10" for person in people]
        print(f"{len(paths)} people, {options.clients} connections, {options.seconds:.0f} s each")
        print(HEADER)
        cached, served, body = measure_persona(
            home, paths, key, options.clients, options.seconds, {}, warm=True
        )
        print(cached.row("default"), f"   answers: {served}")
        uncached, served_off, _ = measure_persona(
            home,
            paths,
            key,
            options.clients,
            options.seconds,
            {"PERSONA_RECOMMEND__CACHE_SECONDS": "0"},
            warm=False,
        )
        print(uncached.row("cache off"), f"   answers: {served_off}")
    trivial = measure_trivial(body, options.clients, options.seconds)
    print(trivial.row("trivial FastAPI"), f"   ({len(body)} bytes per answer)")
    ratio = cached.rate / trivial.rate
    print(
        f"default: throughput {ratio:.0%} of the trivial app; cache off: "
        f"{uncached.rate / trivial.rate:.0%}"
    )
    checks = {
        f"p99 < {BAR_P99_MS:.0f} ms": cached.p99_ms < BAR_P99_MS,
        f"throughput >= {BAR_RATIO:.0%} of trivial": ratio >= BAR_RATIO,
        f"train < {BAR_TRAIN_SECONDS:.0f} s": seconds_to_train < BAR_TRAIN_SECONDS,
    }
    for name, ok in checks.items():
        print(f"bar: {name}: {'met' if ok else 'MISSED'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
