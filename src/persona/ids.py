"""Random identifiers for the hot paths: request ids, server-assigned event ids, decision ids.

``uuid.uuid4()`` asks the kernel for 16 bytes on every call. On virtual machines a system call
can cost tens of microseconds (20 µs each on the benchmark machine), and a decisions request
made four of them. The bytes here come from the same source (``os.urandom``, the kernel's
cryptographic generator) fetched 4 KiB at a time, so the identifiers stay unpredictable and one
system call serves 256 of them. A forked child never reuses its parent's buffered bytes.

Decision ids are UUID version 7 (RFC 9562): a millisecond timestamp first, then random bits.
Ids made one after another sort together, so the decision log's key index grows at its right
edge instead of dirtying a page at a random place for every row.
"""

from __future__ import annotations

import os
import threading
import uuid

_CHUNK = 4096


class _RandomBytes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._offset + size > len(self._buffer):
                self._buffer, self._offset = os.urandom(max(_CHUNK, size)), 0
            start = self._offset
            self._offset += size
            return self._buffer[start : self._offset]

    def forget(self) -> None:
        self._lock = threading.Lock()  # a fork copies a lock in whatever state it was
        self._buffer, self._offset = b"", 0


_random = _RandomBytes()
os.register_at_fork(after_in_child=_random.forget)


def random_bytes(size: int) -> bytes:
    """``size`` bytes from the kernel's cryptographic generator (buffered)."""
    return _random.take(size)


def uuid4() -> uuid.UUID:
    """A random UUID (version 4), as ``uuid.uuid4()`` makes."""
    return uuid.UUID(bytes=random_bytes(16), version=4)


def random_hex() -> str:
    """128 random bits as 32 hexadecimal digits."""
    return random_bytes(16).hex()


_V7_MARKS = (7 << 76) | (2 << 62)  # the version nibble and the RFC variant bits
_V7_RANDOM = ~((0xF << 76) | (3 << 62)) & ((1 << 80) - 1)


def uuid7_hex(now_ms: int) -> str:
    """A UUID version 7 for the time ``now_ms`` (Unix milliseconds), as 32 hexadecimal digits:
    48 bits of time, then 74 random bits (the version and variant take the other six)."""
    tail = int.from_bytes(random_bytes(10), "big") & _V7_RANDOM | _V7_MARKS
    return f"{now_ms & 0xFFFF_FFFF_FFFF:012x}{tail:020x}"
