"""HTTP routes of profiles and traits."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request, Response

from persona.access.keys import Principal, Scope
from persona.api.deps import EngineDep, IngestKey, engine_of, scoped
from persona.engine import Engine
from persona.profiles.schema import Profile, Traits, TraitsWritten

router = APIRouter(prefix="/v1", tags=["profiles"])

PersonId = Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")


@router.get(
    "/profiles/{user_id}",
    operation_id="get_profile",
    response_model=Profile,
)
@scoped(Scope.READ)
async def get_profile(request: Request, user_id: str = PersonId) -> Response:
    """The profile of a user id, or of an anonymous id (merged profiles answer for both)."""
    # A profile read is a cache hit or one short read transaction (about 0.2 ms on SQLite),
    # cheaper than the hop to a worker thread a plain ``def`` route would take, so it runs on
    # the event loop. The answer is serialized once, without a second validation.
    answer = engine_of(request).profiles.get_json(user_id)
    return Response(answer, media_type="application/json")


@router.put(
    "/users/{user_id}/traits",
    operation_id="put_traits",
    response_model=Profile | TraitsWritten,
)
def put_traits(
    traits: Traits,
    user_id: str = PersonId,
    principal: Principal = IngestKey,
    engine: Engine = EngineDep,
) -> Profile | TraitsWritten:
    """Replace the CRM traits of a user (creating the profile if needed). The answer is the
    profile for a key that may read profiles, else the traits as stored."""
    profile = engine.profiles.set_traits(user_id, traits.root)
    if principal.may(Scope.READ):
        return profile
    return TraitsWritten(profile_id=user_id, traits=profile.traits)
