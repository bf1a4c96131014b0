"""Closed-loop HTTP load with `wrk`, the load generator the latency benchmarks share.

`wrk` is a small C program (Debian and Ubuntu: `apt-get install wrk`): its connections cost the
machine little next to a Python server, so the latencies measured are the server's, not the
client's. A Python client with one thread per connection adds its own waits for the GIL (several
milliseconds at the tail with 16 threads), which is why the benchmarks do not use one.

Each connection sends one request at a time, for a path drawn at random from a list, and the
percentiles come from wrk's own latency histogram (`--latency`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Paths are read from a file so that a run can draw from thousands of them; each connection
# picks its next path at random (seeded, so two runs send the same sequence).
_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("LOAD_PATHS")) do paths[#paths + 1] = line end
local key = os.getenv("LOAD_KEY")
if key and #key > 0 then wrk.headers["Authorization"] = "Bearer " .. key end
local method = os.getenv("LOAD_METHOD") or "GET"
local bodies = {}
local bodies_file = os.getenv("LOAD_BODIES")
if bodies_file and #bodies_file > 0 then
  for line in io.lines(bodies_file) do bodies[#bodies + 1] = line end
  wrk.headers["Content-Type"] = "application/json"
end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(seed or 1)
end
request = function()
  local body = nil
  if #bodies > 0 then body = bodies[math.random(#bodies)] end
  return wrk.format(method, paths[math.random(#paths)], nil, body)
end
function done(summary, latency, requests)
  io.write(string.format("LOAD p50=%d p90=%d p95=%d p99=%d max=%d n=%d errors=%d status=%d\\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.errors.status))
end
"""
_RESULT = re.compile(
    r"LOAD p50=(\d+) p90=(\d+) p95=(\d+) p99=(\d+) max=(\d+) n=(\d+) errors=(\d+) status=(\d+)"
)
_DURATION = re.compile(r"requests in ([\d.]+)(ms|s|m)\b")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class LoadResult:
    """One closed-loop run: latency percentiles (milliseconds) and throughput."""

    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def row(self, name: str) -> str:
        return (
            f"{name:<16} {self.p50_ms:>7.2f} {self.p95_ms:>7.2f} {self.p99_ms:>7.2f}"
            f" {self.rate:>9,.0f}"
        )


HEADER = f"{'route':<16} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>9}"


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("this benchmark needs wrk on the PATH (apt-get install wrk)")
    return found


def closed_loop(
    base_url: str,
    paths: list[str],
    *,
    key: str | None = None,
    connections: int = 16,
    threads: int = 1,
    seconds: float = 10.0,
    warm_up_seconds: float = 2.0,
    method: str = "GET",
    bodies: list[str] | None = None,
) -> LoadResult:
    """``connections`` connections, each one request at a time, for ``seconds`` after a warm-up.

    Each request goes to a path drawn from ``paths`` with, when ``bodies`` are given, a JSON
    body drawn from them (one document per line, so no newline inside one).

    Any transport error or non-2xx answer fails the run: a fast error is not a fast answer.
    """
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(_SCRIPT)
        path_file = Path(tmp) / "paths.txt"
        path_file.write_text("\n".join(paths) + "\n")
        body_file = Path(tmp) / "bodies.txt"
        if bodies:
            body_file.write_text("\n".join(bodies) + "\n")
        env = dict(
            os.environ,
            LOAD_PATHS=str(path_file),
            LOAD_KEY=key or "",
            LOAD_METHOD=method,
            LOAD_BODIES=str(body_file) if bodies else "",
        )

        def run(duration: float) -> str:
            completed = subprocess.run(
                [
                    wrk,
                    f"-t{threads}",
                    f"-c{connections}",
                    f"-d{max(1, round(duration))}s",
                    "--timeout",
                    "10s",
                    "-s",
                    str(script),
                    base_url,
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            return completed.stdout

        if warm_up_seconds > 0:
            run(warm_up_seconds)
        output = run(seconds)
    found = _RESULT.search(output)
    duration = _DURATION.search(output)
    if not found or not duration:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    p50, p90, p95, p99, most, requests, errors, status = (int(g) for g in found.groups())
    if errors or status:
        raise RuntimeError(f"{errors} transport errors and {status} non-2xx answers:\n{output}")
    elapsed = float(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
    return LoadResult(
        p50_ms=p50 / 1000,
        p90_ms=p90 / 1000,
        p95_ms=p95 / 1000,
        p99_ms=p99 / 1000,
        max_ms=most / 1000,
        requests=requests,
        seconds=elapsed,
    )
