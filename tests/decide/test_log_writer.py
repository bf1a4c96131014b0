"""Group commit of the decision log: every record of every concurrent request, once."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from persona.decide.log import DecisionLogWriter
from persona.engine import Engine
from persona.storage.records import DecisionRecord
from persona.storage.tables.decide import decisions


def record(decision_id: str) -> DecisionRecord:
    return DecisionRecord(
        decision_id, "p", 1, "v0", "u:x", None, "ab", "arm", False, "*", "assigned", 0
    )


def logged(engine: Engine) -> int:
    with engine.storage.read() as uow:
        return int(uow.connection.execute(select(func.count()).select_from(decisions)).scalar_one())


def test_concurrent_requests_are_all_committed_before_returning(engine: Engine) -> None:
    writer = DecisionLogWriter(engine.storage)
    returned: list[int] = []
    seen_after_return: list[bool] = []

    def client(number: int) -> None:
        for i in range(15):
            writer.write([record(f"{number}-{i}-a"), record(f"{number}-{i}-b")])
            with engine.storage.read() as uow:
                row = uow.connection.execute(
                    select(decisions.c.decision_id).where(
                        decisions.c.decision_id == f"{number}-{i}-b"
                    )
                ).first()
            seen_after_return.append(row is not None)
        returned.append(number)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(returned) == list(range(12))
    assert all(seen_after_return)
    assert logged(engine) == 12 * 15 * 2


def test_a_failed_commit_fails_the_request_and_the_next_one_works(engine: Engine) -> None:
    writer = DecisionLogWriter(engine.storage)
    writer.write([record("dup")])
    with pytest.raises(Exception):  # noqa: B017 (the driver's integrity error, either backend)
        writer.write([record("fresh"), record("dup")])
    writer.write([record("after")])
    assert logged(engine) == 2


def test_logged_records_read_back_as_written(engine: Engine) -> None:
    written = [
        DecisionRecord(
            "d1",
            "home_hero",
            3,
            "v1",
            "u:ü",
            {"device": "mobile", "hour": 7},
            "ab",
            "holdout",
            True,
            "device:mobile",
            "holdout",
            1_767_225_600_123,
        ),
        DecisionRecord(
            "d2", "for_you", 1, None, "a:x", None, "rules", "outside", False, "*", "page_cap", 5
        ),
    ]
    DecisionLogWriter(engine.storage).write(written)
    with engine.storage.read() as uow:
        found = uow.decisions.decisions(["d1", "d2"])
    assert [found["d1"], found["d2"]] == written


def test_requests_on_an_event_loop_wait_without_a_thread_each(engine: Engine) -> None:
    writer = DecisionLogWriter(engine.storage)
    threads_before = threading.active_count()

    async def requests() -> tuple[list[BaseException | None], BaseException | None]:
        writes = [writer.write_async([record(f"async-{n}")]) for n in range(40)]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        try:
            await writer.write_async([record("async-0")])  # a duplicate id
        except Exception as exc:  # the driver's integrity error, either backend
            return outcomes, exc
        return outcomes, None

    outcomes, failure = asyncio.run(requests())
    assert outcomes == [None] * 40 and failure is not None
    assert logged(engine) == 40
    assert threading.active_count() == threads_before + 1  # the writer's, for 41 requests


def test_closing_commits_what_is_pending_and_refuses_more(engine: Engine) -> None:
    writer = DecisionLogWriter(engine.storage)
    pending = [writer.submit([record(f"c{n}")]) for n in range(5)]
    writer.close()
    assert all(future.done() and future.exception() is None for future in pending)
    assert logged(engine) == 5
    with pytest.raises(RuntimeError):
        writer.submit([record("late")])


def test_a_request_that_went_away_leaves_the_rest_of_its_batch_alone(engine: Engine) -> None:
    writer = DecisionLogWriter(engine.storage)

    async def requests() -> list[BaseException | None]:
        staying = [asyncio.ensure_future(writer.write_async([record(f"s{n}")])) for n in range(8)]
        leaving = asyncio.ensure_future(writer.write_async([record("gone")]))
        await asyncio.sleep(0)  # every request has handed its records over
        leaving.cancel()
        return await asyncio.gather(*staying, return_exceptions=True)

    assert asyncio.run(requests()) == [None] * 8
    writer.close()
    # A request that went away was never answered; its records were handed over, and kept.
    assert logged(engine) == 9


def test_requests_of_two_event_loops_are_each_answered_on_their_own(engine: Engine) -> None:
    writer = DecisionLogWriter(engine.storage)
    answered: dict[int, list[BaseException | None]] = {}

    def loop_thread(number: int) -> None:
        async def requests() -> list[BaseException | None]:
            writes = [writer.write_async([record(f"{number}-{n}")]) for n in range(20)]
            return await asyncio.gather(*writes, return_exceptions=True)

        answered[number] = asyncio.run(requests())

    threads = [threading.Thread(target=loop_thread, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answered == {n: [None] * 20 for n in range(3)}
    assert logged(engine) == 60
