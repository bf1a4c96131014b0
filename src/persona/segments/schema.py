"""What clients send and read about segments (a schema per use: create, change, public)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from persona.documents import NO_NUL
from persona.identity import split_key
from persona.rules import MAX_RULE_CHARS

NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
RuleText = Field(
    min_length=1,
    pattern=NO_NUL,
    max_length=MAX_RULE_CHARS,
    description="A rule in the segment language (docs/segments.md).",
    examples=["did(view) within 7d and profile.monetary > 100"],
)


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Lower case letters, digits, _ and -.")
    rule: str = RuleText
    description: str = Field(default="", max_length=1000, pattern=NO_NUL)


class SegmentChange(BaseModel):
    """The new rule and description of an existing segment (replaces both)."""

    model_config = ConfigDict(extra="forbid")

    rule: str = RuleText
    description: str = Field(default="", max_length=1000, pattern=NO_NUL)


class Segment(BaseModel):
    name: str
    kind: str = Field(description="`rule`, or `cluster` for a behavioural cluster.")
    rule: str | None
    description: str
    size: int | None = Field(
        description="People in the segment now; null when under the k-anonymity threshold and"
        " the key may not see members (`members` scope)."
    )
    created_at: datetime
    updated_at: datetime


class SegmentList(BaseModel):
    segments: list[Segment]


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: str = RuleText
    sample: int = Field(default=10, ge=0, le=100, description="How many members to show.")


class PersonRef(BaseModel):
    profile_id: str
    kind: str = Field(description="`user` or `anonymous`.")


class Preview(BaseModel):
    size: int = Field(description="How many people the rule selects now.")
    sample: list[PersonRef]


class Member(PersonRef):
    entered_at: datetime


class MemberPage(BaseModel):
    members: list[Member]
    next_after: str | None = Field(description="Pass as `after` for the next page.")


class Stay(BaseModel):
    segment: str
    entered_at: datetime
    exited_at: datetime | None


class ProfileSegments(BaseModel):
    profile_id: str
    segments: list[str] = Field(description="Segments the person is in now.")
    history: list[Stay] = Field(description="Every entry and exit, oldest first.")


def person(profile_key: str) -> PersonRef:
    kind, person_id = split_key(profile_key)
    return PersonRef(profile_id=person_id, kind=kind)
