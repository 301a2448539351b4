"""The FastAPI app factory: routers under ``/api/v1``, errors, metrics, request ids, startup
and shutdown; and the factory each ``taxonomist serve --workers N`` process starts from."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from sqlalchemy.exc import IntegrityError

import taxonomist
from taxonomist.api.errors import install_error_handlers
from taxonomist.api.guard import RequestGuard
from taxonomist.api.metrics import Metrics, MetricsMiddleware
from taxonomist.api.request_ids import RequestIdMiddleware
from taxonomist.api.routers import (
    auth,
    datasets,
    jobs,
    models,
    monitor,
    predict,
    retrieval,
    system,
    users,
)
from taxonomist.api.services import RESOLVE_TTL, ModelAccess, Services
from taxonomist.api.services.monitor import PolicyLoop
from taxonomist.api.services.orphans import sweep_uploads
from taxonomist.config import Settings, get_settings
from taxonomist.data.parse_pool import ParsePool
from taxonomist.engine import JobEngine
from taxonomist.errors import TaxonomistError
from taxonomist.logs import configure_logging
from taxonomist.monitor.log import PredictionLog
from taxonomist.registry import Registry
from taxonomist.retrieval.service import RetrievalService
from taxonomist.store import Database
from taxonomist.store.accounts import ensure_admin
from taxonomist.store.files import dataset_files

logger = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


def build_services(settings: Settings, metrics: Metrics) -> Services:
    """Open and migrate the database, create the first admin, remove the upload files a
    killed service left without a row, start the job engine."""
    db = Database(settings.database)
    db.migrate()
    try:
        with db.session() as s:
            generated = ensure_admin(s, settings.admin_password)
    except IntegrityError:  # another worker of `serve --workers N` created it first
        generated = None
    if generated:
        # Printed once: the database keeps only its hash.
        print(
            f"Created user 'admin' with the one-time password: {generated}\n"
            "Log in and change it (PATCH /api/v1/users/1), or set TAXONOMIST_ADMIN_PASSWORD "
            "before the first start.",
            flush=True,
        )
    sweep_uploads(settings.datasets_dir, db)  # the files of uploads a killed service cut off
    engine = JobEngine(settings, db)
    engine.start()
    registry = Registry(settings, resolve_ttl=RESOLVE_TTL)
    parser = ParsePool.from_settings(settings)
    parser.start()
    return Services(
        settings=settings,
        db=db,
        engine=engine,
        registry=registry,
        models=ModelAccess(registry, db),
        metrics=metrics,
        retrieval=RetrievalService(settings, db),
        parser=parser,
        files=dataset_files(settings),
        prediction_log=PredictionLog(db, retention_days=settings.prediction_log_days)
        if settings.prediction_log
        else None,
    )


def create_app(settings: Settings | None = None, *, preload: Sequence[str] = ()) -> FastAPI:
    """The service. ``preload``: model references loaded at start-up, before the first
    request (a missing one is logged, not fatal)."""
    settings = settings or get_settings()
    metrics = Metrics(class_labels=settings.metrics_class_labels)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings, metrics)
        app.state.services = svc
        app.state.heavy_slots = asyncio.Semaphore(settings.heavy_requests)
        app.state.heavy_limit = settings.heavy_requests
        metrics.watch(svc.db)
        policies = PolicyLoop(svc)
        policies.start()
        for ref in preload:
            try:
                svc.registry.load(ref)
            except TaxonomistError as exc:
                logger.warning("could not preload %s: %s", ref, exc.message)
        try:
            yield
        finally:
            policies.close()
            svc.engine.close()
            if svc.prediction_log is not None:
                svc.prediction_log.close()
            svc.retrieval.close()
            svc.parser.close()
            svc.db.dispose()
            metrics.close()

    app = FastAPI(
        title="Taxonomist",
        version=taxonomist.__version__,
        description="Train, register and serve classifiers for tables of short, messy, "
        "multilingual texts. Log in with POST /api/v1/auth/login, then send "
        "'Authorization: Bearer <token>'.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    for r in (auth, users, datasets, jobs, models, predict, monitor, retrieval):
        api.include_router(r.router)
    app.include_router(api)
    app.include_router(system.router)
    app.add_middleware(RequestGuard, settings=settings)  # token and body size before routing
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)  # the outermost: its id is in every log line
    return app


def served_app() -> FastAPI:
    """The app as a ``taxonomist serve`` worker process runs it (uvicorn's factory): logging
    configured from the settings first. ``create_app`` leaves logging alone, so that tests
    (and other hosts) that build many apps keep theirs."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)
