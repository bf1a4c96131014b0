"""Making written files survive a crash: what the model registry and the event lake share."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Collection
from pathlib import Path

from persona import libc

# Past this many paths, one flush of the whole file system is cheaper than a flush of each: a
# first training writes the lake's thousands of day files, and each fsync is a journal commit.
MANY_PATHS = 32


def fsync_path(path: Path) -> None:
    """Flush a file's contents, or a directory's entries (the names of files just created or
    renamed in it), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_paths(paths: Collection[Path]) -> None:
    """``fsync_path`` of every path (all on one file system): with many, one ``syncfs`` of
    their file system where the platform has it, which makes every file and directory entry
    written on it durable at once."""
    if len(paths) > MANY_PATHS and _syncfs is not None:
        descriptor = os.open(next(iter(paths)), os.O_RDONLY)
        try:
            if _syncfs(descriptor) == 0:
                return
        finally:
            os.close(descriptor)
    for path in paths:
        fsync_path(path)


# Linux's syncfs(2) (which reports write-back errors since 5.8); the os module has only
# ``sync``, which flushes every file system of the machine.
_syncfs = libc.function("syncfs", ctypes.c_int)
