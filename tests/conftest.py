"""Shared fixtures: an engine on every storage backend, an HTTP client, a fake clock.

PostgreSQL tests run against ``PERSONA_TEST_POSTGRES_URL`` (default: the local server, database
``test``), each in a schema of its own. In CI (``CI`` set) an unreachable server fails the run;
on a developer's machine those tests are skipped with a message saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.settings import Settings
from persona.storage.database import normalize_url
from tests.browser import browser  # noqa: F401  (a fixture of the browser tests)

POSTGRES_URL = os.environ.get(
    "PERSONA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("PERSONA_") and not key.upper().startswith("PERSONA_TEST_"):
            monkeypatch.delenv(key)


_postgres_state: dict[str, str | None] = {}


def _postgres_problem() -> str | None:
    if "problem" not in _postgres_state:
        try:
            engine = create_engine(normalize_url(POSTGRES_URL))
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
            _postgres_state["problem"] = None
        except Exception as exc:  # any failure to connect means "no server"
            _postgres_state["problem"] = (
                f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.__class__.__name__}"
            )
    return _postgres_state["problem"]


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema, dropped afterwards."""
    problem = _postgres_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (mandatory in CI)")
        pytest.skip(
            f"{problem}; set PERSONA_TEST_POSTGRES_URL to run the PostgreSQL contract tests"
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


REDIS_URL = os.environ.get("PERSONA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database for the test (``PERSONA_TEST_REDIS_URL``), emptied after it. In CI an
    unreachable server fails the test; elsewhere it is skipped with the reason."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        problem = f"Redis not reachable at {REDIS_URL}: {exc.__class__.__name__}"
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (mandatory in CI)")
        pytest.skip(f"{problem}; set PERSONA_TEST_REDIS_URL to run the Redis tests")
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'persona.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW_MS)


def open_engine(home: Path, database_url: str, clock: FakeClock, **settings: object) -> Engine:
    options: dict[str, object] = {"home": home, "database_url": database_url, "dev_mode": True}
    options.update(settings)
    return Engine.open(Settings(**options), clock=clock)  # type: ignore[arg-type]


@pytest.fixture
def engine(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Engine]:
    engine = open_engine(tmp_path, database_url, clock)
    yield engine
    engine.close()


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), raise_server_exceptions=False) as test_client:
        yield test_client
