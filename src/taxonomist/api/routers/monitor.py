"""Monitoring: the prediction log of a model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from taxonomist.api.deps import ServicesDep, VisibleModel
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import PredictionsPage
from taxonomist.api.services import monitor as service

router = APIRouter(prefix="/monitor", tags=["monitor"], responses=ERROR_RESPONSES)


@router.get(
    "/{name}/predictions",
    response_model=PredictionsPage,
    summary="The model's logged predictions, newest first",
    description="Every prediction of the model (API, web UI, files, the CLI on this home): the "
    "record, its label and likeliest classes, the version, latency, user, time and request id. "
    "Page with `before_id` (the `next_before_id` of the previous page). Owner or admin only.",
)
def predictions(
    name: VisibleModel,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> PredictionsPage:
    return service.predictions(svc, name, limit=limit, before_id=before_id, version=version)
