"""Placement configuration and the decisions API, as pydantic models (a schema per use).

``PlacementConfig`` is what an operator writes (API body or a JSON file for the CLI); it is
validated once, stored as the document of a placement version, and read back with the same
model. Cross-field rules (fallback among the variants, policy sections present) are checked
here so that a stored configuration is always usable.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from persona.documents import NO_NUL, Id, Text, check_json_document
from persona.errors import InvalidPlacementError
from persona.recommend import BusinessRule, BusinessRuleIn

NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
Policy = Literal["rules", "ab", "thompson", "recommendations"]
EXPERIMENT_POLICIES = ("ab", "thompson")
RECOMMENDATIONS_VARIANT = "recommendations"
INCOMING = "incoming"  # the validation context of a configuration a client sends


class Targeting(BaseModel):
    """Who may see a variant: every listed condition must hold (an empty list is no condition).

    ``segments``: the person is in all of them; ``not_segments``: in none of them; ``device``,
    ``country``: the request context's value is one of those listed; ``hours`` (0-23, UTC unless
    the context says otherwise) and ``weekdays`` (0 = Monday) likewise.
    """

    model_config = ConfigDict(extra="forbid")

    segments: list[Text] = Field(default_factory=list, max_length=20)
    not_segments: list[Text] = Field(default_factory=list, max_length=20)
    device: list[Text] = Field(default_factory=list, max_length=50)
    country: list[Text] = Field(default_factory=list, max_length=300)
    hours: list[int] = Field(default_factory=list, max_length=24)
    weekdays: list[int] = Field(default_factory=list, max_length=7)

    @model_validator(mode="after")
    def _check_ranges(self) -> Targeting:
        if any(not 0 <= h <= 23 for h in self.hours):
            raise ValueError("hours are 0 to 23")
        if any(not 0 <= d <= 6 for d in self.weekdays):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return self

    @property
    def uses_segments(self) -> bool:
        return bool(self.segments or self.not_segments)


class VariantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=VARIANT_PATTERN, description="Unique within the placement.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="What the client renders: title, image, link, ..."
    )
    targeting: Targeting = Field(default_factory=Targeting)
    priority: int = Field(
        default=0,
        ge=-(2**31),
        le=2**31 - 1,
        description="`rules`: the highest priority that matches wins.",
    )
    weight: float = Field(default=1.0, ge=0, description="`ab`: relative share of units.")
    model_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="An `ab` or `thompson` placement with a `recommendations` section: the "
        "stored model set this arm's lists come from (default: the one in service), so that "
        "two model sets are compared online through the experiment's results.",
    )

    @field_validator("payload")
    @classmethod
    def _bounded_payload(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Bounded as it comes in (``parse_placement``), not when a stored version is read back:
        # versions stored before the bound must still load.
        return check_json_document(value) if info.context == INCOMING else value


class ThompsonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward: Literal["click", "conversion"] = "click"
    min_exploration: float = Field(
        default=0.05, ge=0, le=1, description="Share of decisions that pick an arm uniformly."
    )
    bucket_by: Literal["segment", "device", "country", "hour", "weekday"] | None = Field(
        default=None, description="Learn separately per bucket (a context field or a segment)."
    )
    bucket_segments: list[Text] = Field(
        default_factory=list,
        max_length=20,
        description="`bucket_by: segment`: the bucket is the first of these the person is in.",
    )

    @model_validator(mode="after")
    def _check_segments(self) -> ThompsonConfig:
        if self.bucket_by == "segment" and not self.bucket_segments:
            raise ValueError("bucket_by 'segment' needs bucket_segments")
        return self


class RecommendationsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=10, ge=1, le=100)
    category: str | None = Field(
        default=None, max_length=128, pattern=NO_NUL, description="Only this category."
    )
    exclude: list[Text] = Field(default_factory=list, max_length=500)
    rules: list[BusinessRuleIn] = Field(
        default_factory=list,
        max_length=200,
        description="Business rules of the list (pin, boost, bury), also applied to "
        "`GET /v1/users/{id}/recommendations?placement=` this placement.",
    )

    @cached_property
    def business_rules(self) -> tuple[BusinessRule, ...]:
        """The rules as a recommendation query carries them: converted once for a placement's
        version (``PlacementConfigs`` parses each once), not at every decision."""
        return tuple(rule.rule() for rule in self.rules)


class ExperimentSettings(BaseModel):
    """How the results of an `ab` or `thompson` placement are analysed (fixed in advance)."""

    model_config = ConfigDict(extra="forbid")

    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    mixing_sd: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="mSPRT: the absolute difference of rates the sequential test is tuned for.",
    )
    srm_threshold: float = Field(default=0.001, gt=0, lt=0.5)


class PlacementBody(BaseModel):
    """A placement's configuration without its name (the body of a PUT)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=1000, pattern=NO_NUL)
    policy: Policy
    variants: list[VariantConfig] = Field(default_factory=list, max_length=50)
    fallback: str | None = Field(
        default=None,
        description="Variant served to the holdout, when paused, beyond the page cap and when"
        " nothing matches. Default: the first variant.",
    )
    holdout_share: float = Field(default=0.0, ge=0, lt=1)
    thompson: ThompsonConfig | None = None
    recommendations: RecommendationsConfig | None = None
    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)

    @model_validator(mode="after")
    def _check(self) -> PlacementBody:
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise ValueError("variant ids must be unique")
        if self.policy == "recommendations":
            if RECOMMENDATIONS_VARIANT in ids:
                raise ValueError(f"the variant id {RECOMMENDATIONS_VARIANT!r} is reserved")
            if self.recommendations is None:
                self.recommendations = RecommendationsConfig()
        elif not ids:
            raise ValueError(f"a {self.policy} placement needs at least one variant")
        if self.fallback is None and ids:
            self.fallback = ids[0]
        if self.fallback is not None and self.fallback not in ids:
            raise ValueError(f"fallback {self.fallback!r} is not one of the variants")
        if self.policy == "thompson" and self.thompson is None:
            self.thompson = ThompsonConfig()
        if self.policy != "thompson" and self.thompson is not None:
            raise ValueError("the thompson section is for policy 'thompson'")
        if self.policy == "rules" and self.recommendations is not None:
            raise ValueError(
                "the recommendations section is for policies 'recommendations', 'ab' and"
                " 'thompson' (whose arms are then lists, each from its variant's model_version)"
            )
        if self.recommendations is None and any(v.model_version for v in self.variants):
            raise ValueError("a variant's model_version needs a recommendations section")
        if self.policy == "ab" and sum(v.weight for v in self.variants) <= 0:
            raise ValueError("ab weights must not all be zero")
        return self

    def variant(self, variant_id: str | None) -> VariantConfig | None:
        for v in self.variants:
            if v.id == variant_id:
                return v
        return None


