"""Functions of the C library that the os module does not expose (Linux's ``syncfs``, glibc's
``malloc_trim``), looked up once; None where the platform has no such function."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def function(name: str, argument: type[ctypes._SimpleCData[int]]) -> Callable[[int], int] | None:
    """The C library's ``int name(argument)``, or None where it has none."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    found = getattr(ctypes.CDLL(library, use_errno=True), name, None)
    if found is None:
        return None
    found.argtypes = [argument]
    found.restype = ctypes.c_int
    typed: Callable[[int], int] = found
    return typed
