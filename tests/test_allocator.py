"""`persona serve` limits the C allocator's heaps (arenas): with one per allocating thread, a
server's memory kept growing under a steady load (BENCHMARKS.md, "Memory under a steady
load")."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Eight threads allocate (blocks between the interpreter's small-object allocator and mmap's
# threshold, so glibc's heaps serve them) at the same time, hold them, and the heaps glibc
# reports are counted.
_PROGRAM = """
import ctypes, os, sys, tempfile, threading
from persona.runtime import limit_allocator_arenas
if sys.argv[1] == "limited":
    assert limit_allocator_arenas(2)
barrier = threading.Barrier(8)
held = []
def allocate():
    barrier.wait()
    held.append([bytes(1000 + i % 3000) for i in range(3000)])
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(stream))
libc.fclose(ctypes.c_void_p(stream))
print(open(path).read().count("<heap nr="))
os.unlink(path)
"""


def heaps(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_the_allocator_keeps_at_most_two_heaps_once_limited() -> None:
    assert heaps("limited") <= 2
    assert heaps("free") > 2  # without the limit, the threads would have heaps of their own
