"""What a serving process remembers of the people changed since the batch is bounded; past the
bound it forgets, and no read begun before that is trusted."""

from __future__ import annotations

import numpy as np
import pytest

from persona.recommend import shortlists
from persona.recommend.pipeline import Shortlist
from persona.recommend.proposers import SourceBits, SourceNames
from persona.recommend.shortlists import Freshness, LiveShortlist


def _live(key: str, read_at: int) -> LiveShortlist:
    items = np.array([1, 2], dtype=np.int64)
    names = SourceNames(["als"])
    bits = SourceBits(items, np.ones(2, dtype=np.uint8), names)
    shortlist = Shortlist(items, np.array([2.0, 1.0]), bits)
    return LiveShortlist(key, read_at, shortlist, None)  # type: ignore[arg-type]


def test_changed_people_are_remembered_up_to_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shortlists, "MAX_CHANGED", 100)
    freshness = Freshness()
    for n in range(1_000):
        freshness.changed([f"u:{n}"])
        assert len(freshness._last_change) <= 100
    assert freshness.is_stale("u:999")


def test_reads_begun_before_forgetting_are_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shortlists, "MAX_CHANGED", 3)
    freshness = Freshness()
    freshness.verified("ann", "u:ann", freshness.now())
    assert freshness.known("ann") == "u:ann"

    read_at = freshness.now()  # a request reads bob's signature and ranks carl live ...
    resets = freshness.resets
    freshness.changed(["u:bob", "u:carl"])  # ... while both change,
    freshness.changed(["u:x"])
    freshness.changed(["u:y"])  # and enough others that the changes are forgotten
    assert not freshness.is_stale("u:bob")

    freshness.verified("bob", "u:bob", read_at)
    freshness.keep_live("carl", _live("u:carl", read_at))
    assert freshness.known("bob") is None  # compared with the store again
    assert freshness.live("carl") is None
    assert freshness.known("ann") is None  # every verified person too
    assert freshness.verified_in_bulk(["u:bob"], resets) == 0

    later = freshness.now()
    freshness.verified("bob", "u:bob", later)
    freshness.keep_live("carl", _live("u:carl", later))
    assert freshness.known("bob") == "u:bob"
    assert freshness.live("carl") is not None
