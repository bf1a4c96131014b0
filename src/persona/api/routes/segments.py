"""HTTP routes of segments: definitions (admin), previews, members and a person's memberships."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request, Response

from persona.access.keys import Scope
from persona.api.deps import EngineDep, actor, require
from persona.clock import utc
from persona.documents import NO_NUL
from persona.engine import Engine
from persona.identity import anonymous_key, user_key
from persona.profiles.schema import Profile
from persona.segments.schema import (
    NAME_PATTERN,
    Member,
    MemberPage,
    Preview,
    PreviewIn,
    ProfileSegments,
    Segment,
    SegmentChange,
    SegmentIn,
    SegmentList,
    Stay,
    person,
)
from persona.storage.records import SegmentRecord

router = APIRouter(prefix="/v1", tags=["segments"])

SegmentName = Path(pattern=NAME_PATTERN)
PersonId = Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")


def _public(record: SegmentRecord, size: int) -> Segment:
    return Segment(
        name=record.name,
        kind=record.kind,
        rule=record.rule,
        description=record.description,
        size=size,
        created_at=utc(record.created_at_ms),
        updated_at=utc(record.updated_at_ms),
    )


def profile_key(profile: Profile) -> str:
    """The storage key of a profile read through the API."""
    if profile.kind == "user":
        return user_key(profile.profile_id)
    return anonymous_key(profile.profile_id)


@router.post(
    "/segments",
    operation_id="create_segment",
    response_model=Segment,
    status_code=201,
    dependencies=[require(Scope.ADMIN)],
)
def create_segment(request: Request, body: SegmentIn, engine: Engine = EngineDep) -> Segment:
    """Define a segment by a rule; its members are computed before the answer (audited)."""
    record = engine.segments.create(body.name, body.rule, body.description, actor=actor(request))
    return _public(record, engine.segments.size(record.name))


@router.get(
    "/segments",
    operation_id="list_segments",
    response_model=SegmentList,
    dependencies=[require(Scope.READ)],
)
def list_segments(engine: Engine = EngineDep) -> SegmentList:
    records = engine.segments.definitions()
    return SegmentList(segments=[_public(r, engine.segments.size(r.name)) for r in records])


@router.post(
    "/segments/preview",
    operation_id="preview_segment",
    response_model=Preview,
    dependencies=[require(Scope.READ)],
)
def preview_segment(body: PreviewIn, engine: Engine = EngineDep) -> Preview:
    """How many people a rule selects now, and a sample of them; nothing is saved."""
    found = engine.segments.preview(body.rule, body.sample)
    return Preview(size=found.size, sample=[person(k) for k in found.sample])


@router.get(
    "/segments/{name}",
    operation_id="get_segment",
    response_model=Segment,
    dependencies=[require(Scope.READ)],
)
def get_segment(name: str = SegmentName, engine: Engine = EngineDep) -> Segment:
    record = engine.segments.get(name)
    return _public(record, engine.segments.size(name))


@router.put(
    "/segments/{name}",
    operation_id="update_segment",
    response_model=Segment,
    dependencies=[require(Scope.ADMIN)],
)
def update_segment(
    request: Request, body: SegmentChange, name: str = SegmentName, engine: Engine = EngineDep
) -> Segment:
    """Replace the rule and description; members (and those of dependent segments) follow."""
    record = engine.segments.update(name, body.rule, body.description, actor=actor(request))
    return _public(record, engine.segments.size(name))


@router.delete(
    "/segments/{name}",
    operation_id="delete_segment",
    status_code=204,
    response_class=Response,
    dependencies=[require(Scope.ADMIN)],
)
def delete_segment(
    request: Request, name: str = SegmentName, engine: Engine = EngineDep
) -> Response:
    """Delete a rule segment and its membership history (409 while another segment refers to
    it; 409 `segment_owned_by_model` for a cluster, which the cluster model keeps)."""
    engine.segments.delete(name, actor=actor(request))
    return Response(status_code=204)


@router.get(
    "/segments/{name}/members",
    operation_id="list_segment_members",
    response_model=MemberPage,
    dependencies=[require(Scope.READ)],
)
def list_members(
    name: str = SegmentName,
    after: str | None = Query(
        None, max_length=130, pattern=NO_NUL, description="`next_after` of the last page."
    ),
    limit: int = Query(100, ge=1, le=1000),
    engine: Engine = EngineDep,
) -> MemberPage:
    rows = engine.segments.members(name, after=after, limit=limit)
    members = [
        Member(**person(r.profile_key).model_dump(), entered_at=utc(r.entered_at_ms)) for r in rows
    ]
    next_after = rows[-1].profile_key if len(rows) == limit else None
    return MemberPage(members=members, next_after=next_after)


@router.get(
    "/profiles/{user_id}/segments",
    operation_id="get_profile_segments",
    response_model=ProfileSegments,
    dependencies=[require(Scope.READ)],
)
def get_profile_segments(user_id: str = PersonId, engine: Engine = EngineDep) -> ProfileSegments:
    """The segments a person is in now, and every entry and exit."""
    profile = engine.profiles.get(user_id)
    history = engine.segments.history(profile_key(profile))
    return ProfileSegments(
        profile_id=profile.profile_id,
        segments=sorted({s.segment for s in history if s.exited_at_ms is None}),
        history=[
            Stay(
                segment=s.segment,
                entered_at=utc(s.entered_at_ms),
                exited_at=None if s.exited_at_ms is None else utc(s.exited_at_ms),
            )
            for s in history
        ],
    )
