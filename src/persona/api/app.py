"""Build the FastAPI application around an engine."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

import persona
from persona.api import ui
from persona.api.deps import install_security_docs, key_check
from persona.api.direct import answer_directly
from persona.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from persona.api.problems import install_problem_handlers
from persona.api.routes import (
    catalog,
    decide,
    experiments,
    ingest,
    operations,
    predictions,
    privacy,
    profiles,
    recommend,
    sdk,
    segments,
    webhooks,
)
from persona.engine import Engine
from persona.jobs import Leadership, PeriodicJob, start_all, stop_all
from persona.predictions.scheduler import predictive_retrain_job
from persona.privacy.consent import consent_holders_job
from persona.privacy.retention import retention_job
from persona.recommend.scheduler import retrain_job
from persona.runtime import TRIM_SECONDS, settle_heap, trim_heap
from persona.segments.scheduler import segment_refresh_job
from persona.stream import relay_jobs

log = logging.getLogger(__name__)

FOLLOW_SECONDS = 0.25  # how often a server reads other processes' changes
CHAMPION_CHECK_SECONDS = 1.0  # how often it looks for a model set promoted elsewhere


def background_jobs_of(engine: Engine, leadership: Leadership) -> list[PeriodicJob]:
    """The work of `persona serve` besides requests: every process follows the others'
    changes and the champion model set; the scheduled jobs run in the leading process only.
    Each job's interval 0 switches it off."""
    leader_only = _scheduled_jobs(engine)
    for job in leader_only:
        job.when = leadership.held
    return [
        leadership.job(),
        PeriodicJob("follow-changes", FOLLOW_SECONDS, engine.storage.follow_changes),
        PeriodicJob(
            "follow-champion", CHAMPION_CHECK_SECONDS, engine.recommendations.follow_champion
        ),
        consent_holders_job(engine.privacy.consent),  # read first by _warm_up
        PeriodicJob("trim-heap", TRIM_SECONDS, trim_heap),
        *leader_only,
    ]


def _stream_jobs(engine: Engine) -> tuple[Leadership | None, list[PeriodicJob]]:
    """With a change stream: its relay, in one process of the store at a time, and the lease
    that elects it."""
    if engine.stream is None:
        return None, []
    return relay_jobs(
        engine.storage,
        engine.stream,
        engine.leases,
        engine.settings.stream,
        engine.metrics.stream_published.inc,
    )


def _load_champion(engine: Engine) -> None:
    try:
        engine.recommendations.reload()
    except Exception:
        log.exception("the model set could not be loaded at start; requests will try again")


def _warm_up(engine: Engine) -> None:
    """The start-up reads that every request leans on, before the first request: who holds
    consent records, and (for up to ``server.warmup_seconds``) the check of every shortlist
    against the store. On two cores, a first request ranked while they run took up to 80 ms
    of a 50 ms budget."""
    try:
        engine.privacy.consent.refresh_holders()
    except Exception:  # answered by reads until the job's next tick
        log.exception("who holds consent records could not be read at start")
    if not engine.recommendations.settle(engine.settings.server.warmup_seconds):
        log.info("taking requests while the shortlists are still being checked")


def _scheduled_jobs(engine: Engine) -> list[PeriodicJob]:
    return [
        retrain_job(
            engine.storage,
            engine.recommendations,
            engine.clock,
            engine.settings.profiles.event_weights,
            engine.settings.recommend.retrain_interval_seconds,
            events=engine.lake,
        ),
        retention_job(engine.privacy.retention, engine.settings.privacy.retention_interval_seconds),
        segment_refresh_job(engine.segments, engine.settings.segments.refresh_seconds),
        predictive_retrain_job(
            engine.clusters,
            engine.predictions,
            engine.segments,
            engine.settings.predictions.retrain_interval_seconds,
        ),
    ]


