"""HTTP routes of segments: definitions (admin), previews, members and a person's memberships."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Path, Query, Request, Response

from persona.access.keys import Principal, Scope
from persona.api.deps import AdminKey, EngineDep, ReadKey, actor, require
from persona.clock import utc
from persona.documents import NO_NUL
from persona.engine import Engine
from persona.privacy.aggregates import check_k_anonymity
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


def _public(record: SegmentRecord, size: int, shown: SizePolicy) -> Segment:
    return Segment(
        name=record.name,
        kind=record.kind,
        rule=record.rule,
        description=record.description,
        size=shown(size),
        created_at=utc(record.created_at_ms),
        updated_at=utc(record.updated_at_ms),
    )


SizePolicy = Callable[[int], int | None]


def sizes_for(principal: Principal, engine: Engine) -> SizePolicy:
    """How sizes are shown to a caller: exactly to a key that may see members; otherwise a
    size under the k-anonymity threshold is withheld (null), as a member list would be."""
    if principal.may(Scope.MEMBERS):
        return lambda size: size
    k = engine.settings.privacy.k_anonymity
    return lambda size: size if size >= k else None


@router.post(
    "/segments",
    operation_id="create_segment",
    response_model=Segment,
    status_code=201,
)
def create_segment(
    request: Request,
    body: SegmentIn,
    principal: Principal = AdminKey,
    engine: Engine = EngineDep,
) -> Segment:
    """Define a segment by a rule; its members are computed before the answer (audited)."""
    record = engine.segments.create(body.name, body.rule, body.description, actor=actor(request))
    return _public(record, engine.segments.size(record.name), sizes_for(principal, engine))


@router.get(
    "/segments",
    operation_id="list_segments",
    response_model=SegmentList,
)
def list_segments(principal: Principal = ReadKey, engine: Engine = EngineDep) -> SegmentList:
    """Every segment; sizes under the k-anonymity threshold are null unless the key may see
    members."""
    records = engine.segments.definitions()
    shown = sizes_for(principal, engine)
    return SegmentList(segments=[_public(r, engine.segments.size(r.name), shown) for r in records])


@router.post(
    "/segments/preview",
    operation_id="preview_segment",
    response_model=Preview,
    dependencies=[require(Scope.MEMBERS)],
)
def preview_segment(body: PreviewIn, engine: Engine = EngineDep) -> Preview:
    """How many people a rule selects now, and a sample of them; nothing is saved. Any rule
    can single out a person, so this needs the `members` scope."""
    found = engine.segments.preview(body.rule, body.sample)
    return Preview(size=found.size, sample=[person(k) for k in found.sample])


@router.get(
    "/segments/{name}",
    operation_id="get_segment",
    response_model=Segment,
)
def get_segment(
    name: str = SegmentName,
    principal: Principal = ReadKey,
    engine: Engine = EngineDep,
) -> Segment:
    """One segment; its size is null under the k-anonymity threshold unless the key may see
    members."""
    record = engine.segments.get(name)
    return _public(record, engine.segments.size(name), sizes_for(principal, engine))


@router.put(
    "/segments/{name}",
    operation_id="update_segment",
    response_model=Segment,
)
def update_segment(
    request: Request,
    body: SegmentChange,
    name: str = SegmentName,
    principal: Principal = AdminKey,
    engine: Engine = EngineDep,
) -> Segment:
    """Replace the rule and description; members (and those of dependent segments) follow."""
    record = engine.segments.update(name, body.rule, body.description, actor=actor(request))
    return _public(record, engine.segments.size(name), sizes_for(principal, engine))


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
    dependencies=[require(Scope.MEMBERS)],
)
def list_members(
    request: Request,
    name: str = SegmentName,
    after: str | None = Query(
        None, max_length=130, pattern=NO_NUL, description="`next_after` of the last page."
    ),
    limit: int = Query(100, ge=1, le=1000),
    engine: Engine = EngineDep,
) -> MemberPage:
    """Who is in a segment, a page at a time (the `members` scope; audited; refused under the
    k-anonymity threshold)."""
    engine.segments.get(name)
    check_k_anonymity(engine.segments.size(name), engine.settings.privacy.k_anonymity)
    rows = engine.segments.members(name, after=after, limit=limit)
    details = {"after": after is not None, "members": len(rows)}
    engine.privacy.audit.record(actor(request), "segment.members", f"segment:{name}", details)
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
    history = engine.segments.history(profile.profile_key)
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
