"""The composition root: build every service from the settings, once."""

from __future__ import annotations

from dataclasses import dataclass

from persona.access.keys import ApiKeyService
from persona.access.ratelimit import RateLimiter
from persona.cache import AnswerCache
from persona.catalog.service import CatalogService
from persona.clock import DAY_MS, HOUR_MS, Clock, SystemClock
from persona.decide.placements import DecisionSettings
from persona.decide.service import DecisionService
from persona.experiments.results import ExperimentService
from persona.ingest.service import IngestLimits, IngestService
from persona.observability.metrics import Metrics
from persona.predictions.clustering import ClusterConfig
from persona.predictions.clusters import ClusterService
from persona.predictions.propensity import PropensityConfig
from persona.predictions.service import PredictionService
from persona.privacy.service import PrivacyServices
from persona.profiles.aggregate import AggregateRules
from persona.profiles.service import ProfileService
from persona.recommend.registry import ModelRegistry
from persona.recommend.service import RecommendationService
from persona.segments.service import SegmentService
from persona.settings import Settings
from persona.storage.database import create_database_engine, migrate
from persona.storage.sql import SqlStorage


@dataclass
class Engine:
    settings: Settings
    clock: Clock
    storage: SqlStorage
    metrics: Metrics
    catalog: CatalogService
    profiles: ProfileService
    ingest: IngestService
    keys: ApiKeyService
    recommendations: RecommendationService
    segments: SegmentService
    decisions: DecisionService
    experiments: ExperimentService
    clusters: ClusterService
    predictions: PredictionService
    privacy: PrivacyServices
    rate_limits: RateLimiter

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Engine:
        """Create the home, migrate the schema and wire the services."""
        clock = clock or SystemClock()
        settings.home.mkdir(parents=True, exist_ok=True)
        db = create_database_engine(
            settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        migrate(db)
        storage = SqlStorage(db)
        metrics = Metrics()
        rules = AggregateRules(
            session_gap_ms=round(settings.session_gap_seconds * 1000),
            half_life_ms=settings.affinity_half_life_days * DAY_MS,
            recent_limit=settings.recent_items_limit,
            weights=dict(settings.event_weights),
            purchase_types=frozenset(settings.purchase_event_types),
        )
        profiles = ProfileService(
            storage,
            clock,
            rules,
            AnswerCache(settings.profile_cache_entries, settings.profile_cache_seconds),
        )
        limits = IngestLimits(
            max_batch_events=settings.max_batch_events,
            max_event_bytes=settings.max_event_bytes,
            future_tolerance_ms=round(settings.future_tolerance_seconds * 1000),
        )
        ingest = IngestService(storage, profiles, clock, limits, metrics)
        segments = SegmentService(storage, clock)
        clusters = ClusterService(
            storage,
            clock,
            rules,
            ClusterConfig(
                k_min=settings.cluster_k_min,
                k_max=settings.cluster_k_max,
                silhouette_sample=settings.cluster_silhouette_sample,
            ),
            settings.home / "clusters" / "model.json",
        )
        predictions = PredictionService(
            storage, clock, PropensityConfig(fit_cutoffs=settings.prediction_fit_cutoffs)
        )
        # Clusters first: rules that use segment("cluster_<id>") see this event's cluster.
        ingest.add_listener(clusters.on_events)
        ingest.add_listener(predictions.on_events)
        ingest.add_listener(segments.real_time.on_events)
        profiles.add_facet(segments.profile_facet)
        profiles.add_facet(predictions.profile_facet)
        recommendations = RecommendationService(
            storage,
            profiles,
            clock,
            ModelRegistry(settings.home / "models"),
            budget_ms=settings.recommend_budget_ms,
            cache=AnswerCache(
                max_entries=settings.recommend_cache_entries,
                ttl_seconds=settings.recommend_cache_seconds,
            ),
        )
        storage.add_commit_listener(recommendations.committed)
        recommendations.set_segment_favourites(segments.favourites.favoured_items)
        decisions = DecisionService(
            storage,
            clock,
            profiles,
            recommendations,
            DecisionSettings(
                page_cap=settings.decision_page_cap,
                attribution_window_ms=round(settings.attribution_window_hours * HOUR_MS),
                purchase_types=frozenset(settings.purchase_event_types),
            ),
        )
        ingest.add_listener(decisions.attribution.on_events)
        catalog = CatalogService(storage, clock)
        catalog.add_listener(recommendations.catalog_changed)
        keys = ApiKeyService(storage, clock, settings.api_key_cache_seconds)
        privacy = PrivacyServices.build(
            settings, storage, clock, profiles, ingest, recommendations, keys
        )
        return cls(
            settings=settings,
            clock=clock,
            storage=storage,
            metrics=metrics,
            catalog=catalog,
            profiles=profiles,
            ingest=ingest,
            keys=keys,
            recommendations=recommendations,
            segments=segments,
            decisions=decisions,
            experiments=ExperimentService(
                storage,
                decisions,
                settings.purchase_event_types,
                settings.attribution_window_hours,
            ),
            clusters=clusters,
            predictions=predictions,
            privacy=privacy,
            rate_limits=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        )

    def close(self) -> None:
        self.decisions.close()
        self.recommendations.close()
        self.storage.close()