# The router tries routes one by one (a few microseconds each), so these are tried first: the
# probes of load balancers and monitoring, then the requests a site makes for every page view.
# None of them can shadow another route: a path parameter never spans a "/".
HOT_ROUTES = (
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/decisions"),
    ("GET", "/v1/users/{user_id}/recommendations"),
    ("GET", "/v1/profiles/{user_id}"),
    ("POST", "/v1/events"),
)


def _match_hot_routes_first(app: FastAPI) -> None:
    rank = {route: number for number, route in enumerate(HOT_ROUTES)}

    def order(route: BaseRoute) -> int:
        methods = getattr(route, "methods", None) or ()
        path = getattr(route, "path", "")
        return min((rank.get((m, path), len(rank)) for m in methods), default=len(rank))

    app.router.routes.sort(key=order)  # stable: the rest keep their order


def create_app(engine: Engine, *, background_jobs: bool = False) -> FastAPI:
    """The API around ``engine``; ``background_jobs`` starts scheduled work (retraining)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Blocking request work (sync routes) runs on this many threads. Far more threads than
        # cores only makes them queue for the GIL: with anyio's default of 40, the 99th
        # percentile of decisions at 16 concurrent clients was three times higher.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = engine.settings.server.worker_threads
        leadership = Leadership(
            engine.leases, ttl_seconds=engine.settings.server.jobs_lease_seconds
        )
        jobs: list[PeriodicJob] = []
        relaying: Leadership | None = None
        if background_jobs:
            engine.storage.follow_changes()  # from here on
        # The champion is loaded before the first request, not by it (a load would spend the
        # request's budget): `persona serve` accepts connections once this returns (another
        # worker serves meanwhile).
        await anyio.to_thread.run_sync(_load_champion, engine)
        if background_jobs:
            await anyio.to_thread.run_sync(_warm_up, engine)
            leadership.renew()
            jobs = start_all(background_jobs_of(engine, leadership), engine.metrics.job_ran)
            relaying, relay = _stream_jobs(engine)
            jobs += start_all(relay, engine.metrics.job_ran)
        settle_heap()
        try:
            yield
        finally:
            stop_all(jobs)
            if background_jobs:
                leadership.release()
            if relaying is not None:
                relaying.release()

    app = FastAPI(
        lifespan=lifespan,
        title="persona",
        version=persona.__version__,
        description="Self-hosted engine for data-driven content personalization.",
        # Metrics are persona's own (Prometheus, /metrics). The framework's OpenTelemetry
        # instrumentation would look up the global providers on every request even when none
        # is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.engine = engine
    install_problem_handlers(app)
    modules = (
        operations,
        recommend,
        decide,
        profiles,
        ingest,
        catalog,
        segments,
        predictions,
        experiments,
        privacy,
        webhooks,
        sdk,  # the browser snippet (a static file, no key)
    )
    for module in modules:
        # The routes themselves, not ``include_router``: an included router is matched through
        # per-request bookkeeping of the framework's that cost more than the route table
        # lookup itself (a tenth of a warm decision's time). The routers add a prefix and tags
        # only, which their routes already carry.
        app.router.routes.extend(module.router.routes)
    install_security_docs(app, [module.router for module in modules])
    ui.install(app, engine)  # the dashboard at /ui (docs/ui.md): pages, not API operations
    _match_hot_routes_first(app)
    answer_directly(
        app, "GET", "/v1/users/{user_id}/recommendations", {"user_id": recommend.PERSON_ID_TEXT}
    )
    # Added last runs first: the request id exists before the body limit may refuse a request.
    server = engine.settings.server
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=server.max_body_bytes,
        max_header_bytes=server.max_header_bytes,
        body_timeout_seconds=server.body_timeout_seconds,
        authenticate=ui.outside_ui(key_check(engine)),  # dashboard forms carry a session
    )
    app.add_middleware(RequestContextMiddleware, metrics=engine.metrics)
    if server.cors_origins:
        # Outermost: a browser's preflight is answered before anything else looks at it. Keys
        # travel in the Authorization header, never in cookies: no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(server.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["authorization", "content-type"],
            max_age=600,
        )
    return app
