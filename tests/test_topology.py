"""The topology of docs/deployment.md on this machine: two `persona serve` processes on one
PostgreSQL store and one Redis, one `persona worker`, the change stream, a segment webhook
received by an HTTP server of the test.

Events go through both processes, and recommendations and decisions are asked of both, while the
process holding the jobs lease and the worker are killed with SIGKILL and started again. Then:
every acknowledged event is stored, every person who bought entered the segment and the webhook
received that change (several times perhaps, always under one id), the jobs lease is held by a
live process, the worker's lag drains to nothing, and its export holds each event once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from persona.engine import Engine
from persona.settings import Settings
from tests.recommend.synthetic import stock
from tests.server import free_port, start_server
from tests.stream.test_stream import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def topology(
    tmp_path: Path, postgres_schema_url: str, redis_url: str
) -> tuple[Path, dict[str, str]]:
    env = {
        "PERSONA_DATABASE_URL": postgres_schema_url,
        "PERSONA_REDIS_URL": redis_url,
        "PERSONA_STREAM_URL": redis_url,
        "PERSONA_STREAM__NAME": f"topology:{tmp_path.name}",
        "PERSONA_STREAM__CLAIM_IDLE_SECONDS": "2",
        "PERSONA_SERVER__JOBS_LEASE_SECONDS": "2",
    }
    settings = Settings(home=tmp_path, database_url=postgres_schema_url, redis_url=redis_url)
    engine = Engine.open(settings)
    try:
        stock(engine)
    finally:
        engine.close()
    return tmp_path, env


def start_worker(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (home / f"worker-{time.monotonic_ns()}.log").open("wb")
    export = ["--export", str(home / "export")]
    command = [sys.executable, "-m", "persona", "--home", str(home), "worker", *export]
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log
    )


class Load:
    """Clients posting purchases of new people to every live server in turn, and asking each
    for recommendations and decisions; a batch refused or cut off is sent again (to the next
    server) with the same ids, as a client retries."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.acknowledged: set[str] = set()
        self.answers = {"recommendations": 0, "decisions": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.batches = 0

    def run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            batch = [
                {
                    "event_id": f"t{self.batches}-{i}",
                    "type": "purchase",
                    "user_id": f"buyer{self.batches}-{i}",
                    "item_id": "i1",
                    "value": 3.0,
                }
                for i in range(10)
            ]
            self.batches += 1
            while not self.stop.is_set():
                base = self.servers[turn % len(self.servers)]
                turn += 1
                try:
                    answer = httpx.post(f"{base}/v1/events", json={"events": batch}, timeout=5)
                    if answer.status_code == 200:
                        outcomes = answer.json()["events"]
                        self.acknowledged |= {
                            o["event_id"]
                            for o in outcomes
                            if o["status"] in ("accepted", "duplicate")
                        }
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            self.ask(self.servers[turn % len(self.servers)])
            time.sleep(0.02)

    def ask(self, base: str) -> None:
        try:
            listed = httpx.get(f"{base}/v1/users/p1/recommendations?n=5", timeout=5)
            if listed.status_code == 200 and listed.json()["items"]:
                self.answers["recommendations"] += 1
            decided = httpx.post(
                f"{base}/v1/decisions",
                json={"placements": ["hero"], "user_id": "p2"},
                timeout=5,
            )
            if decided.status_code == 200 and decided.json()["decisions"][0]["variant"]:
                self.answers["decisions"] += 1
        except httpx.TransportError:
            pass


def lease_holder_pid(engine: Engine, name: str) -> int | None:
    found = engine.leases.lease_holders([name]).get(name)
    return int(found.split(":")[1]) if found else None


def test_two_servers_a_worker_and_the_stream_survive_sigkill_under_load(
    topology: tuple[Path, dict[str, str]],
) -> None:
    home, env = topology
    receiver = Receiver()
    ports = [free_port(), free_port()]
    servers = {p: start_server(home, p, "--dev", "--workers", "1", env=env) for p in ports}
    worker = start_worker(home, env)
    engine = Engine.open(  # the test's view of the store, the leases and the stream
        Settings(
            home=home,
            database_url=env["PERSONA_DATABASE_URL"],
            redis_url=env["PERSONA_REDIS_URL"],
            stream_url=env["PERSONA_STREAM_URL"],
            stream={"name": env["PERSONA_STREAM__NAME"]},
        )
    )
    load = Load([f"http://127.0.0.1:{p}" for p in ports])
    try:
        first = f"http://127.0.0.1:{ports[0]}"
        hook = httpx.post(f"{first}/v1/webhooks", json={"url": receiver.url, "kinds": ["segment"]})
        assert hook.status_code == 201, hook.text
        created = httpx.post(
            f"{first}/v1/segments", json={"name": "buyers", "rule": "did(purchase)"}
        )
        assert created.status_code == 201, created.text
        placement = {
            "name": "hero",
            "policy": "ab",
            "variants": [{"id": "a", "payload": {}}, {"id": "b", "payload": {}}],
        }
        assert httpx.post(f"{first}/v1/placements", json=placement).status_code == 201
        # The export receives what is published once a worker started exporting: from then on.
        assert engine.stream is not None
        deadline = time.monotonic() + 30
        while "export" not in engine.stream.lags():
            assert time.monotonic() < deadline, "the worker did not start exporting"
            time.sleep(0.1)
        load.thread.start()
        time.sleep(3)

        # The jobs leader and the worker die mid-load.
        deadline = time.monotonic() + 10
        while lease_holder_pid(engine, "jobs") not in {s.pid for s in servers.values()}:
            assert time.monotonic() < deadline, "no server took the jobs lease"
            time.sleep(0.1)
        leader = lease_holder_pid(engine, "jobs")
        [killed_port] = [p for p, s in servers.items() if s.pid == leader]
        os.kill(servers[killed_port].pid, signal.SIGKILL)
        os.kill(worker.pid, signal.SIGKILL)
        servers[killed_port].wait(10)
        worker.wait(10)
        time.sleep(2)

        # Started again: the server on a new port, which the clients use from now on.
        port = free_port()
        servers[port] = start_server(home, port, "--dev", "--workers", "1", env=env)
        load.servers[ports.index(killed_port)] = f"http://127.0.0.1:{port}"
        worker = start_worker(home, env)
        time.sleep(4)
        load.stop.set()
        load.thread.join(30)

        # The jobs lease is held by a live server, not the dead one.
        live = {s.pid for s in servers.values() if s.poll() is None}
        deadline = time.monotonic() + 10
        while lease_holder_pid(engine, "jobs") not in live:
            assert time.monotonic() < deadline, "nobody took over the jobs lease"
            time.sleep(0.1)

        # Every acknowledged event is stored.
        assert load.acknowledged, "no event was acknowledged"
        with engine.storage.read() as uow:
            stored = uow.events.payload_hashes(sorted(load.acknowledged))
        assert set(stored) == load.acknowledged
        assert load.answers["recommendations"] > 0 and load.answers["decisions"] > 0

        # Each buyer's entry reached the webhook: once, or again under the same id.
        buyers = {f"u:{e.replace('t', 'buyer', 1)}" for e in load.acknowledged}
        deadline = time.monotonic() + 30
        while True:
            messages = receiver.messages()
            entered = {m["data"]["profile_key"] for m in messages}
            if buyers <= entered:
                break
            assert time.monotonic() < deadline, f"{len(buyers - entered)} entries not delivered"
            time.sleep(0.2)
        ids_by_change: dict[tuple[str, str], set[str]] = {}
        for m in messages:
            change = (m["data"]["profile_key"], m["data"]["change"])
            ids_by_change.setdefault(change, set()).add(m["id"])
        assert all(len(ids) == 1 for ids in ids_by_change.values())

        # The restarted worker handled everything, what the dead one left pending included.
        assert engine.stream is not None
        deadline = time.monotonic() + 15
        while any(engine.stream.lags().values()):
            assert time.monotonic() < deadline, f"lag left: {engine.stream.lags()}"
            time.sleep(0.2)
        webhook = f"webhook:{hook.json()['webhook_id']}"
        assert set(engine.stream.lags()) == {"lake", "export", webhook}

        # The export holds each acknowledged event once, though its worker was killed.
        exported = [
            orjson.loads(line)["id"]
            for path in sorted((home / "export").glob("date=*/*.jsonl"))
            for line in path.read_bytes().splitlines()
        ]
        events = [i.removeprefix("event:") for i in exported if i.startswith("event:t")]
        assert len(events) == len(set(events)) and set(events) == load.acknowledged
    finally:
        load.stop.set()
        for server in servers.values():
            if server.poll() is None:
                server.terminate()
                server.wait(20)
        if worker.poll() is None:
            worker.terminate()
            worker.wait(20)
        engine.close()
        receiver.close()
