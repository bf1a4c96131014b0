"""The answer cache (reuse until the person acts, everything changes, or time passes) and
refreshed values (read again when old or forgotten)."""

from __future__ import annotations

import threading
import time

from persona.cache import BULK_INVALIDATION, AnswerCache, Refreshed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_reused_until_its_person_is_invalidated() -> None:
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=60)
    ticket = cache.ticket()
    assert cache.put("q1", ["u:ann"], ticket, "answer")
    assert cache.put("q2", ["u:bob"], cache.ticket(), "other")
    assert cache.get("q1") == "answer"
    cache.invalidate({"u:ann"})
    assert cache.get("q1") is None
    assert cache.get("q2") == "other"


def test_a_ranking_that_started_before_an_invalidation_is_not_stored() -> None:
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=60)
    ticket = cache.ticket()  # the ranking reads the history after this...
    cache.invalidate({"u:ann"})  # ...and an event of ann commits meanwhile
    assert not cache.put("q1", ["u:ann"], ticket, "stale")
    assert cache.get("q1") is None
    assert cache.put("q1", ["u:ann"], cache.ticket(), "fresh")  # a later ranking is kept


def test_a_change_to_very_many_people_empties_the_cache_and_refuses_older_tickets() -> None:
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=60)
    ticket = cache.ticket()
    cache.put("q1", ["u:ann"], ticket, "answer")
    many = {f"u:{i}" for i in range(BULK_INVALIDATION + 1)}  # ann is not among them
    cache.invalidate(many)
    assert cache.get("q1") is None
    assert not cache.put("q2", ["u:bob"], ticket, "stale")
    assert cache.put("q2", ["u:bob"], cache.ticket(), "fresh")


def test_a_person_not_seen_yet_is_dropped_by_either_of_their_first_keys() -> None:
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=60)
    cache.put("q", ["u:new", "a:new"], cache.ticket(), "cold start")
    cache.invalidate({"a:new"})
    assert cache.get("q") is None


def test_answers_expire_after_the_time_to_live() -> None:
    clock = Clock()
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=10, now=clock, uniform=lambda: 0.0)
    cache.put("q", ["u:ann"], cache.ticket(), "answer")
    clock.now = 9.9
    assert cache.get("q") == "answer"
    clock.now = 10.0
    assert cache.get("q") is None
    assert len(cache) == 0


def test_an_aged_answer_is_offered_for_one_more_lifetime_and_still_dropped_by_its_person() -> None:
    clock = Clock()
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=10, now=clock, uniform=lambda: 0.0)
    cache.put("q", ["u:ann"], cache.ticket(), "answer")
    assert cache.get_aged("q") == ("answer", False)
    clock.now = 15.0
    assert cache.get_aged("q") == ("answer", True)  # aged, and kept for the caller to replace
    assert cache.get_aged("q") == ("answer", True)
    cache.put("q", ["u:ann"], cache.ticket(), "new answer")
    assert cache.get_aged("q") == ("new answer", False)
    clock.now = 30.0  # the new one is aged too...
    assert cache.get_aged("q") == ("new answer", True)
    cache.invalidate({"u:ann"})  # ...and its person acted: gone at once
    assert cache.get_aged("q") is None
    cache.put("q", ["u:ann"], cache.ticket(), "answer")
    clock.now = 55.0  # two lifetimes: too old to serve at all
    assert cache.get_aged("q") is None and len(cache) == 0


def test_answers_stored_together_expire_spread_over_the_second_half_of_their_life() -> None:
    clock = Clock()
    cache: AnswerCache[int] = AnswerCache(ttl_seconds=10, now=clock)
    for n in range(1000):
        cache.put(n, [f"u:{n}"], cache.ticket(), n)
    clock.now = 4.99
    assert len([n for n in range(1000) if cache.get(n) is not None]) == 1000
    clock.now = 7.5
    alive = len([n for n in range(1000) if cache.get(n) is not None])
    assert 350 < alive < 650  # about half, not all or none
    clock.now = 10.0
    assert all(cache.get(n) is None for n in range(1000))


def test_the_least_recently_used_answer_leaves_first() -> None:
    cache: AnswerCache[int] = AnswerCache(max_entries=2, ttl_seconds=60)
    for n in range(2):
        cache.put(n, [f"u:{n}"], cache.ticket(), n)
    assert cache.get(0) == 0  # 1 is now the least recently used
    cache.put(2, ["u:2"], cache.ticket(), 2)
    assert (cache.get(0), cache.get(1), cache.get(2)) == (0, None, 2)
    assert len(cache) == 2


def test_clear_drops_everything_and_refuses_rankings_started_before_it() -> None:
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=60)
    cache.put("q", ["u:ann"], cache.ticket(), "answer")
    ticket = cache.ticket()
    cache.clear()
    assert cache.get("q") is None
    assert not cache.put("q", ["u:ann"], ticket, "from the old model")


