"""HTTP routes of profiles and traits."""

from __future__ import annotations

from fastapi import APIRouter, Path

from persona.access.keys import Scope
from persona.api.deps import EngineDep, require
from persona.engine import Engine
from persona.profiles.schema import Profile, Traits
from persona.profiles.service import anonymous_key, user_key

router = APIRouter(prefix="/v1", tags=["profiles"])

PersonId = Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")


@router.get(
    "/profiles/{user_id}",
    operation_id="get_profile",
    response_model=Profile,
    dependencies=[require(Scope.READ)],
)
def get_profile(user_id: str = PersonId, engine: Engine = EngineDep) -> Profile:
    """The profile of a user id, or of an anonymous id (merged profiles answer for both)."""
    profile = engine.profiles.get(user_id)
    key = (
        user_key(profile.profile_id)
        if profile.kind == "user"
        else anonymous_key(profile.profile_id)
    )
    return profile.model_copy(update={"segments": sorted(engine.segments.memberships(key))})


@router.put(
    "/users/{user_id}/traits",
    operation_id="put_traits",
    response_model=Profile,
    dependencies=[require(Scope.INGEST)],
)
def put_traits(traits: Traits, user_id: str = PersonId, engine: Engine = EngineDep) -> Profile:
    """Replace the CRM traits of a user (creating the profile if needed)."""
    return engine.profiles.set_traits(user_id, traits.root)
