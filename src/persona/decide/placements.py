"""The vocabulary of placements and their decisions, and their parsed configurations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persona.decide.schema import PlacementBody
from persona.storage.protocols import DecisionStore

ACTIVE, PAUSED = "active", "paused"
ARM, HOLDOUT, OUTSIDE = "arm", "holdout", "outside"  # the cohorts of a decision
IMPRESSION, CLICK, CONVERSION = "impression", "click", "conversion"  # kinds of outcome


class PlacementConfigs:
    """Parsed configurations by (placement, version): a version never changes once written,
    so each is parsed once per process."""

    def __init__(self) -> None:
        self._configs: dict[tuple[str, int], PlacementBody] = {}

    def config_of(self, name: str, version: int, raw: Mapping[str, Any]) -> PlacementBody:
        key = (name, version)
        config = self._configs.get(key)
        if config is None:
            config = self._configs[key] = PlacementBody.model_validate(raw)
        return config

    def stored(self, store: DecisionStore, name: str, version: int) -> PlacementBody | None:
        config = self._configs.get((name, version))
        if config is None:
            record = store.version(name, version)
            if record is None:
                return None
            config = self.config_of(name, version, record.config)
        return config
