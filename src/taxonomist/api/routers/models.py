"""Registered models: list, inspect, plots, aliases, load/unload, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from sqlalchemy import delete as sql_delete
from sqlalchemy import select

from taxonomist import registry
from taxonomist.api.deps import AdminDep, ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import AliasRequest, LoadedModel, ModelOut
from taxonomist.api.services import Principal, Services
from taxonomist.api.uploads import jsonable
from taxonomist.errors import ModelNotFoundError, NotFoundError
from taxonomist.store import ModelOwner
from taxonomist.store.accounts import audit

router = APIRouter(prefix="/models", tags=["models"], responses=ERROR_RESPONSES)
NAME = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="Registered model name")
ALIAS = Path(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
PLOTS = {
    "confusion_matrix": "report/confusion_matrix.png",
    "per_class_f1": "report/per_class_f1.png",
    "optimization_history": "report/optimization_history.png",
    "param_importances": "report/param_importances.png",
}


def _owners(svc: Services) -> dict[str, int]:
    with svc.db.session() as s:
        return {o.name: o.owner_id for o in s.scalars(select(ModelOwner))}


def _visible_models(svc: Services, user: Principal) -> list[dict[str, Any]]:
    owners = _owners(svc)
    return [
        {**m, "owner_id": owners.get(m["name"])}
        for m in registry.list_models(svc.settings)
        if user.is_admin or owners.get(m["name"]) == user.id
    ]


def _ref(name: str, version: int | None, alias: str | None) -> str:
    if version is not None:
        return f"{name}/{version}"
    return f"{name}@{alias}" if alias else name


@router.get("", response_model=list[ModelOut], summary="Models and versions you can see")
def list_models(user: UserDep, svc: ServicesDep) -> list[dict[str, Any]]:
    return _visible_models(svc, user)


@router.get("/loaded", response_model=list[LoadedModel], summary="Models held in memory")
def loaded(user: UserDep, svc: ServicesDep) -> list[LoadedModel]:
    owners = _owners(svc)
    return [
        LoadedModel(name=n, version=v)
        for n, v in registry.loaded_models()
        if user.is_admin or owners.get(n) == user.id
    ]


@router.delete("", summary="Delete every registered model (admin)")
def delete_all(admin: AdminDep, svc: ServicesDep) -> dict[str, Any]:
    names = [m["name"] for m in registry.list_models(svc.settings)]
    for name in names:
        registry.delete(name, svc.settings)
    with svc.db.session() as s:
        s.execute(sql_delete(ModelOwner))
        audit(s, admin.id, "delete_all_models", "model", None, {"names": names})
    svc.models.forget()
    return {"deleted": names}


@router.get("/{name}", response_model=ModelOut, summary="One model and its versions")
def get_model(user: UserDep, svc: ServicesDep, name: str = NAME) -> dict[str, Any]:
    svc.models.check_access(user, name)
    for m in _visible_models(svc, user):
        if m["name"] == name:
            return m
    raise ModelNotFoundError(f"No model named '{name}'.")


@router.get(
    "/{name}/versions/{version}",
    summary="One version: schema, classes, metrics, the per-class report (evaluation), plots "
    "and the training data's profile",
)
def get_version(
    user: UserDep, svc: ServicesDep, name: str = NAME, version: int = Path(ge=1)
) -> dict[str, Any]:
    svc.models.check_access(user, name)
    out = registry.show_model(f"{name}/{version}", svc.settings)
    out["plots"] = {k: f"/api/v1/models/{name}/versions/{version}/plots/{k}" for k in PLOTS}
    for key, artifact in (("profile", "profile.json"), ("evaluation", "metrics.json")):
        try:
            path = registry.run_artifact(out["run_id"], f"report/{artifact}", svc.settings)
            out[key] = jsonable(json.loads(path.read_text()))  # NaN scores become null
        except Exception:  # an old run without it: the rest is still useful
            out[key] = None
    return out


@router.get(
    "/{name}/versions/{version}/plots/{plot}",
    response_class=FileResponse,
    summary="A training plot (PNG)",
    responses={200: {"content": {"image/png": {}}}},
)
def get_plot(
    user: UserDep,
    svc: ServicesDep,
    name: str = NAME,
    version: int = Path(ge=1),
    plot: str = Path(pattern="^(" + "|".join(PLOTS) + ")$"),
) -> FileResponse:
    svc.models.check_access(user, name)
    mv = registry.resolve(f"{name}/{version}", svc.settings)
    try:
        path = registry.run_artifact(mv.run_id, PLOTS[plot], svc.settings)
    except Exception as exc:
        raise NotFoundError(f"Version {version} of '{name}' has no {plot} plot.") from exc
    return FileResponse(path, media_type="image/png")


@router.put("/{name}/aliases/{alias}", summary="Point an alias (e.g. champion) at a version")
def set_alias(
    body: AliasRequest, user: UserDep, svc: ServicesDep, name: str = NAME, alias: str = ALIAS
) -> dict[str, Any]:
    svc.models.check_access(user, name)
    out = registry.set_alias(f"{name}/{body.version}", alias, svc.settings)
    with svc.db.session() as s:
        audit(s, user.id, "set_alias", "model", name, out)
    svc.models.forget(name)
    return out


@router.post("/{name}/load", response_model=LoadedModel, summary="Load a version into memory")
def load(
    user: UserDep,
    svc: ServicesDep,
    name: str = NAME,
    version: Annotated[int | None, Query(ge=1)] = None,
    alias: Annotated[str | None, Query(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")] = None,
) -> LoadedModel:
    svc.models.check_access(user, name)
    resolved, v = svc.models.resolve(_ref(name, version, alias))
    svc.models.get(resolved, v)
    return LoadedModel(name=resolved, version=v)


@router.post("/{name}/unload", summary="Drop a model (all versions, or one) from memory")
def unload(
    user: UserDep,
    svc: ServicesDep,
    name: str = NAME,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    svc.models.check_access(user, name)
    return {"name": name, "unloaded": registry.unload(name, version)}


@router.delete("/{name}/versions/{version}", summary="Delete one version")
def delete_version(
    user: UserDep, svc: ServicesDep, name: str = NAME, version: int = Path(ge=1)
) -> dict[str, Any]:
    svc.models.check_access(user, name)
    out = registry.delete(f"{name}/{version}", svc.settings)
    with svc.db.session() as s:
        audit(s, user.id, "delete_model_version", "model", name, out)
    svc.models.forget(name)
    return out


@router.delete("/{name}", summary="Delete a model and all its versions")
def delete_model(user: UserDep, svc: ServicesDep, name: str = NAME) -> dict[str, Any]:
    svc.models.check_access(user, name)
    out = registry.delete(name, svc.settings)
    with svc.db.session() as s:
        s.execute(sql_delete(ModelOwner).where(ModelOwner.name == name))
        audit(s, user.id, "delete_model", "model", name)
    svc.models.forget(name)
    return out