class PlacementIn(PlacementBody):
    """A new placement: its name and its first configuration."""

    name: str = Field(pattern=NAME_PATTERN, description="Lower case letters, digits, _ and -.")

    def body(self) -> PlacementBody:
        return PlacementBody.model_validate(self.model_dump(exclude={"name"}))


class Placement(BaseModel):
    name: str
    version: int
    status: Literal["active", "paused"]
    experiment_id: str | None = Field(description="For `ab` and `thompson`: `name.vVERSION`.")
    config: PlacementBody
    created_at: datetime
    updated_at: datetime


class PlacementList(BaseModel):
    placements: list[Placement]


class PlacementVersion(BaseModel):
    version: int
    policy: str
    config: PlacementBody
    created_at: datetime


class PlacementVersions(BaseModel):
    name: str
    current_version: int
    versions: list[PlacementVersion]


# --- decisions -------------------------------------------------------------------------------


class DecisionContext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    country: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    hour: int | None = Field(default=None, ge=0, le=23, description="Default: now, UTC.")
    weekday: int | None = Field(default=None, ge=0, le=6, description="0 = Monday; default: now.")
    page: str | None = Field(default=None, max_length=256, pattern=NO_NUL)


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = None
    anonymous_id: Id | None = None
    context: DecisionContext = Field(default_factory=DecisionContext)
    placements: list[Text] = Field(min_length=1, max_length=20)
    page_cap: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="How many of the placements (in the order asked) to personalize; the rest"
        " get their fallback. Default: the server's setting.",
    )

    @model_validator(mode="after")
    def _check_identity(self) -> DecisionRequest:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("give user_id or anonymous_id")
        if len(set(self.placements)) != len(self.placements):
            raise ValueError("each placement once")
        return self


class DecisionOut(BaseModel):
    placement: str
    decision_id: str
    variant: str | None = Field(description="Null only when nothing can be served.")
    payload: dict[str, Any] | None
    policy: str
    version: int
    reason: str = Field(description="Why this variant: matched, assigned, exploit, explore, ...")
    holdout: bool


class DecisionsOut(BaseModel):
    decisions: list[DecisionOut]


def experiment_id(name: str, version: int) -> str:
    return f"{name}.v{version}"


def parse_placement(raw: Any, *, named: bool) -> PlacementIn | PlacementBody:
    """Validate a configuration document; errors become one ``invalid_placement`` problem."""
    model: type[PlacementBody] = PlacementIn if named else PlacementBody
    try:
        return model.model_validate(raw, context=INCOMING)
    except ValidationError as exc:
        errors = [
            {
                "path": ".".join(str(p) for p in e.get("loc", ())),
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors(include_url=False, include_input=False)
        ]
        detail = "; ".join(f"{e['path'] or 'body'}: {e['message']}" for e in errors[:5])
        raise InvalidPlacementError(detail, extra={"errors": errors}) from None
