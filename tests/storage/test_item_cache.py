"""The category cache answers only for the catalog version it was filled at."""

from __future__ import annotations

from persona.storage.item_cache import CategoryCache


def test_answers_at_its_own_version_with_absent_items_left_out() -> None:
    cache = CategoryCache()
    cache.fill(3, ["a", "gone"], {"a": ["x"]})
    assert cache.lookup(3, ["a", "gone", "new"]) == ({"a": ["x"]}, ["new"])


def test_a_newer_version_starts_over_and_an_older_one_bypasses() -> None:
    cache = CategoryCache()
    cache.fill(3, ["a"], {"a": ["x"]})
    assert cache.lookup(4, ["a"]) == ({}, ["a"])
    cache.fill(4, ["a"], {"a": ["y"]})
    assert cache.lookup(4, ["a"]) == ({"a": ["y"]}, [])
    cache.fill(3, ["b"], {"b": ["old"]})  # read by a transaction that began earlier
    assert cache.lookup(3, ["a"]) == ({}, ["a"])
    assert cache.lookup(4, ["b"]) == ({}, ["b"])


def test_memory_stays_bounded() -> None:
    cache = CategoryCache(max_items=3)
    cache.fill(1, ["a", "b"], {"a": ["x"], "b": ["y"]})
    cache.fill(1, ["c", "d"], {"c": ["z"], "d": ["w"]})
    assert cache.lookup(1, ["a", "b", "c", "d"]) == ({"c": ["z"], "d": ["w"]}, ["a", "b"])
