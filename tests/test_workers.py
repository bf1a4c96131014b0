"""Several server processes on one store: what one process commits reaches the others' answers
within a second, one process at a time runs the background jobs, a model set promoted by one is
served by all, and `persona serve --workers N` runs N processes that die with the first.

Real `persona serve` processes at their default settings (the recommendation budget included),
each with its own caches.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from persona.access import Scope
from persona.engine import Engine
from persona.recommend.registry import ModelRegistry
from persona.settings import Settings
from tests.recommend.synthetic import stock
from tests.server import free_port, start_server

pytestmark = pytest.mark.slow

DEADLINE_S = 1.0  # the bar: a commit in one process shows in another's answers within this


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> tuple[Path, dict[str, str]]:
    """A store with the synthetic shop and a trained model set."""
    engine = Engine.open(Settings(home=tmp_path, database_url=database_url))
    try:
        stock(engine)
    finally:
        engine.close()
    return tmp_path, {"PERSONA_DATABASE_URL": database_url}


@contextmanager
def _servers(
    home: Path, env: dict[str, str], count: int, *args: str, dev: bool = True
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    started = []
    try:
        for _ in range(count):
            port = free_port()
            mode = ["--dev"] if dev else []
            process = start_server(home, port, *mode, "--workers", "1", *args, env=env)
            started.append((f"http://127.0.0.1:{port}", process))
        yield started
    finally:
        for _, process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)


def recommended(base_url: str, person: str, n: int = 5) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/v1/users/{person}/recommendations?n={n}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def within_deadline(check: Callable[[], bool], started: float) -> float:
    """Seconds from ``started`` until ``check()`` holds; fails past twice the deadline."""
    while not check():
        assert time.monotonic() - started < 2 * DEADLINE_S, "not seen within the deadline"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_commit_in_one_process_changes_the_answers_of_another_within_a_second(
    home: tuple[Path, dict[str, str]],
) -> None:
    path, env = home
    with _servers(path, env, 2) as servers:
        (first, _), (second, _) = servers
        before = recommended(second, "p0")
        assert before["source"] == "pipeline"
        assert recommended(second, "p0")["cached"] is True  # the second process caches it
        top = before["items"][0]["item_id"]
        bought = {"type": "purchase", "user_id": "p0", "item_id": top}
        started = time.monotonic()
        assert httpx.post(f"{first}/v1/events", json=bought).status_code == 200
        took = within_deadline(
            lambda: top not in {i["item_id"] for i in recommended(second, "p0")["items"]},
            started,
        )
        assert took < DEADLINE_S

        # consent withdrawn through one process: the other stops personalizing
        assert recommended(second, "p1")["source"] == "pipeline"
        started = time.monotonic()
        revoked = httpx.put(f"{first}/v1/users/p1/consent", json={"personalization": "revoked"})
        assert revoked.status_code == 200, revoked.text
        took = within_deadline(lambda: recommended(second, "p1")["source"] != "pipeline", started)
        assert took < DEADLINE_S

        # an erasure through one process: the other answers as for someone never seen. The
        # stranger's answer is asked at the same moment: erasing p2's events and rewriting the
        # model sets without them may change what a stranger gets too.
        def items(person: str) -> list[str]:
            return [i["item_id"] for i in recommended(second, person)["items"]]

        assert items("p2") != items("never-seen")
        started = time.monotonic()
        assert httpx.delete(f"{first}/v1/subjects/p2").status_code == 200
        took = within_deadline(lambda: items("p2") == items("never-seen"), started)
        assert took < DEADLINE_S


def test_with_redis_a_key_s_rate_limit_holds_across_processes(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """Two real servers on one store and one Redis: a key with a burst of 3 (and next to no
    refill) is answered three times in all, then refused by both. Each server alone would
    answer it three times."""
    engine = Engine.open(Settings(home=tmp_path, database_url=database_url))
    try:
        secret = engine.keys.create("busy", [Scope.READ]).secret
    finally:
        engine.close()
    env = {
        "PERSONA_DATABASE_URL": database_url,
        "PERSONA_REDIS_URL": redis_url,
        "PERSONA_ACCESS__RATE_LIMIT_PER_SECOND": "0.001",
        "PERSONA_ACCESS__RATE_LIMIT_BURST": "3",
    }
    headers = {"Authorization": f"Bearer {secret}"}
    with _servers(tmp_path, env, 2, dev=False) as servers:
        (first, _), (second, _) = servers
        answered = [
            httpx.get(f"{url}/v1/items", headers=headers, timeout=10).status_code
            for url in (first, second, first, second, first, second)
        ]
    assert answered == [200, 200, 200, 429, 429, 429]


def test_with_redis_a_profile_written_through_one_process_is_read_fresh_through_another(
    home: tuple[Path, dict[str, str]], redis_url: str
) -> None:
    """Both processes read profiles through their own memory and Redis: after each write
    through the first, the second answers the new profile within a second."""
    path, env = home
    with _servers(path, {**env, "PERSONA_REDIS_URL": redis_url}, 2) as servers:
        (first, _), (second, _) = servers

        def count(person: str) -> int:
            answer = httpx.get(f"{second}/v1/profiles/{person}")
            assert answer.status_code == 200, answer.text
            return int(answer.json()["event_count"])

        for n in range(5):
            before = count("p3")  # cached by the second process, and in Redis
            assert count("p3") == before
            event = {"type": "view", "user_id": "p3", "item_id": f"fresh-{n}"}
            started = time.monotonic()
            assert httpx.post(f"{first}/v1/events", json=event).status_code == 200
            took = within_deadline(lambda before=before: count("p3") == before + 1, started)
            assert took < DEADLINE_S


@pytest.mark.parametrize("leases", ["store", "redis"])
def test_one_process_runs_the_jobs_and_another_takes_over_when_it_dies(
    home: tuple[Path, dict[str, str]], leases: str, request: pytest.FixtureRequest
) -> None:
    path, env = home
    env = {**env, "PERSONA_SERVER__JOBS_LEASE_SECONDS": "2"}
    if leases == "redis":
        env["PERSONA_REDIS_URL"] = request.getfixturevalue("redis_url")
    with _servers(path, env, 2) as started:
        engine = Engine.open(
            Settings(
                home=path,
                database_url=env["PERSONA_DATABASE_URL"],
                redis_url=env.get("PERSONA_REDIS_URL"),
            )
        )
        try:
            pids = {process.pid: process for _, process in started}

            def holder() -> int | None:  # read where the servers keep it
                found = engine.leases.lease_holders(["jobs"]).get("jobs")
                return int(found.split(":")[1]) if found else None

            deadline = time.monotonic() + 10
            while holder() not in pids:
                assert time.monotonic() < deadline, "no process took the jobs lease"
                time.sleep(0.1)
            leader = holder()
            assert leader is not None
            os.kill(leader, signal.SIGKILL)
            pids[leader].wait(timeout=10)
            killed_at = time.monotonic()
            while holder() in (None, leader):
                assert time.monotonic() - killed_at < 10, "nobody took over the jobs"
                time.sleep(0.1)
            assert holder() in pids and holder() != leader
        finally:
            engine.close()


def test_a_model_set_trained_elsewhere_is_served_by_every_process(
    home: tuple[Path, dict[str, str]],
) -> None:
    path, env = home
    with _servers(path, env, 2) as started:
        serving = {httpx.get(f"{url}/v1/models").json()["serving"] for url, _ in started}
        for url, _ in started:
            recommended(url, "p0")  # loads the champion
        trained = subprocess.run(
            [sys.executable, "-m", "persona", "--home", str(path), "train"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert trained.returncode == 0, trained.stderr
        finished = time.monotonic()
        engine = Engine.open(Settings(home=path, database_url=env["PERSONA_DATABASE_URL"]))
        try:
            champion = engine.recommendations.registry.champion()
        finally:
            engine.close()
        assert champion is not None and champion.version not in serving
        for url, _ in started:
            while recommended(url, "p0")["model_version"] != champion.version:
                assert time.monotonic() - finished < 30, f"{url} still serves the old model set"
                time.sleep(0.1)


def test_the_leader_retrains_on_schedule_and_every_process_serves_the_result(
    home: tuple[Path, dict[str, str]],
) -> None:
    """Retraining, promotion and reloading inside `persona serve`, as scheduled: one process
    trains (it holds the jobs lease), both serve the new champion."""
    path, env = home
    env = {**env, "PERSONA_RECOMMEND__RETRAIN_INTERVAL_SECONDS": "3"}
    trained_before = ModelRegistry(path / "models").champion()
    assert trained_before is not None
    with _servers(path, env, 2) as started:
        # the leader may retrain before the second process is up, so each process is compared
        # with the champion the store held before either started, not with the other process
        deadline = time.monotonic() + 120
        for url, _ in started:
            while recommended(url, "p0")["model_version"] == trained_before.version:
                assert time.monotonic() < deadline, f"{url} never served a retrained model set"
                time.sleep(0.2)
        ports = [url.rsplit(":", 1)[1] for url, _ in started]
        trained = [
            (path / f"server-{port}.log").read_text().count("scheduled retraining")
            + (path / f"server-{port}.log").read_text().count('"trained v')
            for port in ports
        ]
        assert sorted(trained)[0] == 0 and sorted(trained)[1] >= 1, trained  # one trainer


def test_serve_with_workers_runs_processes_that_die_with_the_first(
    home: tuple[Path, dict[str, str]],
) -> None:
    path, env = home
    port = free_port()
    server = start_server(path, port, "--dev", "--workers", "2", env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        answers = {recommended(base_url, f"p{i}")["source"] for i in range(20)}
        assert answers == {"pipeline"}
        children = _children(server.pid)
        assert len(children) >= 2
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, "workers outlived the server"
        time.sleep(0.05)
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its dead parent's reaper) counts as gone
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_the_leader_refreshes_segments_on_schedule(home: tuple[Path, dict[str, str]]) -> None:
    """Time alone moves people out of a windowed segment: the segment refresh job does it,
    inside `persona serve`, in the one process that holds the jobs lease."""
    path, env = home
    env = {**env, "PERSONA_SEGMENTS__REFRESH_SECONDS": "1"}
    with _servers(path, env, 2) as started:
        url = started[0][0]
        seen = {"type": "view", "user_id": "s1", "item_id": "i1", "timestamp": time.time() - 50}
        assert httpx.post(f"{url}/v1/events", json=seen, timeout=10).status_code == 200
        segment = {"name": "just_looking", "rule": "did(view) within 1m"}
        assert httpx.post(f"{url}/v1/segments", json=segment, timeout=10).status_code == 201

        def member() -> bool:
            answer = httpx.get(f"{url}/v1/profiles/s1/segments", timeout=10)
            return "just_looking" in answer.json()["segments"]

        assert member()  # computed when the segment was created
        deadline = time.monotonic() + 60  # the view leaves the window about 10 s from now
        while member():
            assert time.monotonic() < deadline, "no refresh moved s1 out of the segment"
            time.sleep(0.5)
        refreshed = _log_counts(path, started, "segments refreshed")
        assert refreshed[0] == 0 and refreshed[1] >= 1, refreshed  # one process


def _log_counts(
    path: Path, started: list[tuple[str, subprocess.Popen[bytes]]], line: str
) -> list[int]:
    """How often each started server wrote ``line`` to its log, fewest first."""
    ports = [url.rsplit(":", 1)[1] for url, _ in started]
    return sorted((path / f"server-{port}.log").read_text().count(line) for port in ports)


def test_the_leader_applies_retention_on_schedule(home: tuple[Path, dict[str, str]]) -> None:
    """Views older than a day are deleted by the retention job inside `persona serve`, in the
    one process that leads; the purchase of the same moment is kept, and the run is audited."""
    path, env = home
    env = {
        **env,
        "PERSONA_PRIVACY__RETENTION_DAYS": '{"view": 1}',
        "PERSONA_PRIVACY__RETENTION_INTERVAL_SECONDS": "1",
    }
    with _servers(path, env, 2) as started:
        url = started[0][0]
        two_days_ago = time.time() - 2 * 86_400
        old = [
            {"type": kind, "user_id": "r1", "item_id": "i1", "timestamp": two_days_ago}
            for kind in ("view", "purchase")
        ]
        assert httpx.post(f"{url}/v1/events", json=old, timeout=10).status_code == 200

        def kinds() -> list[str]:
            answer = httpx.get(f"{url}/v1/subjects/r1/export", timeout=10)
            assert answer.status_code == 200, answer.text
            return sorted(event["type"] for event in answer.json()["events"])

        deadline = time.monotonic() + 30
        while "view" in kinds():
            assert time.monotonic() < deadline, "no retention run deleted the old view"
            time.sleep(0.5)
        assert kinds() == ["purchase"]
        audit = httpx.get(f"{url}/v1/audit", timeout=10).json()
        assert any(entry["action"] == "retention.run" for entry in audit["entries"]), audit
        runs = _log_counts(path, started, "retention deleted events")
        assert runs[0] == 0 and runs[1] >= 1, runs  # one process


def test_the_leader_retrains_clusters_on_schedule(home: tuple[Path, dict[str, str]]) -> None:
    """Clusters are trained by the predictive job inside `persona serve`, again at each
    interval, in the one process that leads; every process serves the result."""
    path, env = home
    env = {**env, "PERSONA_PREDICTIONS__RETRAIN_INTERVAL_SECONDS": "2"}
    with _servers(path, env, 2) as started:
        urls = [url for url, _ in started]  # the store had no clusters before these started

        def trained_at(url: str) -> str | None:
            answer = httpx.get(f"{url}/v1/clusters", timeout=10)
            assert answer.status_code == 200, answer.text
            return answer.json()["trained_at"]  # type: ignore[no-any-return]

        deadline = time.monotonic() + 60
        while trained_at(urls[1]) is None:
            assert time.monotonic() < deadline, "no process trained clusters"
            time.sleep(0.5)
        first = trained_at(urls[1])
        clusters = httpx.get(f"{urls[1]}/v1/clusters", timeout=10).json()["clusters"]
        assert sum(cluster["size"] for cluster in clusters) > 0
        member_of = httpx.get(f"{urls[0]}/v1/profiles/p0/segments", timeout=10).json()
        assert any(name.startswith("cluster_") for name in member_of["segments"]), member_of
        while trained_at(urls[0]) == first:  # trained again at the next interval
            assert time.monotonic() < deadline, "clusters were trained only once"
            time.sleep(0.5)
        runs = _log_counts(path, started, "predictive models retrained")
        assert runs[0] == 0 and runs[1] >= 2, runs  # one process


def test_the_first_requests_after_ready_are_answered_by_the_pipeline(
    home: tuple[Path, dict[str, str]],
) -> None:
    """At the default budget (50 ms): the model set is loaded and warmed before /readyz says
    so, so neither a ranking from scratch (a request naming its context) nor one from the
    batch's shortlist falls back to trending."""
    path, env = home
    with _servers(path, env, 1) as [(base_url, _)]:
        live = httpx.get(
            f"{base_url}/v1/users/p0/recommendations?n=10&device=mobile&country=FR", timeout=10
        )
        assert live.status_code == 200, live.text
        assert live.json()["source"] == "pipeline", live.json()
        assert not live.json()["cached"]
        assert recommended(base_url, "p1")["source"] == "pipeline"
        assert recommended(base_url, "someone-new")["source"] == "pipeline"
