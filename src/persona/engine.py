"""The composition root: build every service from the settings, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persona.access.keys import ApiKeyService
from persona.access.ratelimit import Limiter, RateLimiter, RedisRateLimiter
from persona.cache import AnswerCache
from persona.catalog.service import CatalogService
from persona.clock import Clock, SystemClock
from persona.decide.service import DecisionService
from persona.experiments.results import ExperimentService
from persona.ingest.service import IngestService
from persona.leases import Leases, RedisLeases
from persona.observability.metrics import Metrics
from persona.predictions.clusters import ClusterService
from persona.predictions.service import PredictionService
from persona.privacy.service import PrivacyServices
from persona.profiles import SharedProfileCache
from persona.profiles.service import ProfileService
from persona.recommend import SharedAnswers, answer_bytes
from persona.recommend.registry import ModelRegistry
from persona.recommend.service import RecommendationService
from persona.segments.service import SegmentService
from persona.settings import Settings
from persona.storage import CHECKPOINT_BACKSTOP_PAGES, ParquetEventLake
from persona.storage.database import create_database_engine, migrate
from persona.storage.sql import SqlStorage
from persona.stream import RedisStream, Relay, WebhookService


@dataclass
class Engine:
    settings: Settings
    clock: Clock
    storage: SqlStorage
    lake: ParquetEventLake  # the event log as Parquet in the home, for training and analytics
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
    rate_limits: Limiter
    failed_auth: Limiter  # per client address, of requests without a valid key
    leases: Leases  # who runs the background jobs: in Redis when it is set, else in the store
    webhooks: WebhookService
    stream: RedisStream | None = None  # the change stream, when ``stream_url`` is set

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Engine:
        """Create the home, migrate the schema and wire the services."""
        clock = clock or SystemClock()
        settings.home.mkdir(parents=True, exist_ok=True)
        db = create_database_engine(
            settings.resolved_database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            # SqlStorage checkpoints after its commits (storage.sql.checkpoints)
            sqlite_autocheckpoint_pages=CHECKPOINT_BACKSTOP_PAGES,
        )
        migrate(db)
        storage = SqlStorage(db)
        stream = _stream(settings)
        storage.publishes = stream is not None
        if stream is not None:
            Relay(storage, stream).start()  # the stream holds every write from here on
        lake = ParquetEventLake(settings.home / "lake", storage)
        metrics = Metrics()
        rules = settings.profiles.aggregate_rules()
        purchase_types = settings.profiles.purchase_event_types
        profiles = ProfileService(
            storage,
            clock,
            rules,
            AnswerCache(settings.profiles.cache_entries, settings.profiles.cache_seconds),
        )
        redis_client = _redis_client(settings)
        shared_profiles = None
        if redis_client is not None and settings.profiles.cache_seconds > 0:
            shared_profiles = SharedProfileCache(redis_client, settings.profiles.cache_seconds)
            profiles.share_cache(shared_profiles)
        ingest = IngestService(storage, profiles, clock, settings.ingest, metrics)
        segments = SegmentService(storage, clock)
        clusters = ClusterService(
            storage,
            clock,
            rules,
            settings.predictions.clustering(),
            settings.home / "clusters" / "model.json",
        )
        predictions = PredictionService(storage, clock, settings.predictions.propensity())
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
            budget_ms=settings.recommend.budget_ms,
            cache=AnswerCache(
                settings.recommend.cache_entries,
                settings.recommend.cache_seconds,
                max_bytes=settings.recommend.cache_megabytes * 1024 * 1024,
                weigh=answer_bytes,
            ),
        )
        storage.add_commit_listener(recommendations.committed)
        if shared_profiles is not None and settings.recommend.cache_seconds > 0:
            # Answers are outdated by the same versions as the profiles they were read from.
            shared = SharedAnswers(redis_client, settings.recommend.cache_seconds, shared_profiles)
            recommendations.share_answers(shared)
        storage.add_reset_listener(recommendations.reset)
        recommendations.set_segment_favourites(segments.favourites.favoured_items)
        decisions = DecisionService(
            storage,
            clock,
            profiles,
            recommendations,
            settings.decisions,
            purchase_types=purchase_types,
        )
        ingest.add_listener(decisions.attribution.on_events)
        # A model set an experiment's arm is served from outlives the pruning of old ones.
        recommendations.registry.keep_in_use(decisions.model_versions_in_use)
        decisions.set_answer_counter(
            lambda source, cached: metrics.recommendation_answered(source, cached, "decisions")
        )
        catalog = CatalogService(storage, clock)
        catalog.add_listener(recommendations.catalog_changed)
        keys = ApiKeyService(storage, clock, settings.access.key_cache_seconds)
        privacy = PrivacyServices.build(
            settings.privacy,
            settings.home,
            storage,
            clock,
            profiles,
            ingest,
            recommendations,
            keys,
            lake,
        )
        decisions.set_erasure_check(privacy.erasure.is_erased)
        decisions.set_context_scrub(privacy.personal.scrub)
        rate_limits, failed_auth = _rate_limiters(settings, redis_client)
        for prefix, sizes in [
            ("profiles", profiles.sizes),
            ("recommendations", recommendations.sizes),
            ("consent", privacy.consent.sizes),
            ("keys", keys.sizes),
            ("rate_limits", rate_limits.sizes),
            ("failed_auth", failed_auth.sizes),
        ]:
            metrics.watch_tables(prefix, sizes)
        if stream is not None:
            metrics.watch_stream(stream.lags)
        return cls(
            settings=settings,
            clock=clock,
            storage=storage,
            lake=lake,
            metrics=metrics,
            catalog=catalog,
            profiles=profiles,
            ingest=ingest,
            keys=keys,
            recommendations=recommendations,
            segments=segments,
            decisions=decisions,
            experiments=ExperimentService(
                storage, decisions, purchase_types, settings.decisions.attribution_window_hours
            ),
            clusters=clusters,
            predictions=predictions,
            privacy=privacy,
            rate_limits=rate_limits,
            failed_auth=failed_auth,
            leases=storage if redis_client is None else RedisLeases(redis_client),
            webhooks=WebhookService(storage, clock, stream),
            stream=stream,
        )

    def close(self) -> None:
        self.lake.wait()
        self.decisions.close()
        self.recommendations.close()
        self.storage.close()


def _redis_client(settings: Settings) -> Any | None:
    """A client of ``redis_url`` (it connects on first use), or None when it is not set."""
    if settings.redis_url is None:
        return None
    import redis  # not imported by processes without Redis

    return redis.Redis.from_url(settings.redis_url, socket_timeout=1.0)


def _stream(settings: Settings) -> RedisStream | None:
    if settings.stream_url is None:
        return None
    import redis

    # Reads block for up to a second (``stream.worker.BLOCK_MS``): the timeout is longer.
    client = redis.Redis.from_url(settings.stream_url, socket_timeout=5.0)
    return RedisStream(client, settings.stream.name, settings.stream.max_messages)


def _rate_limiters(settings: Settings, client: Any | None) -> tuple[Limiter, Limiter]:
    """Per key, and per client address for requests without a valid key: in Redis when
    ``redis_url`` is set (shared by every process), else in this process."""
    access = settings.access
    if client is None:
        return (
            RateLimiter(access.rate_limit_per_second, access.rate_limit_burst),
            RateLimiter(access.failed_auth_per_second, access.failed_auth_burst),
        )
    return (
        RedisRateLimiter(client, "keys", access.rate_limit_per_second, access.rate_limit_burst),
        RedisRateLimiter(
            client, "failed-auth", access.failed_auth_per_second, access.failed_auth_burst
        ),
    )
