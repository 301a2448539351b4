"""Registered models: list, inspect, plots, aliases, load/unload, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse

from taxonomist.api.deps import AdminDep, ServicesDep, UserDep, VisibleModel
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import ALIAS_PATTERN, AliasRequest, LoadedModel, ModelOut
from taxonomist.api.services import models as service

router = APIRouter(prefix="/models", tags=["models"], responses=ERROR_RESPONSES)
Version = Annotated[int, Path(ge=1)]
Alias = Annotated[str, Path(pattern=ALIAS_PATTERN)]
Plot = Annotated[str, Path(pattern="^(" + "|".join(service.PLOTS) + ")$")]


@router.get("", response_model=list[ModelOut], summary="Models and versions you can see")
def list_models(user: UserDep, svc: ServicesDep) -> list[dict[str, Any]]:
    return service.list_visible(svc, user)


@router.get("/loaded", response_model=list[LoadedModel], summary="Models held in memory")
def loaded(user: UserDep, svc: ServicesDep) -> list[LoadedModel]:
    return service.loaded_models(svc, user)


@router.delete("", summary="Delete every registered model (admin)")
def delete_all(admin: AdminDep, svc: ServicesDep) -> dict[str, Any]:
    return service.delete_all(svc, admin)


@router.get("/{name}", response_model=ModelOut, summary="One model and its versions")
def get_model(name: VisibleModel, user: UserDep, svc: ServicesDep) -> dict[str, Any]:
    return service.model_detail(svc, user, name)


@router.get(
    "/{name}/versions/{version}",
    summary="One version: schema, classes, metrics, the per-class report (evaluation), plots "
    "and the training data's profile",
)
def get_version(name: VisibleModel, version: Version, svc: ServicesDep) -> dict[str, Any]:
    return service.version_detail(svc, name, version)


@router.get(
    "/{name}/versions/{version}/plots/{plot}",
    response_class=FileResponse,
    summary="A training plot (PNG)",
    responses={200: {"content": {"image/png": {}}}},
)
def get_plot(name: VisibleModel, version: Version, plot: Plot, svc: ServicesDep) -> FileResponse:
    return FileResponse(service.plot_file(svc, name, version, plot), media_type="image/png")


@router.put("/{name}/aliases/{alias}", summary="Point an alias (e.g. champion) at a version")
def set_alias(
    body: AliasRequest, name: VisibleModel, alias: Alias, user: UserDep, svc: ServicesDep
) -> dict[str, Any]:
    return service.set_alias(svc, user, name, body.version, alias)


@router.post("/{name}/load", response_model=LoadedModel, summary="Load a version into memory")
def load(
    name: VisibleModel,
    svc: ServicesDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    alias: Annotated[str | None, Query(pattern=ALIAS_PATTERN)] = None,
) -> LoadedModel:
    return service.load(svc, name, version, alias)


@router.post("/{name}/unload", summary="Drop a model (all versions, or one) from memory")
def unload(
    name: VisibleModel, svc: ServicesDep, version: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    return service.unload(svc, name, version)


@router.delete("/{name}/versions/{version}", summary="Delete one version")
def delete_version(
    name: VisibleModel, version: Version, user: UserDep, svc: ServicesDep
) -> dict[str, Any]:
    return service.delete_version(svc, user, name, version)


@router.delete("/{name}", summary="Delete a model and all its versions")
def delete_model(name: VisibleModel, user: UserDep, svc: ServicesDep) -> dict[str, Any]:
    return service.delete_model(svc, user, name)
