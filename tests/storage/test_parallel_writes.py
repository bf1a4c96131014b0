"""PostgreSQL's parallel writes: side by side unless they lock the same person; a write that
is not parallel runs alone; two that lock each other's people the other way round lose one to
a ``WriteConflictError``, and the other commits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from persona.clock import FakeClock
from persona.engine import Engine
from persona.errors import WriteConflictError
from persona.storage.protocols import UnitOfWork
from tests.conftest import NOW_MS, open_engine
from tests.storage.test_contract import event

pytestmark = pytest.mark.postgres

WAIT_S = 0.5  # long enough for a write that is not blocked to commit


@pytest.fixture
def engine(tmp_path: Path, postgres_schema_url: str) -> Iterator[Engine]:
    opened = open_engine(tmp_path, postgres_schema_url, FakeClock(NOW_MS))
    yield opened
    opened.close()


class Writer(threading.Thread):
    """A write on a thread of its own: ``body`` runs inside it; ``error`` holds its failure."""

    def __init__(self, engine: Engine, body: Callable[[UnitOfWork], None], *, parallel: bool):
        super().__init__(daemon=True)
        self.engine, self.body, self.parallel = engine, body, parallel
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.engine.storage.write(parallel=self.parallel) as uow:
                self.body(uow)
        except BaseException as exc:  # reported to the test
            self.error = exc


def stores(event_id: str, key: str) -> Callable[[UnitOfWork], None]:
    def body(uow: UnitOfWork) -> None:
        uow.lock_profiles([key])
        uow.events.append([event(event_id, key, NOW_MS - 1000)])

    return body


def stored(engine: Engine, *event_ids: str) -> set[str]:
    with engine.storage.read() as uow:
        return set(uow.events.payload_hashes(list(event_ids)))


def test_parallel_writes_on_different_people_commit_side_by_side(engine: Engine) -> None:
    with engine.storage.write(parallel=True) as first:
        assert first.locks_profiles
        stores("e1", "u:a")(first)
        beside = Writer(engine, stores("e2", "u:b"), parallel=True)
        beside.start()
        beside.join(timeout=10)
        assert not beside.is_alive() and beside.error is None
        assert stored(engine, "e1", "e2") == {"e2"}  # committed while the first is open
    assert stored(engine, "e1", "e2") == {"e1", "e2"}


def test_a_parallel_write_waits_for_another_that_holds_the_same_person(engine: Engine) -> None:
    with engine.storage.write(parallel=True) as first:
        stores("e1", "u:a")(first)
        second = Writer(engine, stores("e2", "u:a"), parallel=True)
        second.start()
        second.join(timeout=WAIT_S)
        assert second.is_alive()  # waiting for u:a
    second.join(timeout=10)
    assert not second.is_alive() and second.error is None
    assert stored(engine, "e1", "e2") == {"e1", "e2"}


def test_a_write_that_is_not_parallel_waits_until_the_parallel_ones_end(engine: Engine) -> None:
    with engine.storage.write(parallel=True) as first:
        first.lock_profiles(["u:a"])
        alone = Writer(engine, stores("e2", "u:b"), parallel=False)
        alone.start()
        alone.join(timeout=WAIT_S)
        assert alone.is_alive()
    alone.join(timeout=10)
    assert not alone.is_alive() and alone.error is None
    with engine.storage.write() as again:  # it holds everyone: nothing to lock
        assert not again.locks_profiles


def test_writes_that_lock_each_others_people_the_other_way_round_lose_one(
    engine: Engine,
) -> None:
    locked = threading.Barrier(2)

    def crossing(mine: str, theirs: str, event_id: str) -> Callable[[UnitOfWork], None]:
        def body(uow: UnitOfWork) -> None:
            uow.lock_profiles([mine])
            uow.events.append([event(event_id, mine, NOW_MS - 1000)])
            locked.wait(timeout=10)
            uow.lock_profiles([theirs])  # the database finds the deadlock and gives one up

        return body

    writers = [
        Writer(engine, crossing("u:a", "u:b", "e1"), parallel=True),
        Writer(engine, crossing("u:b", "u:a", "e2"), parallel=True),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=30)
    errors = [w.error for w in writers]
    assert sorted(e is None for e in errors) == [False, True], errors
    lost = next(e for e in errors if e is not None)
    assert isinstance(lost, WriteConflictError)
    assert (lost.status, lost.code) == (503, "write_conflict")
    winner = "e1" if errors[0] is None else "e2"
    assert stored(engine, "e1", "e2") == {winner}  # nothing of the lost write was stored
