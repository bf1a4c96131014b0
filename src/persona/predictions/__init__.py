"""Predictions: behavioural clusters (segments of kind cluster) and propensity scores.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.predictions.clustering import (
    ClusterConfig,
)
from persona.predictions.clusters import (
    ClusterService,
)
from persona.predictions.propensity import (
    PropensityConfig,
)
from persona.predictions.scheduler import (
    PredictiveTraining,
    predictive_retrain_job,
    train_predictive_models,
)
from persona.predictions.schema import (
    NAME_PATTERN,
    Cluster,
    ClusterList,
    Prediction,
    PredictionIn,
    PredictionList,
    TrainingOut,
)
from persona.predictions.service import (
    PredictionService,
)
from persona.predictions.settings import PredictionSettings

__all__ = [
    "NAME_PATTERN",
    "Cluster",
    "ClusterConfig",
    "ClusterList",
    "ClusterService",
    "Prediction",
    "PredictionIn",
    "PredictionList",
    "PredictionService",
    "PredictionSettings",
    "PredictiveTraining",
    "PropensityConfig",
    "TrainingOut",
    "predictive_retrain_job",
    "train_predictive_models",
]
