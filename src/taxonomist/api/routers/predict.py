"""Predictions: JSON records or an uploaded file, against name, name@alias or name/version."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from taxonomist.api.deps import HeavySlot, RequestDep, ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import PredictRequest, PredictResponse
from taxonomist.api.services import predictions as service

router = APIRouter(prefix="/predict", tags=["predict"], responses=ERROR_RESPONSES)
WARNINGS_HEADER = "X-Taxonomist-Warnings"
REQUEST_ID_HEADER = "X-Request-ID"  # the id the predictions are logged under


@router.post(
    "",
    response_model=PredictResponse,
    summary="Predict one record or a list of records",
    description="Each record maps the training columns to values (null for a missing value). "
    "A training column no record has is predicted as a missing value, a column the model does "
    "not know is ignored; `warnings` says so. Returns the label and the calibrated probability "
    "of every class.",
)
def predict(body: PredictRequest, user: UserDep, svc: ServicesDep, request: RequestDep) -> Response:
    # Plain json.dumps: no second validation of every prediction through PredictResponse on
    # the hot path (the schema above still documents the answer).
    return _json(service.predict_records(svc, user, body, request), request)


@router.post(
    "/image",
    response_model=PredictResponse,
    summary="Predict one record with an uploaded image (multipart)",
    description="`image` is the file for the model's image column (`column`, default its "
    "first); `record` holds the other columns as a JSON object. A JSON request to POST "
    "/predict may instead send the image as a data: URI (`data:image/png;base64,...`).",
)
def predict_image(
    user: UserDep,
    svc: ServicesDep,
    request: RequestDep,
    image: Annotated[UploadFile, File(description="PNG, JPEG, GIF, BMP, WebP or TIFF")],
    model: Annotated[str, Form(min_length=1, max_length=200)],
    record: Annotated[str, Form(max_length=1_000_000)] = "{}",
    column: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    payload = service.predict_with_image(svc, user, request, model, record, image, column)
    return _json(payload, request)


def _json(payload: dict[str, Any], request: service.RequestContext) -> Response:
    """The predictions as JSON, with the id they are logged under."""
    return Response(
        json.dumps(payload),
        media_type="application/json",
        headers={REQUEST_ID_HEADER: request.request_id},
    )


@router.post(
    "/file",
    summary="Predict every row of an uploaded file; the rows come back with predictions",
    response_class=Response,
    dependencies=[HeavySlot],
    responses={
        200: {
            "content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
            "headers": {
                "X-Model": {"description": "name/version", "schema": {"type": "string"}},
                WARNINGS_HEADER: {
                    "description": "A JSON list of warnings about the file's columns (missing "
                    "ones predicted as missing values, unknown ones ignored), when there are any",
                    "schema": {"type": "string"},
                },
            },
        }
    },
)
def predict_file(
    user: UserDep,
    svc: ServicesDep,
    request: RequestDep,
    file: Annotated[UploadFile, File(description="CSV/TSV/Parquet/JSONL with the columns")],
    model: Annotated[str, Form(min_length=1, max_length=200)],
    output: Annotated[str, Form(pattern="^(csv|parquet)$")] = "csv",
) -> Response:
    done = service.predict_upload(svc, user, file, model, request)
    stem = Path(file.filename or "data").stem
    headers = {"X-Model": f"{done.model}/{done.version}", REQUEST_ID_HEADER: request.request_id}
    if done.warnings:
        headers[WARNINGS_HEADER] = json.dumps(done.warnings)  # ASCII: a valid header value
    if output == "parquet":
        buf = io.BytesIO()
        done.rows.to_parquet(buf, index=False)
        headers["Content-Disposition"] = attachment(f"{stem}.predictions.parquet")
        return Response(
            buf.getvalue(), media_type="application/vnd.apache.parquet", headers=headers
        )
    headers["Content-Disposition"] = attachment(f"{stem}.predictions.csv")
    csv = spreadsheet_safe(done.rows).to_csv(index=False)
    return Response(csv, media_type="text/csv", headers=headers)


def attachment(filename: str) -> str:
    """A Content-Disposition for any file name (RFC 6266 / 5987): an ASCII fallback without
    quotes or backslashes, and the exact name UTF-8 encoded ("прогноз.csv" stays itself)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (``=cmd|' /C calc'!A0``) prefixed
    with an apostrophe (OWASP's CSV injection advice); numbers are left alone."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v
            )
    return out


@router.post(
    "/compare",
    summary="Working data against the model's training data (the Analysis page)",
    dependencies=[HeavySlot],
    description="Words per text and class counts side by side (training vs this file, whose "
    "classes are predicted), words the model has never seen, and frequent training words "
    "absent from the file.",
)
def compare_file(
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="CSV/TSV/Parquet/JSONL with the columns")],
    model: Annotated[str, Form(min_length=1, max_length=200)],
) -> dict[str, Any]:
    return service.compare_upload(svc, user, file, model)
