"""Memory under a steady load: `persona serve` for 10 minutes of mixed traffic, its memory sampled.

A synthetic shop (`persona generate`, seed 1; 100,000 people, 10,000 items, 1,000,000 events by
default) is imported and trained, three placements are created (`persona placements create`),
and a real `persona serve` process (the production settings: answer and profile caches on, one
worker, the rate limit off so the load is not refused) takes 16 connections of `wrk` for
``--seconds`` (600) with every request drawn at random:

- 40% recommendations for a known person, 15% for a visitor never seen before (a new cache key
  every time: the caches can only stay flat by evicting);
- 20% decisions for the three placements, for a known person or a new visitor;
- 20% batches of 20 events: views of known people and of new anonymous visitors, some of whom
  identify as new users (new profiles, new sessions, merges), every event id new;
- 5% profile reads.

Every 5 s the benchmark samples the server's memory: the proportional set size of the process
and its children (shared pages counted once) and the main process's resident set, and the
entries of each in-memory cache and table (`persona_memory_entries`, printed at half-time and
at the end, so a growth can be traced to a table, or to none of them). The caches
fill during the first minutes; after that a server whose every table has a cap holds its
memory. The bar: the memory at the end is at most 5% above the memory at the half-way point
(the median of the samples in the minute around it), with no transport error or non-2xx answer.

    .venv/bin/python benchmarks/memory_soak.py [--seconds 600] [--shop 100000:10000:1000000]
    .venv/bin/python benchmarks/memory_soak.py --json soak.json   # every sample
    .venv/bin/python benchmarks/memory_soak.py --home HOME --data SHOP  # a trained home
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq

from decisions_http import PLACEMENTS, placements
from http_load import require_wrk
from recommend_http import prepare_shop, train
from scale import known_people, proportional_gb
from server_process import PERSONA, create_key, serving

BAR_GROWTH = 0.05  # second half
SAMPLE_SECONDS = 5.0
CONNECTIONS = 16

# Written for this benchmark rather than taken from http_load: the mix needs a method, path and
# body per request, and ids that are new on every request (counted per connection thread).
_SCRIPT = """
local function lines(path)
  local found = {}
  for line in io.lines(path) do found[#found + 1] = line end
  return found
end
local people = lines(os.getenv("SOAK_PEOPLE"))
local items = lines(os.getenv("SOAK_ITEMS"))
local placements = os.getenv("SOAK_PLACEMENTS")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SOAK_KEY")
wrk.headers["Content-Type"] = "application/json"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end
local counter = 0
function init(args)
  math.randomseed(number or 1)
end
local function fresh(prefix)
  counter = counter + 1
  return string.format("%s-%d-%d-%d", prefix, number or 1, counter, math.random(1e9))
end
local function known() return people[math.random(#people)] end
local function item() return items[math.random(#items)] end
local function events()
  local parts = {}
  local visitor = fresh("visitor")
  for i = 1, 20 do
    local who
    if i % 2 == 0 then
      who = string.format('"user_id":"%s"', known())
    else
      who = string.format('"anonymous_id":"%s"', visitor)
    end
    parts[#parts + 1] = string.format(
      '{"event_id":"%s","type":"view",%s,"item_id":"%s","context":{"device":"mobile"}}',
      fresh("e"), who, item())
  end
  if math.random() < 0.3 then
    parts[#parts + 1] = string.format(
      '{"event_id":"%s","type":"identify","anonymous_id":"%s","user_id":"%s"}',
      fresh("e"), visitor, fresh("user"))
  end
  return "[" .. table.concat(parts, ",") .. "]"
end
request = function()
  local r = math.random()
  if r < 0.40 then
    return wrk.format("GET", "/v1/users/" .. known() .. "/recommendations?n=10")
  elseif r < 0.55 then
    return wrk.format("GET", "/v1/users/" .. fresh("stranger") .. "/recommendations?n=10")
  elseif r < 0.75 then
    local who
    if math.random() < 0.5 then
      who = string.format('"user_id":"%s"', known())
    else
      who = string.format('"anonymous_id":"%s"', fresh("visitor"))
    end
    return wrk.format("POST", "/v1/decisions", nil, string.format(
      '{%s,"context":{"device":"desktop"},"placements":%s}', who, placements))
  elseif r < 0.95 then
    return wrk.format("POST", "/v1/events", nil, events())
  else
    return wrk.format("GET", "/v1/profiles/" .. known())
  end
end
function done(summary, latency, requests)
  io.write(string.format("SOAK n=%d p99=%d errors=%d status=%d\\n", summary.requests,
    latency:percentile(99), summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
"""
_RESULT = re.compile(r"SOAK n=(\d+) p99=(\d+) errors=(\d+) status=(\d+)")


def resident_mb(pid: int) -> dict[str, float]:
    """The resident set and its parts: the heap and other anonymous memory, mapped files (the
    model set's arrays, the database's shared memory), shared memory."""
    status = Path(f"/proc/{pid}/status").read_text()
    parts = dict(re.findall(r"^(VmRSS|RssAnon|RssFile|RssShmem):\s+(\d+) kB", status, re.M))
    names = {"VmRSS": "rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb", "RssShmem": "shm_mb"}
    return {names[name]: int(kb) / 1024 for name, kb in parts.items()}


_TABLE = re.compile(r'persona_memory_entries\{table="([^"]+)"\} ([\d.e+]+)')


def memory_tables(base_url: str, key: str) -> dict[str, float]:
    """Entries of each in-memory cache and table, from the server's metrics."""
    text = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    return {name: float(value) for name, value in _TABLE.findall(text)}


def sample(
    pid: int, tables: Callable[[], dict[str, float]], stop: threading.Event, samples: list[dict]
) -> None:
    started = time.monotonic()
    while not stop.wait(SAMPLE_SECONDS):
        samples.append(
            {
                "s": time.monotonic() - started,
                "pss_mb": proportional_gb(pid) * 1024,
                **resident_mb(pid),
                "tables": tables(),
            }
        )


def prepare(home: Path, shop: Path, shape: str | None) -> tuple[list[str], list[str]]:
    """The shop generated, imported and trained (unless ``shape`` is None: ``home`` already
    holds ``shop``, trained), with the placements; returns known people and the items."""
    if shape is not None:
        prepare_shop(home, shop, shape)
        print(f"persona train: {train(home):.1f} s", flush=True)
    for raw in placements():
        path = shop / f"{raw['name']}.json"
        path.write_bytes(orjson.dumps(raw))
        subprocess.run(  # an existing placement (a home used before) is refused, and kept
            [*PERSONA, "--home", str(home), "placements", "create", str(path)],
            capture_output=True,
        )
    items = pc.unique(pq.read_table(shop / "items.parquet", columns=["item_id"])[0])
    return known_people(shop / "events.parquet"), [str(i) for i in items.to_pylist()]


def soak(
    home: Path,
    work: Path,
    people: list[str],
    items: list[str],
    seconds: float,
    cache_entries: int | None = None,
) -> dict:
    key = create_key(home, "ingest", "read", "decide")
    (work / "people.txt").write_text("\n".join(people) + "\n")
    (work / "items.txt").write_text("\n".join(items) + "\n")
    script = work / "soak.lua"
    script.write_text(_SCRIPT)
    env = dict(
        os.environ,
        SOAK_PEOPLE=str(work / "people.txt"),
        SOAK_ITEMS=str(work / "items.txt"),
        SOAK_KEY=key,
        SOAK_PLACEMENTS=orjson.dumps(PLACEMENTS).decode(),
    )
    samples: list[dict[str, float]] = []
    settings = {}
    if cache_entries is not None:
        settings = {
            "PERSONA_RECOMMEND__CACHE_ENTRIES": str(cache_entries),
            "PERSONA_PROFILES__CACHE_ENTRIES": str(cache_entries),
        }
    with serving(home, settings) as server:
        stop = threading.Event()
        tables = partial(memory_tables, server.base_url, key)
        sampler = threading.Thread(target=sample, args=(server.process.pid, tables, stop, samples))
        sampler.start()
        try:
            completed = subprocess.run(
                [
                    require_wrk(),
                    "-t1",
                    f"-c{CONNECTIONS}",
                    f"-d{round(seconds)}s",
                    "--timeout",
                    "10s",
                    "-s",
                    str(script),
                    server.base_url,
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            stop.set()
            sampler.join()
    found = _RESULT.search(completed.stdout)
    if not found:
        raise RuntimeError(f"could not read wrk's output:\n{completed.stdout}")
    requests, p99_us, errors, status = (int(g) for g in found.groups())
    if errors or status:
        raise RuntimeError(f"{errors} transport errors, {status} non-2xx:\n{completed.stdout}")
    return {"requests": requests, "seconds": seconds, "p99_ms": p99_us / 1000, "samples": samples}


def around(samples: list[dict[str, float]], at: float, field: str) -> float:
    """The median of the samples within 30 s of ``at``."""
    near = [s[field] for s in samples if abs(s["s"] - at) <= 30] or [samples[-1][field]]
    return statistics.median(near)


def print_tables(samples: list[dict], half_s: float) -> None:
    """Each in-memory table's entries at half-time and at the end (the ones that changed)."""
    middle = min(samples, key=lambda s: abs(s["s"] - half_s))["tables"]
    last = samples[-1]["tables"]
    print(f"{'in-memory table':<40} {'half-time':>10} {'end':>10}")
    for name in sorted(last):
        if last[name] or middle.get(name):
            print(f"{name:<40} {middle.get(name, 0):>10,.0f} {last[name]:>10,.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--shop", default="100000:10000:1000000", help="PEOPLE:ITEMS:EVENTS")
    parser.add_argument("--json", type=Path, help="write every sample here")
    parser.add_argument(
        "--home", type=Path, help="a home already holding --data's shop, trained (kept as is)"
    )
    parser.add_argument("--data", type=Path, help="the shop's directory (with --home)")
    parser.add_argument(
        "--cache-entries",
        type=int,
        help="answer and profile cache caps (default: the settings'); small caps fill within"
        " the first minutes, so what grows after that is something without a cap",
    )
    options = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        if options.home is not None:
            home, shop = options.home, options.data
            people, items = prepare(home, shop, None)
        else:
            home, shop = work / "home", work / "shop"
            people, items = prepare(home, shop, options.shop)
        result = soak(home, work, people, items, options.seconds, options.cache_entries)
    samples = result["samples"]
    fields = {"PSS": "pss_mb", "RSS": "rss_mb", "anon": "anon_mb", "file": "file_mb"}
    print(f"{'minute':>6}" + "".join(f"{name + ' MB':>10}" for name in fields))
    for minute in range(0, int(options.seconds // 60) + 1):
        at = min(minute * 60.0, samples[-1]["s"])
        values = "".join(f"{around(samples, at, field):>10.0f}" for field in fields.values())
        print(f"{minute:>6}{values}")
    half = around(samples, options.seconds / 2, "pss_mb")
    end = statistics.median(s["pss_mb"] for s in samples[-6:])
    print_tables(samples, options.seconds / 2)
    growth = end / half - 1
    rate = result["requests"] / result["seconds"]
    print(
        f"{result['requests']:,} requests ({rate:,.0f}/s, p99 {result['p99_ms']:.1f} ms), no error;"
        f" memory {half:,.0f} MB at half-time, {end:,.0f} MB at the end: {growth:+.1%}"
        f" (bar at most {BAR_GROWTH:+.0%})"
    )
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=1))
    return 0 if growth <= BAR_GROWTH else 1


if __name__ == "__main__":
    raise SystemExit(main())
