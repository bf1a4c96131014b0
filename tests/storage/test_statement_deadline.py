"""``statement_deadline`` stops a statement that runs past its time, on both backends, and
leaves the connection usable."""

from __future__ import annotations

import time

import pytest

from persona.engine import Engine
from persona.errors import BusyError
from persona.storage.sql.common import statement_deadline

SLOW = {
    # a recursive count to a hundred million: seconds of virtual-machine steps
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)"
    " SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(5)",
}


def test_a_statement_past_its_deadline_is_stopped(engine: Engine) -> None:
    started = time.perf_counter()
    with (
        pytest.raises(BusyError, match="took longer than 50 ms"),
        engine.storage.read() as uow,
        statement_deadline(uow.connection, 50),
    ):
        uow.connection.exec_driver_sql(SLOW[engine.storage.dialect])
    assert time.perf_counter() - started < 2
    with engine.storage.read() as uow:  # the pooled connection works, without a deadline
        with statement_deadline(uow.connection, None):
            assert uow.connection.exec_driver_sql("SELECT 1").scalar() == 1
        assert uow.connection.exec_driver_sql("SELECT 2").scalar() == 2


def test_a_statement_within_its_deadline_runs(engine: Engine) -> None:
    with engine.storage.read() as uow, statement_deadline(uow.connection, 5_000):
        assert uow.connection.exec_driver_sql("SELECT 1").scalar() == 1
