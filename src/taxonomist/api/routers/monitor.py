"""Monitoring: a model's prediction log, the true labels that arrive later, live quality,
drift reports, retraining (jobs and their journal) and the policy that retrains by itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import HTMLResponse

from taxonomist.api.deps import HeavySlot, ServicesDep, UserDep, VisibleModel
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import (
    DriftReportOut,
    DriftSummary,
    FeedbackRecorded,
    FeedbackRequest,
    JobOut,
    JournalEntry,
    LiveQuality,
    PolicyOut,
    PredictionsPage,
)
from taxonomist.api.services import monitor as service
from taxonomist.monitor.policy import Policy
from taxonomist.monitor.reports import DEFAULT_WINDOW_ROWS

VersionQuery = Annotated[
    int | None, Query(ge=1, description="The version to check (default: the champion).")
]

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


@router.post(
    "/{name}/drift",
    response_model=DriftReportOut,
    dependencies=[HeavySlot],
    summary="A drift report of the logged predictions",
    description="The version's logged predictions (the newest `limit`, of the last `days` days "
    "when given) against the data it was trained on: per column PSI, Jensen-Shannon and a KS "
    "or chi-square test (Holm-corrected), per text column words per text, out-of-vocabulary "
    "rate, new and missing words and a word classifier, the predicted classes, and a "
    "classifier on sentence embeddings; a verdict (`ok`, `warning`, `drift`) with its reasons. "
    "Stored: GET /drift lists the reports. 422 when fewer than 30 predictions are logged.",
)
def drift(
    name: VisibleModel,
    user: UserDep,
    svc: ServicesDep,
    version: VersionQuery = None,
    days: Annotated[float | None, Query(gt=0, le=3650)] = None,
    limit: Annotated[int, Query(ge=30, le=1_000_000)] = DEFAULT_WINDOW_ROWS,
) -> DriftReportOut:
    return service.drift(svc, user, name, version=version, days=days, limit=limit)


@router.post(
    "/{name}/drift/file",
    response_model=DriftReportOut,
    dependencies=[HeavySlot],
    summary="A drift report of a working file",
    description="As POST /drift, for the rows of an uploaded table (CSV/TSV/Parquet/JSON "
    "Lines) with the model's feature columns; columns it lacks are reported absent.",
)
def drift_file(
    name: VisibleModel,
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="Working rows: the model's feature columns")],
    version: VersionQuery = None,
) -> DriftReportOut:
    return service.drift_file(svc, user, name, file, version)


@router.get(
    "/{name}/drift",
    response_model=list[DriftSummary],
    summary="The model's stored drift reports, newest first",
)
def drift_reports(
    name: VisibleModel, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DriftSummary]:
    return service.drift_reports(svc, name, limit)


@router.get("/{name}/drift/{report_id}", response_model=DriftReportOut, summary="One report")
def drift_report(name: VisibleModel, svc: ServicesDep, report_id: int) -> DriftReportOut:
    return service.drift_report(svc, name, report_id)


@router.get(
    "/{name}/drift/{report_id}/html",
    response_class=HTMLResponse,
    summary="One report as a self-contained HTML page",
)
def drift_html(name: VisibleModel, svc: ServicesDep, report_id: int) -> HTMLResponse:
    return HTMLResponse(service.drift_html(svc, name, report_id))


@router.post(
    "/{name}/retrain",
    response_model=JobOut,
    status_code=202,
    summary="Retrain a challenger (a job)",
    description="Trains a challenger with the champion's stored config on the champion's data "
    "plus new labelled rows: an uploaded `file` with the target column, or (without one) the "
    "logged predictions given feedback since the champion was registered. Champion and "
    "challenger are scored on the same unseen rows; the challenger is promoted only when a "
    "paired bootstrap says it is better. Follow the job at /jobs/{id}; its result is the "
    "journal entry (GET /journal).",
)
def retrain(
    name: VisibleModel,
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile | None, File(description="New labelled rows")] = None,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> JobOut:
    return service.retrain(svc, user, name, file, reason)


@router.get(
    "/{name}/journal",
    response_model=list[JournalEntry],
    summary="The monitoring journal: every retrain, newest first",
)
def journal(
    name: VisibleModel, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[JournalEntry]:
    return service.retrain_journal(svc, name, limit)


@router.get("/{name}/policy", response_model=PolicyOut, summary="The retraining policy")
def get_policy(name: VisibleModel, svc: ServicesDep) -> PolicyOut:
    return service.policy(svc, name)


@router.put(
    "/{name}/policy",
    response_model=PolicyOut,
    summary="Set the retraining policy",
    description="When the service retrains the model by itself (checked every "
    "TAXONOMIST_POLICY_INTERVAL seconds): a drift verdict, live macro-F1 below a threshold, N "
    "new labels, a schedule. Retrains learn from the feedback in the log; nothing is promoted "
    "without beating the champion. Audited.",
)
def put_policy(name: VisibleModel, user: UserDep, svc: ServicesDep, body: Policy) -> PolicyOut:
    return service.put_policy(svc, user, name, body)


@router.delete("/{name}/policy", status_code=204, summary="Remove the retraining policy")
def delete_policy(name: VisibleModel, user: UserDep, svc: ServicesDep) -> Response:
    service.remove_policy(svc, user, name)
    return Response(status_code=204)
