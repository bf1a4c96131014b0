"""What a growing store costs on one machine: a synthetic shop of 1M, 3M and 10M events
(people a tenth of the events, items a hundredth) generated, imported, trained and served,
with each stage's wall time and peak memory, then recommendations with the answer cache off.
"reference s" is the machine's speed around the training (``reference_s``).

    .venv/bin/python benchmarks/scale.py                      # --sizes 1000000 3000000 10000000
    .venv/bin/python benchmarks/scale.py --sizes 1000000 --keep /tmp/shop
    .venv/bin/python benchmarks/scale.py --json scale.json   # then cost_curve.py scale.json

Each stage runs as the real command in a process of its own; its peak memory is the
process's maximum resident set (``wait4``), the server's is the proportional set size of all
its processes (shared pages counted once) after the load. "ready" is the time from starting
`persona serve` until `/readyz` answers and the worker has started; "settled" until it has
also compared every shortlist with the store. The requests go to 20,000 known people drawn at
random, 16 connections for 10 s, and "personalized" is the share of answers the pipeline gave
(from the server's own metrics), the rest being fallbacks.

The bars of the 10M size (this 2-core machine): import at least 30,000 events/s; train under
10 minutes and 6 GB; the server ready within 15 s and under 4 GB; p99 under 25 ms with at
least 99% of answers personalized. Each stage should grow no faster than the events.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from http_load import closed_loop, require_wrk
from recommend_http import cache_counts, personalized_share
from server_process import PERSONA, create_key, serving

BAR_IMPORT_PER_S = 30_000
BAR_TRAIN_S = 600.0
BAR_TRAIN_GB = 6.0
BAR_READY_S = 15.0
BAR_SERVE_GB = 4.0
BAR_P99_MS = 25.0
BAR_PERSONALIZED = 0.99
PEOPLE = 20_000  # known people the requests are drawn from
REFERENCE = "s = 0\nfor i in range(20_000_000):\n    s += i\n"


def reference_s() -> float:
    """The machine's speed just then: a pure-Python loop of 20 million additions in a process
    of its own (1.1 to 1.2 s when this machine runs at its usual speed; it drifts by up to a
    factor of two, so each size reports it beside its times)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", REFERENCE], check=True)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Stage:
    seconds: float
    peak_gb: float


def measured(command: list[str]) -> Stage:
    """Run ``command`` to its end; its wall time and its peak resident memory."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"{command[3:]} failed: {errors.read().decode()[-2000:]}")
    return Stage(seconds, usage.ru_maxrss / 1024**2)  # kilobytes on Linux


def proportional_gb(pid: int) -> float:
    """The proportional set size of a process and its children (shared pages divided)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    pids = [pid, *(int(p) for p in found.stdout.split())]
    total_kb = 0
    for each in pids:
        try:
            rollup = Path(f"/proc/{each}/smaps_rollup").read_text()
        except FileNotFoundError:
            continue
        total_kb += next(
            int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
        )
    return total_kb / 1024**2


def known_people(events: Path) -> list[str]:
    users = pc.unique(pq.read_table(events, columns=["user_id"])["user_id"]).drop_null()
    known = sorted(users.to_pylist())
    chosen = np.random.default_rng(1).choice(len(known), min(PEOPLE, len(known)), replace=False)
    return [known[i] for i in sorted(chosen)]


def one_size(events: int, work: Path) -> dict[str, float]:
    people, items = events // 10, events // 100
    shop, home = work / "shop", work / "home"
    size = ["--people", str(people), "--items", str(items), "--events", str(events)]
    generated = measured([*PERSONA, "generate", "--out", str(shop), "--seed", "1", *size])
    measured([*PERSONA, "--home", str(home), "import", "items", str(shop / "items.parquet")])
    imported = measured(
        [*PERSONA, "--home", str(home), "import", "events", str(shop / "events.parquet")]
    )
    reference_before = reference_s()
    trained = measured([*PERSONA, "--home", str(home), "train"])
    reference_after = reference_s()
    key = create_key(home, "read")
    paths = [f"/v1/users/{p}/recommendations?n=10" for p in known_people(shop / "events.parquet")]
    uncached = {"PERSONA_RECOMMEND__CACHE_SECONDS": "0"}
    with serving(home, uncached, settled="shortlists verified") as server:
        before = cache_counts(server.base_url, key)
        load = closed_loop(server.base_url, paths, key=key, connections=16, seconds=10)
        served = {k: v - before.get(k, 0) for k, v in cache_counts(server.base_url, key).items()}
        serve_gb = proportional_gb(server.process.pid)
    return {
        "events": events,
        "people": people,
        "items": items,
        "generate s": generated.seconds,
        "import s": imported.seconds,
        "import events/s": events / imported.seconds,
        "import GB": imported.peak_gb,
        "train s": trained.seconds,
        "train GB": trained.peak_gb,
        "ready s": server.ready_s,
        "settled s": server.settled_s or float("nan"),
        "serve GB": serve_gb,
        "p99 ms": load.p99_ms,
        "req/s": load.rate,
        "personalized": personalized_share(served),
        "reference s": (reference_before + reference_after) / 2,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--keep", type=Path, help="keep each size's shop and home under here")
    parser.add_argument("--json", type=Path, help="write the rows here (for cost_curve.py)")
    options = parser.parse_args()
    require_wrk()
    rows = []
    for events in options.sizes:
        work = Path(tempfile.mkdtemp(prefix=f"scale-{events}-", dir=options.keep))
        try:
            row = one_size(events, work)
        finally:
            if options.keep is None:
                shutil.rmtree(work, ignore_errors=True)
        rows.append(row)
        print(
            " | ".join(
                f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in row.items()
            ),
            flush=True,
        )
        if options.json is not None:  # after each size: a long run keeps what it measured
            options.json.write_text(json.dumps(rows, indent=1))
    last = rows[-1]
    print(
        f"at {last['events']:,.0f} events: import {last['import events/s']:,.0f}/s"
        f" (bar {BAR_IMPORT_PER_S:,}); train {last['train s']:.0f} s, {last['train GB']:.2f} GB"
        f" (bar {BAR_TRAIN_S:.0f} s, {BAR_TRAIN_GB} GB); ready {last['ready s']:.1f} s,"
        f" {last['serve GB']:.2f} GB (bar {BAR_READY_S:.0f} s, {BAR_SERVE_GB} GB);"
        f" p99 {last['p99 ms']:.2f} ms, {last['personalized']:.1%} personalized"
        f" (bar {BAR_P99_MS:.0f} ms, {BAR_PERSONALIZED:.0%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
