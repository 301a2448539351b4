"""Predictions: JSON records or an uploaded file, against a model the user may use; the
Prometheus metrics of what was predicted; the warnings about the input's columns."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fastapi import UploadFile

from taxonomist.api.schemas import PredictRequest
from taxonomist.api.services.jsonable import jsonable
from taxonomist.api.services.models import model_for
from taxonomist.api.services.state import Principal, Services
from taxonomist.api.services.uploads import uploaded_table
from taxonomist.errors import InvalidParameterError, PayloadTooLargeError
from taxonomist.monitor.log import frame_rows, prediction_rows

MAX_RECORDS = 100_000
MAX_EXPLAIN = 100


def predict_records(
    svc: Services, user: Principal, body: PredictRequest, request: RequestContext
) -> dict[str, Any]:
    """The ``PredictResponse`` as plain JSON: the model's name and version, each record's label
    and class probabilities (and explanation when asked), ``warnings`` about the records'
    columns (missing ones are predicted as missing values, unknown ones are ignored) and the
    request id the predictions are logged under (they are in the log before this returns)."""
    records = [body.records] if isinstance(body.records, dict) else body.records
    if not records:
        raise InvalidParameterError("No records to predict: send at least one.")
    if len(records) > MAX_RECORDS:
        raise PayloadTooLargeError(
            f"{len(records)} records in one request; the limit is {MAX_RECORDS}. Split the "
            "batch, or upload a file to POST /api/v1/predict/file."
        )
    if body.explain and len(records) > MAX_EXPLAIN:
        raise InvalidParameterError(
            f"Explanations are computed for at most {MAX_EXPLAIN} records per request."
        )
    name, version, model = model_for(svc, user, body.model)
    started = time.perf_counter()
    proba = model.predict_proba(records).to_numpy()
    ms = (time.perf_counter() - started) * 1000
    warnings = model.input_warnings(records)
    classes = list(model.classes)
    best = proba.argmax(axis=1)
    labels = [jsonable(classes[i]) for i in best]
    keys = [str(c) for c in classes]
    rounded = np.round(proba.astype(np.float64), 6).tolist()
    predictions: list[dict[str, Any]] = [
        {"label": label, "probabilities": dict(zip(keys, row, strict=True))}
        for label, row in zip(labels, rounded, strict=True)
    ]
    if body.explain:
        for p, record in zip(predictions, records, strict=True):
            p["explanation"] = jsonable(model.explain(record, top=body.top))
    svc.metrics.observe_predictions(name, [str(x) for x in labels], proba)
    log_predictions(svc, user, request, name, version, records, labels, proba, classes, ms)
    return {
        "model": name,
        "version": version,
        "predictions": predictions,
        "warnings": warnings,
        "request_id": request.request_id,
    }


def predict_with_image(
    svc: Services,
    user: Principal,
    request: RequestContext,
    ref: str,
    record: str,
    image: UploadFile,
    column: str | None,
) -> dict[str, Any]:
    """:func:`predict_records` for one record (its other columns a JSON object) whose image
    column holds an uploaded file."""
    from taxonomist.embed.image import MAX_BYTES

    try:
        fields = json.loads(record or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(f"'record' is not valid JSON: {exc}.") from None
    if not isinstance(fields, dict):
        raise InvalidParameterError(
            f"'record' must be a JSON object (column -> value); got {type(fields).__name__}."
        )
    _, _, model = model_for(svc, user, ref)
    columns = model.schema.image
    if not columns:
        raise InvalidParameterError(f"Model '{ref}' has no image column: POST /predict instead.")
    column = column or columns[0]
    if column not in columns:
        raise InvalidParameterError(
            f"'{column}' is not an image column of '{ref}'; its image columns: {columns}."
        )
    data = image.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise PayloadTooLargeError(f"The image is over the {MAX_BYTES // 2**20} MiB limit.")
    body = PredictRequest(model=ref, records={**fields, column: data})
    return predict_records(svc, user, body, request)


@dataclass(frozen=True)
class RequestContext:
    """Who a prediction is logged for: the request's id and where it came from."""

    request_id: str
    source: str  # api, ui, cli, file


def log_predictions(
    svc: Services,
    user: Principal,
    request: RequestContext,
    name: str,
    version: int,
    records: Sequence[dict[str, Any]],
    labels: Sequence[Any],
    proba: Any,
    classes: Sequence[Any],
    ms: float,
) -> None:
    """Append the predictions to the log (and wait for the commit) unless it is off."""
    if svc.prediction_log is None:
        return
    svc.prediction_log.write(
        prediction_rows(
            model=name,
            version=version,
            records=records,
            labels=labels,
            proba=proba,
            classes=classes,
            latency_ms=ms,
            request_id=request.request_id,
            user_id=user.id,
            source=request.source,
        )
    )


@dataclass
class PredictedFile:
    """An uploaded file's rows with ``prediction`` and ``proba_<class>`` columns."""

    model: str
    version: int
    rows: pd.DataFrame
    warnings: list[str]


def predict_upload(
    svc: Services, user: Principal, file: UploadFile, ref: str, request: RequestContext
) -> PredictedFile:
    """Predict every row of an uploaded file (each row logged)."""
    name, version, model = model_for(svc, user, ref)
    table = uploaded_table(svc, file)
    cap = svc.settings.max_predict_rows
    if len(table) > cap:
        raise PayloadTooLargeError(
            f"The file has {len(table):,} rows; POST /predict/file takes at most {cap:,} "
            "(TAXONOMIST_MAX_PREDICT_ROWS). Split it, or predict it where the model is with "
            "`taxonomist predict MODEL FILE`.",
            details={"rows": len(table), "limit_rows": cap},
        )
    started = time.perf_counter()
    out = model.predict_frame(table)
    ms = (time.perf_counter() - started) * 1000
    proba = out[[f"proba_{c}" for c in model.classes]].to_numpy()
    svc.metrics.observe_predictions(name, [str(x) for x in out["prediction"]], proba)
    if svc.prediction_log is not None:
        svc.prediction_log.write(
            frame_rows(
                model,
                table,
                out,
                name=name,
                version=version,
                latency_ms=ms,
                request_id=request.request_id,
                user_id=user.id,
                source=request.source,
            )
        )
    return PredictedFile(name, version, out, model.input_warnings(table))


def compare_upload(svc: Services, user: Principal, file: UploadFile, ref: str) -> dict[str, Any]:
    """Working data (an uploaded file) against the model's training data: words per text and
    class counts side by side, new words, and frequent training words the file lacks."""
    from taxonomist.monitor import compare_to_training

    name, version, model = model_for(svc, user, ref)
    report = compare_to_training(model, uploaded_table(svc, file))
    return {"model": name, "version": version, **jsonable(report)}
