"""The shape every group of settings shares.

Each domain declares the settings it takes as one group (``persona.ingest.IngestSettings`` …);
``persona.settings`` gathers the groups under one name each, reads them from the environment,
and the composition root hands each group to its domain unchanged.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SettingsGroup(BaseModel):
    """A frozen group of settings; a key that names no setting is refused, never ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")
