"""Recommendations: candidate sources, filters, a learned ranker, reranking, the served
pipeline with its fallback chain, training, the model registry and offline evaluation.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.recommend.answer import (
    RecommendationQuery,
    RecommendationResult,
)
from persona.recommend.business import BusinessRule, BusinessRuleIn
from persona.recommend.dataset import IntArray, Interactions
from persona.recommend.evaluation import (
    COLUMNS,
    Candidate,
    Report,
    read_workload,
    registered_candidates,
    run_protocol,
)
from persona.recommend.pipeline import SourceFactory
from persona.recommend.registry import (
    ModelRegistry,
    ModelVersion,
)
from persona.recommend.scheduler import (
    retrain_job,
)
from persona.recommend.schema import (
    ModelsOut,
    ModelVersionOut,
    PromotedOut,
    RecommendationParams,
    RecommendationsOut,
    RecommendedItemOut,
    SimilarItemsOut,
    SimilarParams,
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
    load_training_data,
    train_model_set,
)

__all__ = [
    "COLUMNS",
    "BusinessRule",
    "BusinessRuleIn",
    "Candidate",
    "IntArray",
    "Interactions",
    "ModelRegistry",
    "ModelVersion",
    "ModelVersionOut",
    "ModelsOut",
    "NotEnoughDataError",
    "PromotedOut",
    "RecommendSettings",
    "RecommendationParams",
    "RecommendationQuery",
    "RecommendationResult",
    "RecommendationService",
    "RecommendationsOut",
    "RecommendedItemOut",
    "Report",
    "SharedAnswers",
    "SimilarItemsOut",
    "SimilarParams",
    "SourceFactory",
    "TrainingOutcome",
    "answer_bytes",
    "lake_source",
    "load_training_data",
    "read_workload",
    "registered_candidates",
    "retrain_job",
    "run_protocol",
    "spark_sources",
    "train_model_set",
]
