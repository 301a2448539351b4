"""Upload, inspect, re-role, download and delete datasets."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse

from taxonomist.api.deps import HeavySlot, ServicesDep, UserDep, VisibleDataset
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import DatasetDetail, DatasetOut, DatasetUpdate, DatasetUploaded
from taxonomist.api.services import datasets as service
from taxonomist.errors import InvalidParameterError

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERROR_RESPONSES)


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


@router.post(
    "",
    response_model=DatasetUploaded,
    status_code=201,
    summary="Upload a CSV, TSV, Parquet or JSON Lines file",
    description="Multipart upload, streamed to disk. The table is validated (for training when "
    "a target is given) and profiled; a file that cannot be used is not stored.",
    dependencies=[HeavySlot],
)
def upload(
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="CSV/TSV/Parquet/JSONL, optionally .gz")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    target: Annotated[str | None, Form(max_length=200)] = None,
    roles: Annotated[
        str | None, Form(description='JSON object column -> role, e.g. {"id": "ignore"}')
    ] = None,
) -> DatasetUploaded:
    return service.upload_table(svc, user, file, name, target, _parse_roles(roles))


@router.get(
    "",
    response_model=list[DatasetOut],
    summary="Tables you can see (QA datasets: GET /retrieval/datasets)",
)
def list_datasets(user: UserDep, svc: ServicesDep) -> list[DatasetOut]:
    return service.list_visible(svc, user, "table")


@router.get(
    "/{dataset_id}",
    response_model=DatasetDetail,
    summary="One dataset with its validation report and profile (EDA data)",
)
def get_dataset(ds: VisibleDataset) -> DatasetDetail:
    return DatasetDetail.model_validate(ds)


@router.patch(
    "/{dataset_id}",
    response_model=DatasetUploaded,
    summary="Choose the target, change column roles or rename; validates again",
)
def update_dataset(
    ds: VisibleDataset, body: DatasetUpdate, user: UserDep, svc: ServicesDep
) -> DatasetUploaded:
    return service.update_dataset(svc, user, ds, body)


@router.get(
    "/{dataset_id}/map",
    summary="A 2-D map (t-SNE of TF-IDF) of a sample of a text column, coloured by the target",
    dependencies=[HeavySlot],
)
def text_map(
    ds: VisibleDataset,
    svc: ServicesDep,
    column: Annotated[str, Query(min_length=1, max_length=200)],
    sample: Annotated[int, Query(ge=10, le=3000)] = 1000,
) -> dict[str, Any]:
    return service.text_map(svc, ds, column, sample)


@router.get(
    "/{dataset_id}/download",
    response_class=FileResponse,
    summary="The file as uploaded",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(ds: VisibleDataset, svc: ServicesDep) -> FileResponse:
    path = service.stored_file(svc, ds)
    return FileResponse(path, filename=ds.filename, media_type="application/octet-stream")


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset and its file")
def delete_dataset(ds: VisibleDataset, user: UserDep, svc: ServicesDep) -> None:
    service.delete_dataset(svc, user, ds)
