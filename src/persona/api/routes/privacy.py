"""HTTP routes of privacy: consent, subject erasure and export, the audit log, safe aggregates."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request

from persona.access.keys import Principal, Scope
from persona.api.deps import EngineDep, IngestKey, actor, require
from persona.api.query import MAX_ROW_ID
from persona.clock import utc
from persona.engine import Engine
from persona.identity import user_key
from persona.privacy.aggregates import (
    MAX_EPSILON,
    MECHANISM,
    MIN_EPSILON,
    check_k_anonymity,
    noisy_count,
)
from persona.privacy.export import export_json_schema
from persona.privacy.schema import (
    AuditEntryOut,
    AuditPage,
    ConsentState,
    ErasureReportOut,
    SegmentSize,
    SubjectExport,
)
from persona.segments.schema import NAME_PATTERN, Member, MemberPage, person

router = APIRouter(prefix="/v1", tags=["privacy"])


ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
PersonId = Path(min_length=1, max_length=128, pattern=ID_PATTERN)
SubjectId = Path(min_length=1, max_length=128, pattern=ID_PATTERN)
SegmentName = Path(pattern=NAME_PATTERN)
IdType = Literal["user", "anonymous"] | None
IdTypeQuery = Query(
    None,
    description="Whether the id is a user id or an anonymous id. Without it, the id names the"
    " user, or else the anonymous visitor, something is held about; 409 `ambiguous_subject` when"
    " both are held and are not the same person.",
)


@router.put(
    "/users/{user_id}/consent",
    operation_id="put_consent",
    response_model=ConsentState,
)
def put_consent(
    request: Request,
    body: dict[str, str] = Body(
        description='{"purpose": "granted" | "denied" | "revoked"}',
        examples=[{"analytics": "granted", "marketing": "denied"}],
    ),
    user_id: str = PersonId,
    principal: Principal = IngestKey,
    engine: Engine = EngineDep,
) -> ConsentState:
    """Record consent changes for a user, effective now; every change is audited. The answer
    holds every purpose for a key that may read, else the purposes written."""
    purposes = engine.privacy.consent.set(user_id, body, actor=actor(request))
    if not principal.may(Scope.READ):
        purposes = {purpose: status for purpose, status in purposes.items() if purpose in body}
    return ConsentState(user_id=user_id, purposes=purposes)


@router.get(
    "/users/{user_id}/consent",
    operation_id="get_consent",
    dependencies=[require(Scope.READ)],
    response_model=ConsentState,
)
def get_consent(
    user_id: str = PersonId,
    engine: Engine = EngineDep,
) -> ConsentState:
    """The status of every purpose now (``unset`` where nothing was recorded)."""
    return ConsentState(user_id=user_id, purposes=engine.privacy.consent.current(user_key(user_id)))


@router.get(
    "/subjects/export-schema",
    operation_id="export_schema",
    dependencies=[require(Scope.ADMIN)],
)
def export_schema() -> dict[str, Any]:
    """The JSON Schema every subject export validates against (docs/export.schema.json)."""
    return export_json_schema()


@router.delete(
    "/subjects/{subject_id}",
    operation_id="erase_subject",
    dependencies=[require(Scope.ADMIN)],
    response_model=ErasureReportOut,
)
def erase_subject(
    request: Request,
    subject_id: str = SubjectId,
    id_type: IdType = IdTypeQuery,
    engine: Engine = EngineDep,
) -> ErasureReportOut:
    """Erase a person and every alias of them everywhere; later events for them are refused."""
    report = engine.privacy.erasure.erase(subject_id, actor=actor(request), id_type=id_type)
    return ErasureReportOut(
        subject=report.subject_hash,
        ids_erased=report.ids,
        deleted=report.deleted,
        models_rewritten=report.models_rewritten,
        model_rows_removed=report.model_rows_removed,
        lake_rows_removed=report.lake_rows_removed,
    )


@router.get(
    "/subjects/{subject_id}/export",
    operation_id="export_subject",
    dependencies=[require(Scope.ADMIN)],
    response_model=SubjectExport,
)
def export_subject(
    request: Request,
    subject_id: str = SubjectId,
    id_type: IdType = IdTypeQuery,
    engine: Engine = EngineDep,
) -> SubjectExport:
    """Everything held about a person, as versioned JSON (schema: /v1/subjects/export-schema)."""
    return engine.privacy.export.export(subject_id, actor=actor(request), id_type=id_type)


@router.get(
    "/audit",
    operation_id="list_audit",
    response_model=AuditPage,
    dependencies=[require(Scope.ADMIN)],
)
def list_audit(
    after: int = Query(0, ge=0, le=MAX_ROW_ID, description="Entries after this id."),
    limit: int = Query(100, ge=1, le=1000),
    engine: Engine = EngineDep,
) -> AuditPage:
    """The audit log, oldest first, a page at a time."""
    entries = engine.privacy.audit.page(after_id=after, limit=limit)
    return AuditPage(
        entries=[
            AuditEntryOut(
                audit_id=e.audit_id,
                at=utc(e.at_ms),
                actor=e.actor,
                action=e.action,
                target=e.target,
                details=e.details,
            )
            for e in entries
        ],
        next_after=entries[-1].audit_id if len(entries) == limit else None,
    )


@router.get(
    "/segments/{name}/size",
    operation_id="segment_size_private",
    response_model=SegmentSize,
    dependencies=[require(Scope.READ)],
)
def segment_size(
    name: str = SegmentName,
    epsilon: float = Query(
        1.0, ge=MIN_EPSILON, le=MAX_EPSILON, description="Privacy loss of this release."
    ),
    engine: Engine = EngineDep,
) -> SegmentSize:
    """The size of a segment with Laplace noise (differential privacy, sensitivity 1)."""
    engine.segments.get(name)
    size = engine.segments.size(name)
    return SegmentSize(
        segment=name, size=noisy_count(size, epsilon), epsilon=epsilon, mechanism=MECHANISM
    )


@router.get(
    "/segments/{name}/export",
    operation_id="export_segment_members",
    response_model=MemberPage,
    dependencies=[require(Scope.MEMBERS)],
)
def export_segment(
    request: Request,
    name: str = SegmentName,
    engine: Engine = EngineDep,
) -> MemberPage:
    """Every member of a segment at once; refused below the k-anonymity threshold."""
    engine.segments.get(name)
    size = engine.segments.size(name)
    check_k_anonymity(size, engine.settings.privacy.k_anonymity)
    records = engine.segments.members(name, after=None, limit=max(size, 1))
    engine.privacy.audit.record(actor(request), "segment.export", f"segment:{name}", {"size": size})
    members = [
        Member(**person(r.profile_key).model_dump(), entered_at=utc(r.entered_at_ms))
        for r in records
    ]
    return MemberPage(members=members, next_after=None)
