"""Predictions: JSON records or an uploaded file, against name, name@alias or name/version."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from taxonomist.api.deps import ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import PredictRequest, PredictResponse
from taxonomist.api.services import Principal, Services
from taxonomist.api.uploads import jsonable, save_upload
from taxonomist.data import load_table
from taxonomist.errors import InvalidParameterError, PayloadTooLargeError
from taxonomist.registry import parse_ref

router = APIRouter(prefix="/predict", tags=["predict"], responses=ERROR_RESPONSES)
MAX_RECORDS = 100_000
MAX_EXPLAIN = 100


def _uploaded_table(svc: Services, file: UploadFile) -> pd.DataFrame:
    """The uploaded file as a table (streamed to a temporary file, which is then removed)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = save_upload(file, Path(tmp), int(svc.settings.max_upload_mb * 1e6))
        return load_table(path)


def _model(svc: Services, user: Principal, ref: str) -> tuple[str, int, Any]:
    parsed = parse_ref(ref)
    svc.models.check_access(user, parsed.name)
    name, version = svc.models.resolve(ref)
    return name, version, svc.models.get(name, version)


@router.post(
    "",
    response_model=PredictResponse,
    summary="Predict one record or a list of records",
    description="Each record maps the training columns to values (null for a missing value; "
    "every training column must appear in at least one record). Returns the label and the "
    "calibrated probability of every class.",
)
def predict(body: PredictRequest, user: UserDep, svc: ServicesDep) -> Response:
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
    name, version, model = _model(svc, user, body.model)
    proba = model.predict_proba(records).to_numpy()
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
    svc.metrics.observe_predictions(
        name, [str(x) for x in labels], proba[np.arange(len(best)), best]
    )
    payload = {"model": name, "version": version, "predictions": predictions}
    return Response(json.dumps(payload), media_type="application/json")


@router.post(
    "/file",
    summary="Predict every row of an uploaded file; the rows come back with predictions",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def predict_file(
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="CSV/TSV/Parquet/JSONL with the columns")],
    model: Annotated[str, Form(min_length=1, max_length=200)],
    output: Annotated[str, Form(pattern="^(csv|parquet)$")] = "csv",
) -> Response:
    name, version, m = _model(svc, user, model)
    out = m.predict_frame(_uploaded_table(svc, file))
    top = out[[c for c in out.columns if c.startswith("proba_")]].to_numpy().max(axis=1)
    svc.metrics.observe_predictions(name, [str(x) for x in out["prediction"]], top)
    stem = Path(file.filename or "data").stem
    headers = {"X-Model": f"{name}/{version}"}
    if output == "parquet":
        buf = io.BytesIO()
        out.to_parquet(buf, index=False)
        headers["Content-Disposition"] = f'attachment; filename="{stem}.predictions.parquet"'
        return Response(
            buf.getvalue(), media_type="application/vnd.apache.parquet", headers=headers
        )
    headers["Content-Disposition"] = f'attachment; filename="{stem}.predictions.csv"'
    return Response(out.to_csv(index=False), media_type="text/csv", headers=headers)


@router.post(
    "/compare",
    summary="Working data against the model's training data (the Analysis page)",
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
    from taxonomist.monitor import compare_to_training

    name, version, m = _model(svc, user, model)
    report = compare_to_training(m, _uploaded_table(svc, file))
    return {"model": name, "version": version, **jsonable(report)}
