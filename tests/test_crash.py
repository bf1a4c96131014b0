"""SIGKILL right after acknowledgements: every acknowledged event is still there on restart."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import pytest

from persona.engine import Engine
from persona.settings import Settings
from tests.server import free_port, start_server

pytestmark = pytest.mark.slow


def test_no_acknowledged_event_is_lost_when_the_server_is_killed(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    env = {"PERSONA_DATABASE_URL": database_url}
    server = start_server(tmp_path, port, "--dev", env=env)
    acknowledged: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            batch_number = 0
            while not stop.is_set():
                batch = [
                    {
                        "event_id": f"b{batch_number}-{i}",
                        "type": "view",
                        "user_id": f"u{i % 50}",
                        "item_id": f"i{i}",
                        "timestamp": 1_700_000_000 + i,
                    }
                    for i in range(200)
                ]
                batch_number += 1
                try:
                    response = http.post("/v1/events", json=batch)
                except httpx.TransportError:
                    return  # the server died mid-request: that batch was never acknowledged
                if response.status_code == 200:
                    acknowledged.extend(
                        e["event_id"]
                        for e in response.json()["events"]
                        if e["status"] == "accepted"
                    )

    worker = threading.Thread(target=load)
    worker.start()
    # kill once a good number of batches were acknowledged, while requests are in flight
    while len(acknowledged) < 3000 and worker.is_alive():
        threading.Event().wait(0.01)
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    stop.set()
    worker.join(timeout=30)
    assert len(acknowledged) >= 3000

    engine = Engine.open(Settings(home=tmp_path, database_url=database_url))
    try:
        with engine.storage.read() as uow:
            stored = uow.events.payload_hashes(acknowledged)
            total = uow.events.count()
        assert len(stored) == len(acknowledged)
        assert total % 200 == 0  # whole batches or nothing: no half-stored batch
        profile = engine.profiles.get("u0")
        assert profile.event_count == total // 50
    finally:
        engine.close()
