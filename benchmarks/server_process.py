"""A real `persona serve` process for the HTTP benchmarks, with MovieLens items and an API key.

The benchmarks import this module by name (`python benchmarks/<name>.py` puts this folder on
the import path).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from persona.demo.movielens import movie_items
from persona.engine import Engine
from persona.settings import load_settings

PERSONA = [sys.executable, "-m", "persona"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_catalog(home: Path, frame: pd.DataFrame) -> int:
    """Store the MovieLens movies as items (so ingest computes category affinities)."""
    engine = Engine.open(load_settings(home=home))
    try:
        items = movie_items(frame)
        for start in range(0, len(items), 1000):
            engine.catalog.upsert(items[start : start + 1000])
    finally:
        engine.close()
    return len(items)


def create_key(home: Path, *scopes: str) -> str:
    """A new API key, made by the real command line (`persona keys create`)."""
    scope_options = [option for scope in scopes for option in ("--scope", scope)]
    completed = subprocess.run(
        [*PERSONA, "--home", str(home), "keys", "create", *scope_options, "--name", "benchmark"],
        check=True,
        capture_output=True,
        text=True,
    )
    return completed.stdout.strip()


@dataclass(frozen=True)
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    ready_s: float  # from start until it answered /readyz and every worker had started
    settled_s: float | None  # ... until every worker logged ``settled`` (when asked)


@contextmanager
def running_server(
    home: Path, env: dict[str, str] | None = None, *, settled: str | None = None
) -> Iterator[str]:
    """`persona serve` on a free port until the block ends; yields its base URL (see
    ``serving``)."""
    with serving(home, env, settled=settled) as server:
        yield server.base_url


@contextmanager
def serving(
    home: Path, env: dict[str, str] | None = None, *, settled: str | None = None
) -> Iterator[Server]:
    """`persona serve` on a free port until the block ends.

    ``env`` adds environment variables (settings such as ``PERSONA_RECOMMEND__CACHE_SECONDS``);
    ``settled``: also wait until every worker logged a line holding this text (the work it
    does once after start, such as verifying the shortlists, is then not measured).
    """
    # The preparation wrote hundreds of megabytes (events, models). Flushed now, they cannot
    # reach the disk in the middle of the measurement: the kernel writes dirty pages back
    # after 30 s, and a commit's fsync then waits for that flood (stalls of 100 to 350 ms).
    os.sync()
    port = free_port()
    log_path = home / "server.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*PERSONA, "--home", str(home), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            # A benchmark measures what one key can get out of the server: its rate limit off;
            # one process unless the benchmark asks for more (its figures are per process).
            env={
                **os.environ,
                "PERSONA_ACCESS__RATE_LIMIT_PER_SECOND": "0",
                "PERSONA_SERVER__WORKERS": "1",
                **(env or {}),
            },
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base_url, log_path)
        workers = int((env or {}).get("PERSONA_SERVER__WORKERS", "1"))
        _wait_logged(log_path, "Application startup complete", workers)
        ready_s = time.monotonic() - started
        settled_s = None
        if settled:
            _wait_logged(log_path, settled, workers)
            settled_s = time.monotonic() - started
        yield Server(base_url, process, ready_s, settled_s)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_logged(log_path: Path, text: str, workers: int) -> None:
    """Every worker logged ``text``. "Application startup complete": it has started (loaded its
    model set) and accepts connections; the clients' connections, opened at once and kept,
    would otherwise all go to the first one up."""
    deadline = time.monotonic() + 120
    while log_path.read_text().count(text) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers did not all log {text!r} within 120 s")
        time.sleep(0.1)


def _wait_ready(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, path: str = "/readyz"
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become ready within 60 s")
