"""The composition root: build every service from the settings, once."""

from __future__ import annotations

from dataclasses import dataclass

from persona.access.keys import ApiKeyService
from persona.catalog.service import CatalogService
from persona.clock import Clock, SystemClock
from persona.ingest.service import IngestLimits, IngestService
from persona.observability.metrics import Metrics
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
            half_life_ms=settings.affinity_half_life_days * 86_400_000,
            recent_limit=settings.recent_items_limit,
            weights=dict(settings.event_weights),
            purchase_types=frozenset(settings.purchase_event_types),
        )
        profiles = ProfileService(storage, clock, rules)
        limits = IngestLimits(
            max_batch_events=settings.max_batch_events,
            max_event_bytes=settings.max_event_bytes,
            future_tolerance_ms=round(settings.future_tolerance_seconds * 1000),
        )
        ingest = IngestService(storage, profiles, clock, limits, metrics)
        segments = SegmentService(storage, clock)
        ingest.add_listener(segments.on_events)
        return cls(
            settings=settings,
            clock=clock,
            storage=storage,
            metrics=metrics,
            catalog=CatalogService(storage, clock),
            profiles=profiles,
            ingest=ingest,
            keys=ApiKeyService(storage, clock, settings.api_key_cache_seconds),
            recommendations=RecommendationService(
                storage,
                profiles,
                clock,
                ModelRegistry(settings.home / "models"),
                budget_ms=settings.recommend_budget_ms,
            ),
            segments=segments,
        )

    def close(self) -> None:
        self.recommendations.close()
        self.storage.close()
