"""Clusters and propensity models: the settings group ``predictions``
(``PERSONA_PREDICTIONS__…``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from persona.config import SettingsGroup
from persona.predictions.clustering import ClusterConfig
from persona.predictions.propensity import PropensityConfig


class PredictionSettings(SettingsGroup):
    """Behavioural clusters and propensity models (docs/predictions.md)."""

    cluster_k_min: int = Field(default=2, ge=2, le=50, description="Fewest clusters tried.")
    cluster_k_max: int = Field(default=8, ge=2, le=50, description="Most clusters tried.")
    cluster_silhouette_sample: int = Field(
        default=5_000, ge=100, description="People sampled to score each k by silhouette."
    )
    fit_cutoffs: int = Field(
        default=24,
        ge=1,
        le=200,
        description="Cutoffs, one horizon apart, whose examples train a propensity model.",
    )
    retrain_interval_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How often `persona serve` retrains clusters and predictions (0: never).",
    )

    @model_validator(mode="after")
    def _check_cluster_range(self) -> PredictionSettings:
        if self.cluster_k_min > self.cluster_k_max:
            raise ValueError("cluster_k_min must not exceed cluster_k_max")
        return self

    def clustering(self) -> ClusterConfig:
        return ClusterConfig(
            k_min=self.cluster_k_min,
            k_max=self.cluster_k_max,
            silhouette_sample=self.cluster_silhouette_sample,
        )

    def propensity(self) -> PropensityConfig:
        return PropensityConfig(fit_cutoffs=self.fit_cutoffs)
