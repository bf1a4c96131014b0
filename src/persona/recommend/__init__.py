"""Recommendations: candidate sources, filters, a learned ranker, reranking, the served
pipeline with its fallback chain, training, the model registry and offline evaluation.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.recommend.answer import (
    RecommendationQuery,
    RecommendationResult,
)
from persona.recommend.evaluation import (
    Report,
    read_workload,
    registered_candidates,
    run_protocol,
)
from persona.recommend.pipeline import SourceFactory
from persona.recommend.registry import (
    ModelRegistry,
)
from persona.recommend.scheduler import (
    retrain_job,
)
from persona.recommend.schema import (
    ModelsOut,
    ModelVersionOut,
    RecommendationParams,
    RecommendationsOut,
)
from persona.recommend.service import (
    RecommendationService,
    answer_bytes,
)
from persona.recommend.settings import RecommendSettings
from persona.recommend.shared_answers import SharedAnswers
from persona.recommend.spark import lake_source, spark_sources
from persona.recommend.training import (
    NotEnoughDataError,
    TrainingOutcome,
    train_model_set,
)

__all__ = [
    "ModelRegistry",
    "ModelVersionOut",
    "ModelsOut",
    "NotEnoughDataError",
    "RecommendSettings",
    "RecommendationParams",
    "RecommendationQuery",
    "RecommendationResult",
    "RecommendationService",
    "RecommendationsOut",
    "Report",
    "SharedAnswers",
    "SourceFactory",
    "TrainingOutcome",
    "answer_bytes",
    "lake_source",
    "read_workload",
    "registered_candidates",
    "retrain_job",
    "run_protocol",
    "spark_sources",
    "train_model_set",
]
