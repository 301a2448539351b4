"""Monitoring: a model's prediction log, the true labels that arrive later, live quality."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from taxonomist.api.deps import ServicesDep, UserDep, VisibleModel
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import (
    FeedbackRecorded,
    FeedbackRequest,
    LiveQuality,
    PredictionsPage,
)
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


@router.post(
    "/{name}/feedback",
    response_model=FeedbackRecorded,
    summary="The true labels of logged predictions",
    description="Each item names a prediction by the `request_id` it answered with and the "
    "record's `position` in that request (0 for a single record), and gives its true label. "
    "All items are recorded or none: an unknown prediction is a 404, a label the model never "
    "saw a 422. A label given again replaces the earlier one.",
)
def feedback(
    body: FeedbackRequest, name: VisibleModel, user: UserDep, svc: ServicesDep
) -> FeedbackRecorded:
    return service.feedback(svc, user, name, body.items)


@router.post(
    "/{name}/feedback/file",
    response_model=FeedbackRecorded,
    summary="The true labels of logged predictions, from a file",
    description="A CSV/TSV/Parquet/JSON Lines file with the columns `request_id`, `label` and "
    "(optional) `position`; otherwise as POST /feedback.",
)
def feedback_file(
    name: VisibleModel,
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="request_id, position, label")],
) -> FeedbackRecorded:
    return service.feedback_file(svc, user, name, file)


@router.get(
    "/{name}/quality",
    response_model=LiveQuality,
    summary="Live quality: the logged predictions that have feedback, scored",
)
def quality(
    name: VisibleModel,
    svc: ServicesDep,
    days: Annotated[float | None, Query(gt=0, le=3650, description="Only the last N days.")] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> LiveQuality:
    return service.quality(svc, name, days=days, version=version)
