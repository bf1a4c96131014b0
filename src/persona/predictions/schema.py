"""What clients send and read about predictions and clusters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from persona.clock import utc_or_none
from persona.documents import NO_NUL, EventType
from persona.storage.records import PredictionRecord

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class PredictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Lower case letters, digits and _; rules read it as profile.scores.<name>.",
        examples=["purchase_30d"],
    )
    event_type: EventType = Field(
        description="An event type, as the events' `type` field takes it.", examples=["purchase"]
    )
    horizon_days: int = Field(ge=1, le=3650, examples=[30])
    description: str = Field(default="", max_length=1000, pattern=NO_NUL)


class Prediction(BaseModel):
    name: str
    event_type: str
    horizon_days: int
    description: str
    created_at: datetime
    trained_at: datetime | None
    evaluation: dict[str, Any] | None = Field(
        description="Held-out ROC-AUC, Brier score and calibration table of the last training,"
        " next to the recency/frequency heuristic's."
    )

    @classmethod
    def of(cls, record: PredictionRecord) -> Prediction:
        return cls(
            name=record.name,
            event_type=record.event_type,
            horizon_days=record.horizon_days,
            description=record.description,
            created_at=utc_or_none(record.created_at_ms) or datetime.now(UTC),
            trained_at=utc_or_none(record.trained_at_ms),
            evaluation=record.evaluation,
        )


class PredictionList(BaseModel):
    predictions: list[Prediction]


class TrainingOut(BaseModel):
    name: str
    roc_auc: float | None
    brier: float
    heuristic_roc_auc: float | None
    heuristic_brier: float
    scored: int = Field(description="People who received a score.")
    seconds: float


class Cluster(BaseModel):
    cluster_id: int
    segment: str = Field(description="The segment of the cluster, usable in rules.")
    size: int
    description: str = Field(description="The features that set the cluster apart.")


class ClusterList(BaseModel):
    k: int | None
    silhouettes: dict[str, float]
    trained_at: datetime | None
    clusters: list[Cluster]
