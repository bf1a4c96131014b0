"""Profiles: one per person, behavioural aggregates, traits and identity resolution.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.profiles.aggregate import (
    MICROS,
    AggregateRules,
    FoldEvent,
    ProfileState,
)
from persona.profiles.schema import (
    Profile,
    Traits,
    TraitsWritten,
)
from persona.profiles.service import (
    ProfileService,
)
from persona.profiles.settings import DEFAULT_EVENT_WEIGHTS, ProfileSettings
from persona.profiles.shared_cache import SharedProfileCache

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "MICROS",
    "AggregateRules",
    "FoldEvent",
    "Profile",
    "ProfileService",
    "ProfileSettings",
    "ProfileState",
    "SharedProfileCache",
    "Traits",
    "TraitsWritten",
]
