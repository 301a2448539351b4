"""Liveness and readiness (no token needed), Prometheus metrics (the scrape token or an
admin's: RequestGuard checks it)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taxonomist.api.deps import ServicesDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import Ready
from taxonomist.connections import check_all, is_server
from taxonomist.errors import TaxonomistError

router = APIRouter(tags=["system"])
READY_TIMEOUT = 3.0  # seconds each server may take to answer a readiness probe


# The probes are async: they answer from the event loop even when heavy synchronous requests
# hold every thread of the request pool; the database ping runs on asyncio's own executor.
@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Ready,
    summary="Readiness: the database, the job engine and the servers configured are reachable",
    responses={503: {"model": Ready, "description": "Not ready: each failing part says why"}},
)
async def ready(svc: ServicesDep) -> JSONResponse:
    loop = asyncio.get_running_loop()
    database = engine = "ok"
    # The MLflow tracking server, the S3 artifact store, the Qdrant server: each when set.
    servers = tuple(p for p in ("tracking", "artifacts", "qdrant") if is_server(svc.settings, p))
    checking = loop.run_in_executor(None, check_all, svc.settings, servers, READY_TIMEOUT)
    try:
        await loop.run_in_executor(None, svc.db.ping)
    except TaxonomistError as exc:
        database = exc.message
    try:
        svc.engine.check()
    except TaxonomistError as exc:
        engine = exc.message
    parts = {s.part: "ok" if s.ok else f"{s.points_to}: {s.detail}" for s in await checking}
    ok = database == engine == "ok" and all(v == "ok" for v in parts.values())
    body = Ready(
        status="ready" if ok else "not ready", database=database, engine=engine, servers=parts
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (the scrape token TAXONOMIST_METRICS_TOKEN or an admin's)",
    response_class=Response,
    responses={401: ERROR_RESPONSES[401]},
)
def metrics(svc: ServicesDep) -> Response:
    return Response(generate_latest(svc.metrics.exposed()), media_type=CONTENT_TYPE_LATEST)
