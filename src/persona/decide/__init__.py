"""Decisions: choosing a variant or arm for a unit, by deterministic experiment assignment
(``assignment``) or by bandit (``bandits``), logging what was chosen and attributing what
followed.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.decide.placements import (
    ARM,
    CLICK,
    CONVERSION,
    HOLDOUT,
    IMPRESSION,
)
from persona.decide.schema import (
    EXPERIMENT_POLICIES,
    NAME_PATTERN,
    DecisionRequest,
    DecisionsOut,
    Placement,
    PlacementBody,
    PlacementIn,
    PlacementList,
    PlacementVersion,
    PlacementVersions,
    experiment_id,
    parse_placement,
)
from persona.decide.service import DecisionService
from persona.decide.settings import DecisionSettings

__all__ = [
    "ARM",
    "CLICK",
    "CONVERSION",
    "EXPERIMENT_POLICIES",
    "HOLDOUT",
    "IMPRESSION",
    "NAME_PATTERN",
    "DecisionRequest",
    "DecisionService",
    "DecisionSettings",
    "DecisionsOut",
    "Placement",
    "PlacementBody",
    "PlacementIn",
    "PlacementList",
    "PlacementVersion",
    "PlacementVersions",
    "experiment_id",
    "parse_placement",
]