def test_a_time_to_live_of_zero_turns_the_cache_off() -> None:
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=0)
    assert not cache.enabled
    assert not cache.put("q", ["u:ann"], cache.ticket(), "answer")
    assert cache.get("q") is None


def test_trimming_the_invalidation_log_keeps_refusing_old_tickets() -> None:
    cache: AnswerCache[str] = AnswerCache(max_entries=1, ttl_seconds=60)
    ticket = cache.ticket()
    for n in range(5000):  # more invalidations than the log keeps
        cache.invalidate({f"u:{n}"})
    assert not cache.put("q", ["u:0"], ticket, "stale")
    assert cache.put("q", ["u:0"], cache.ticket(), "fresh")


class Source:
    """What a refreshed value reads: counts its reads; ``during`` runs inside a read."""

    def __init__(self) -> None:
        self.version = 0
        self.reads = 0
        self.during: list[object] = []

    def __call__(self) -> int:
        self.reads += 1
        value = self.version
        for action in self.during:
            action()  # type: ignore[operator]
        self.during.clear()
        return value


def test_a_refreshed_value_is_read_again_only_when_old_or_forgotten() -> None:
    clock, source = Clock(), Source()
    value = Refreshed(source, max_age_seconds=1.0, now=clock)
    assert value.get() == 0 and value.get() == 0 and source.reads == 1
    source.version = 1
    clock.now = 0.5
    assert value.get() == 0  # young enough
    clock.now = 1.0
    assert value.get() == 1 and source.reads == 2
    source.version = 2
    value.forget()
    assert value.get() == 2 and source.reads == 3


def test_a_use_late_in_a_values_lifetime_reads_it_again_aside() -> None:
    """Past half its lifetime, a use gets the value at once and a thread reads the new one,
    which the next uses get without reading."""
    clock, source = Clock(), Source()
    value = Refreshed(source, max_age_seconds=1.0, now=clock)
    assert value.get() == 0
    source.version = 1
    clock.now = 0.75
    assert value.get() == 0  # at once: the read runs aside
    deadline = time.monotonic() + 5
    while value.get() != 1:  # the new value, once the thread has it
        assert time.monotonic() < deadline, "not read aside"
        time.sleep(0.01)
    assert source.reads == 2
    clock.now = 1.1  # past the first value's lifetime, within the new one's
    assert value.get() == 1 and source.reads == 2


def test_a_value_read_before_a_forget_is_not_kept() -> None:
    clock, source = Clock(), Source()
    value = Refreshed(source, max_age_seconds=60.0, now=clock)

    def change() -> None:
        source.version = 1
        value.forget()  # the change commits while the read is under way

    source.during.append(change)
    assert value.get() == 0  # the reader gets what it read...
    assert value.get() == 1  # ...but the next use reads again
    assert source.reads == 2


def test_concurrent_users_of_a_stale_value_share_one_read() -> None:
    entered, release = threading.Event(), threading.Event()
    reads: list[int] = []

    def slow_read() -> int:
        reads.append(1)
        entered.set()
        release.wait(5)
        return len(reads)

    value = Refreshed(slow_read, max_age_seconds=60.0)
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(value.get()))
    first.start()
    assert entered.wait(5)
    second = threading.Thread(target=lambda: results.append(value.get()))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert results == [1, 1] and len(reads) == 1


def test_the_cache_holds_at_most_its_bytes() -> None:
    """Entries are weighed (an estimate of their memory) and the least recently used go
    until the total is under the bound; an answer heavier than the bound is not kept."""
    cache: AnswerCache[str] = AnswerCache(
        max_entries=1_000, ttl_seconds=60, max_bytes=1_000, weigh=lambda key, value: len(value)
    )
    for i in range(20):
        assert cache.put(f"q{i}", [f"u:{i}"], cache.ticket(), "x" * 100)
    assert cache.bytes <= 1_000 and len(cache) == 10
    assert cache.get("q19") is not None and cache.get("q0") is None
    assert not cache.put("huge", ["u:h"], cache.ticket(), "x" * 1_001)
    assert cache.get("huge") is None and cache.bytes <= 1_000
    cache.invalidate({"u:19"})
    assert cache.bytes == 900 and len(cache) == 9
    cache.clear()
    assert cache.bytes == 0


def test_expired_answers_are_swept_without_being_asked_for() -> None:
    """Answers nobody asks for again are dropped once past their lifetime and grace, as later
    answers are stored: memory does not keep what can no longer be served."""
    clock = Clock()
    cache: AnswerCache[str] = AnswerCache(ttl_seconds=10, now=clock, uniform=lambda: 0.0)
    for i in range(100):
        cache.put(f"old{i}", [f"u:{i}"], cache.ticket(), "a")
    clock.now = 25.0  # past lifetime (10 s) and grace (10 s)
    for i in range(30):
        cache.put(f"new{i}", [f"u:n{i}"], cache.ticket(), "b")
    assert len(cache) == 30
