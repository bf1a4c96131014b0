"""Which candidate sources proposed each item, as bit sets.

A ranking proposes a few hundred candidates per person from up to 32 sources, and an answer
names the sources of its ten items only: the names are kept as one bit set per item and decoded
on demand, instead of a list of names built for every candidate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

T = TypeVar("T")

MAX_SOURCES = 32  # bits of a uint32


def bits_type(sources: int) -> type[np.unsignedinteger[Any]]:
    """The narrowest unsigned integer type with a bit for each of ``sources`` sources."""
    for kind in (np.uint8, np.uint16, np.uint32):
        if sources <= np.iinfo(kind).bits:
            return kind
    raise ValueError(f"{sources} sources: at most {MAX_SOURCES}")


HEAD = 32  # items searched first for an answer's items: nearly all of them are there


class SourceNames:
    """Bit ``j`` of a bit set stands for ``names[j]``."""

    def __init__(self, names: Sequence[str] = ()) -> None:
        self.names: list[str] = []
        self._bits: dict[str, int] = {}
        self._decoded: dict[int, list[str]] = {}  # few combinations occur
        for name in names:
            self.bit(name)

    def bit(self, name: str) -> int:
        """The bit of ``name``, given the next free one the first time."""
        found = self._bits.get(name)
        if found is None:
            if len(self.names) == MAX_SOURCES:
                raise ValueError(f"at most {MAX_SOURCES} candidate sources fit a bit set")
            found = self._bits[name] = 1 << len(self.names)
            self.names.append(name)
        return found

    def decode(self, bits: int) -> list[str]:
        names = self._decoded.get(bits)
        if names is None:
            names = [name for j, name in enumerate(self.names) if bits >> j & 1]
            self._decoded[bits] = names
        return list(names)

    def recode(self, bits: npt.NDArray[np.uint32], other: SourceNames) -> npt.NDArray[np.uint32]:
        """Bit sets of ``other`` as bit sets of these names (names unknown here are added)."""
        distinct, positions = np.unique(bits, return_inverse=True)
        mapped = [sum(self.bit(name) for name in other.decode(int(value))) for value in distinct]
        return np.asarray(mapped, dtype=np.uint32)[positions.reshape(-1)]


class SourceBits(Mapping[int, list[str]]):
    """The sources that proposed each item of a ranked list, decoded only for the items asked."""

    def __init__(
        self, items: npt.NDArray[np.integer], bits: npt.NDArray[np.uint32], names: SourceNames
    ) -> None:
        self.item_array = items
        self.bits = bits
        self.names = names
        self._position: dict[int, int] | None = None
        self._head: list[int] | None = None

    def __getitem__(self, item: int) -> list[str]:
        found = self.get(item)
        if found is None:
            raise KeyError(item)
        return found

    @overload
    def get(self, item: int, /) -> list[str] | None: ...

    @overload
    def get(self, item: int, default: list[str] | T, /) -> list[str] | T: ...

    def get(self, item: int, default: object = None, /) -> object:
        if self._head is None:
            self._head = self.item_array[:HEAD].tolist()
        if item in self._head:
            return self.names.decode(int(self.bits[self._head.index(item)]))
        if self._position is None:
            self._position = {i: p for p, i in enumerate(self.item_array.tolist())}
        position = self._position.get(item)
        if position is None:
            return default
        return self.names.decode(int(self.bits[position]))

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self.item_array)

    def __len__(self) -> int:
        return len(self.item_array)

    def take(
        self, positions: npt.NDArray[np.integer] | npt.NDArray[np.bool_] | slice
    ) -> SourceBits:
        """These items at ``positions`` (indices, a mask or a slice), in that order."""
        return SourceBits(self.item_array[positions], self.bits[positions], self.names)
