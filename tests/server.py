"""Run ``persona serve`` as a real process for tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    home: Path,
    port: int,
    *args: str,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """``persona --home HOME [options] serve --port PORT [args]``, once it answers /readyz."""
    command = [
        sys.executable,
        "-m",
        "persona",
        "--home",
        str(home),
        *options,
        "serve",
        "--port",
        str(port),
        *args,
    ]
    log_path = home / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not become ready in 30 s")
