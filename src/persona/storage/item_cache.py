"""The categories of catalog items, kept between transactions and checked against the catalog.

Every ingest batch needs the categories of the items its events name (for the affinities), about
a thousand per batch of MovieLens ratings. Reading them costs 2 to 4 microseconds per item (an
index probe and a row), a tenth of the whole cost of ingest, while the catalog changes rarely.

Each write to the items table bumps a counter, ``catalog_version``, in the same transaction (see
``SqlCatalog.upsert``). A transaction reads that counter, then uses the cache only if the cache
was filled at the same version: it then holds exactly what the transaction's own snapshot would
read, whichever process wrote the items. A newer version empties the cache; an older one (a
transaction that began before the latest catalog write) bypasses it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

ABSENT: list[str] = []  # the marker of an id the catalog does not hold (compared by identity)


class CategoryCache:
    def __init__(self, max_items: int = 250_000) -> None:
        self._max_items = max_items  # past this the cache starts over: memory stays bounded
        self._version = -1
        self._categories: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def lookup(
        self, version: int, item_ids: Sequence[str]
    ) -> tuple[dict[str, list[str]], list[str]]:
        """The categories known at ``version`` (absent items left out), and the ids not known.

        The lists are shared with other callers: read them, never change them.
        """
        with self._lock:
            if version != self._version:
                return {}, list(item_ids)
            categories = self._categories
        found: dict[str, list[str]] = {}
        missing: list[str] = []
        for item_id in item_ids:
            known = categories.get(item_id)
            if known is None:
                missing.append(item_id)
            elif known is not ABSENT:
                found[item_id] = known
        return found, missing

    def fill(self, version: int, asked: Sequence[str], found: dict[str, list[str]]) -> None:
        """Remember what a transaction at ``version`` read for ``asked`` (``found`` holds those
        the catalog has)."""
        with self._lock:
            if version < self._version:
                return
            if version > self._version or len(self._categories) + len(asked) > self._max_items:
                self._categories = {}
                self._version = version
            categories = self._categories
            for item_id in asked:
                categories[item_id] = found.get(item_id, ABSENT)
