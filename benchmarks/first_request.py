"""The first requests after `persona serve` reports ready: answered by the pipeline, and how fast.

A fresh home gets the MovieLens demo (`persona demo --no-serve`: 9,066 movies, 100,004 ratings,
a trained model set). Then, `--starts` times: a new `persona serve` process (one worker, default
settings, the 50 ms recommendation budget); once /readyz answers, three requests, one after the
other, each timed from the client: a known person naming a context (ranked live), another known
person (from the batch shortlist), and someone never seen. Baseline, in the same run: the same
three requests again on the warm server (its own caches bypassed by other people and contexts).

Bar (issue 19): every first request answered by the pipeline (`source: pipeline`), under 50 ms.

    .venv/bin/python benchmarks/first_request.py [--starts 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from server_process import PERSONA, serving

REQUESTS = (
    ("live, with context", "/v1/users/{a}/recommendations?n=10&device=mobile&country=FR"),
    ("from the shortlist", "/v1/users/{b}/recommendations?n=10"),
    ("someone never seen", "/v1/users/{c}/recommendations?n=10"),
)


def timed(client: httpx.Client, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, str(response.json()["source"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="persona-first-"))
    subprocess.run(
        [*PERSONA, "--home", str(home), "demo", "--no-serve", "--dev"],
        check=True,
        capture_output=True,
    )
    first: dict[str, list[float]] = {name: [] for name, _ in REQUESTS}
    warm: dict[str, list[float]] = {name: [] for name, _ in REQUESTS}
    sources: list[str] = []
    for start in range(args.starts):
        people = {"a": str(1 + 3 * start), "b": str(2 + 3 * start), "c": f"new-{start}"}
        later = {"a": str(300 + start), "b": str(400 + start), "c": f"later-{start}"}
        with (
            serving(home, {"PERSONA_DEV_MODE": "true"}) as server,
            httpx.Client(base_url=server.base_url, timeout=10) as client,
        ):
            for name, path in REQUESTS:
                ms, source = timed(client, path.format(**people))
                first[name].append(ms)
                sources.append(source)
            for name, path in REQUESTS:
                warm[name].append(timed(client, path.format(**later))[0])
    print(f"{args.starts} starts; first requests answered by: {sorted(set(sources))}")
    for name, _ in REQUESTS:
        print(
            f"{name:>20}: first median {statistics.median(first[name]):6.1f} ms, "
            f"max {max(first[name]):6.1f} ms; warm median {statistics.median(warm[name]):6.1f} ms"
        )
    met = set(sources) == {"pipeline"} and all(max(v) < 50 for v in first.values())
    print("bar (pipeline, under 50 ms):", "met" if met else "missed")


if __name__ == "__main__":
    main()
