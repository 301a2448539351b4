"""Upload, inspect, re-role, download and delete datasets."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from taxonomist.api.deps import ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import DatasetDetail, DatasetOut, DatasetUpdate, DatasetUploaded
from taxonomist.api.services import Principal
from taxonomist.api.uploads import jsonable, refuse_declared_oversize, save_upload
from taxonomist.data import infer_column_roles, load_table, profile_table, validate_training_table
from taxonomist.errors import (
    ColumnNotFoundError,
    ConflictError,
    InvalidParameterError,
    NotFoundError,
)
from taxonomist.store import Dataset, Job, JobState
from taxonomist.store.accounts import audit

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERROR_RESPONSES)


def _describe(
    path: Path, target: str | None, roles: Mapping[str, str] | None
) -> tuple[int, int, dict[str, str], dict[str, Any], dict[str, Any]]:
    """Load, infer roles, validate (for training when a target is given) and profile."""
    df = load_table(path)
    schema = infer_column_roles(df, target, dict(roles) if roles else None)
    n_rows, n_columns = len(df), len(df.columns)
    if target:
        df, schema, report = validate_training_table(df, schema)
        report_dict = report.to_dict()
    else:
        report_dict = {
            "n_rows": n_rows,
            "n_rows_used": n_rows,
            "n_classes": None,
            "warnings": ["No target chosen yet: pick one (PATCH the dataset) before training."],
        }
    profile = profile_table(df, schema).to_dict()
    return n_rows, n_columns, schema.to_dict()["roles"], jsonable(report_dict), jsonable(profile)


def visible_dataset(s: Session, user: Principal, dataset_id: int) -> Dataset:
    ds = s.get(Dataset, dataset_id)
    if ds is None or (not user.is_admin and ds.owner_id != user.id):
        raise NotFoundError(f"No dataset with id {dataset_id} is visible to you.")
    return ds


def _parse_roles(roles: str | None) -> dict[str, str] | None:
    if not roles:
        return None
    try:
        parsed = json.loads(roles)
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(
            'The roles field must be a JSON object, e.g. {"title": "text"}.'
        ) from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise InvalidParameterError("The roles field must map column names to role names.")
    return {str(k): v for k, v in parsed.items()}


def store_upload(
    request: Request,
    svc: Any,
    user: Principal,
    file: UploadFile,
    name: str | None,
    describe: Callable[[Path], dict[str, Any]],
    action: str,
) -> tuple[DatasetOut, dict[str, Any]]:
    """Stream an upload to disk, ``describe`` it (validate, profile: the dataset's fields),
    store the row; a file that fails any step is deleted: nothing half-stored."""
    limit = int(svc.settings.max_upload_mb * 1e6)
    refuse_declared_oversize(request, limit)
    path, size, sha = save_upload(file, svc.settings.datasets_dir, limit)
    try:
        fields = describe(path)
        with svc.db.session() as s:
            ds = Dataset(
                owner_id=user.id,
                name=name or Path(file.filename or "dataset").name,
                filename=Path(file.filename or path.name).name,
                path=str(path),
                size_bytes=size,
                sha256=sha,
                **fields,
            )
            s.add(ds)
            s.flush()
            audit(s, user.id, action, "dataset", str(ds.id), {"bytes": size})
            out = DatasetOut.model_validate(ds)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return out, fields


@router.post(
    "",
    response_model=DatasetUploaded,
    status_code=201,
    summary="Upload a CSV, TSV, Parquet or JSON Lines file",
    description="Multipart upload, streamed to disk. The table is validated (for training when "
    "a target is given) and profiled; a file that cannot be used is not stored.",
)
def upload(
    request: Request,
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="CSV/TSV/Parquet/JSONL, optionally .gz")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    target: Annotated[str | None, Form(max_length=200)] = None,
    roles: Annotated[
        str | None, Form(description='JSON object column -> role, e.g. {"id": "ignore"}')
    ] = None,
) -> DatasetUploaded:
    overrides = _parse_roles(roles)

    def describe(path: Path) -> dict[str, Any]:
        n_rows, n_columns, inferred, report, profile = _describe(path, target or None, overrides)
        return {
            "n_rows": n_rows,
            "n_columns": n_columns,
            "target": target or None,
            "roles": inferred,
            "report": report,
            "profile": profile,
        }

    out, fields = store_upload(request, svc, user, file, name, describe, "upload_dataset")
    report = fields["report"]
    return DatasetUploaded(
        dataset=out, report=report, roles=fields["roles"], warnings=report.get("warnings", [])
    )


@router.get(
    "",
    response_model=list[DatasetOut],
    summary="Tables you can see (QA datasets: GET /retrieval/datasets)",
)
def list_datasets(user: UserDep, svc: ServicesDep) -> list[DatasetOut]:
    return visible_datasets(svc, user, "table")


def visible_datasets(svc: Any, user: Principal, kind: str) -> list[DatasetOut]:
    """The datasets of one kind (table, qa) the user may see, oldest first."""
    with svc.db.session() as s:
        q = select(Dataset).where(Dataset.kind == kind).order_by(Dataset.id)
        if not user.is_admin:
            q = q.where(Dataset.owner_id == user.id)
        return [DatasetOut.model_validate(d) for d in s.scalars(q)]


@router.get(
    "/{dataset_id}",
    response_model=DatasetDetail,
    summary="One dataset with its validation report and profile (EDA data)",
)
def get_dataset(dataset_id: int, user: UserDep, svc: ServicesDep) -> DatasetDetail:
    with svc.db.session() as s:
        return DatasetDetail.model_validate(visible_dataset(s, user, dataset_id))


@router.patch(
    "/{dataset_id}",
    response_model=DatasetUploaded,
    summary="Choose the target, change column roles or rename; validates again",
)
def update_dataset(
    dataset_id: int, body: DatasetUpdate, user: UserDep, svc: ServicesDep
) -> DatasetUploaded:
    with svc.db.session() as s:
        ds = visible_dataset(s, user, dataset_id)
        if ds.kind == "qa" and (body.target is not None or body.roles is not None):
            raise InvalidParameterError(
                f"Dataset {dataset_id} is a question-answer dataset: it has no target or roles "
                "to choose. Build a retrieval model on it (POST /api/v1/retrieval/models)."
            )
        path, target, roles, report = Path(ds.path), ds.target, None, ds.report
        inferred, columns = dict(ds.roles), list(ds.roles)
    unknown = sorted(set(body.descriptions or {}) - set(columns))
    if unknown:
        raise ColumnNotFoundError(
            f"Descriptions name columns the dataset does not have: {', '.join(unknown)}. "
            f"Its columns: {', '.join(columns)}.",
            details={"unknown": unknown, "columns": columns},
        )
    if body.target is not None:
        target = body.target or None
    if body.roles is not None:
        roles = {c: r for c, r in body.roles.items() if r != "target"}
    profile = None
    if body.target is not None or body.roles is not None:  # the table is validated again
        _, _, inferred, report, profile = _describe(path, target, roles)
    with svc.db.session() as s:
        ds = visible_dataset(s, user, dataset_id)
        ds.target, ds.roles, ds.report = target, inferred, report
        if profile is not None:
            ds.profile = profile
        if body.name:
            ds.name = body.name
        if body.descriptions is not None:
            ds.descriptions = {**(ds.descriptions or {}), **body.descriptions}
        audit(s, user.id, "update_dataset", "dataset", str(ds.id), body.model_dump())
        out = DatasetOut.model_validate(ds)
    return DatasetUploaded(
        dataset=out, report=report, roles=inferred, warnings=report.get("warnings", [])
    )


@router.get(
    "/{dataset_id}/map",
    summary="A 2-D map (t-SNE of TF-IDF) of a sample of a text column, coloured by the target",
)
def text_map(
    dataset_id: int,
    user: UserDep,
    svc: ServicesDep,
    column: Annotated[str, Query(min_length=1, max_length=200)],
    sample: Annotated[int, Query(ge=10, le=3000)] = 1000,
) -> dict[str, Any]:
    from taxonomist.data.explore import text_map as compute

    with svc.db.session() as s:
        ds = visible_dataset(s, user, dataset_id)
        path, roles, target = Path(ds.path), dict(ds.roles), ds.target
    if roles.get(column) != "text":
        texts = [c for c, r in roles.items() if r == "text"]
        raise InvalidParameterError(
            f"'{column}' is not a text column of dataset {dataset_id}; its text columns: "
            f"{', '.join(texts) or 'none'}."
        )
    points = compute(load_table(path), column, target, sample=sample, seed=svc.settings.seed)
    return {"column": column, "n": len(points), "points": jsonable(points.to_dict("records"))}


@router.get(
    "/{dataset_id}/download",
    response_class=FileResponse,
    summary="The file as uploaded",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(dataset_id: int, user: UserDep, svc: ServicesDep) -> FileResponse:
    with svc.db.session() as s:
        ds = visible_dataset(s, user, dataset_id)
        path, filename = ds.path, ds.filename
    if not Path(path).exists():
        raise NotFoundError(f"The file of dataset {dataset_id} is gone from the data folder.")
    return FileResponse(path, filename=filename, media_type="application/octet-stream")


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset and its file")
def delete_dataset(dataset_id: int, user: UserDep, svc: ServicesDep) -> None:
    with svc.db.session() as s:
        ds = visible_dataset(s, user, dataset_id)
        busy = s.scalar(
            select(Job.id).where(
                Job.dataset_id == dataset_id,
                Job.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
            )
        )
        if busy is not None:
            raise ConflictError(
                f"Job {busy} is training on dataset {dataset_id}: cancel it or wait."
            )
        path = Path(ds.path)
        s.delete(ds)
        audit(s, user.id, "delete_dataset", "dataset", str(dataset_id))
    path.unlink(missing_ok=True)  # after the commit: a failed commit keeps the file
