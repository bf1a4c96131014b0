"""Identifiers from buffered kernel randomness: the formats they promise, and no repeats."""

from __future__ import annotations

import os
import uuid

import pytest

from persona.ids import random_hex, uuid4, uuid7_hex


def test_uuid7_hex_is_a_version_7_uuid_that_starts_with_its_time() -> None:
    now_ms = 1_767_225_600_123
    made = uuid.UUID(uuid7_hex(now_ms))
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert made.int >> 80 == now_ms
    assert len(uuid7_hex(now_ms)) == 32


def test_uuid7_hex_sorts_by_time_and_stays_random_within_a_millisecond() -> None:
    made = [uuid7_hex(1_000 + n // 50) for n in range(500)]
    by_time = [m[:12] for m in made]
    assert by_time == sorted(by_time)
    assert len(set(made)) == 500
    same_ms = made[:50]
    assert len({m[12:] for m in same_ms}) == 50


def test_uuid4_and_random_hex_do_not_repeat() -> None:
    made = [uuid4() for _ in range(5_000)]  # more than one 4 KiB buffer
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in made)
    assert len(set(made)) == 5_000
    hexes = {random_hex() for _ in range(5_000)}
    assert len(hexes) == 5_000 and all(len(h) == 32 for h in hexes)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_reuse_the_parents_buffered_bytes() -> None:
    random_hex()  # the buffer now holds bytes the parent has not used yet
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child process)
        os.write(write_end, random_hex().encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(child, 0)
    from_child = os.read(read_end, 64).decode()
    os.close(read_end)
    assert status == 0 and len(from_child) == 32
    assert from_child != random_hex()
