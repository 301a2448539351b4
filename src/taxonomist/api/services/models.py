"""Registered models as the service shows them: each with its owner, visible to that owner and
to admins; inspect, plots, aliases, load/unload, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select

from taxonomist.api.schemas import LoadedModel
from taxonomist.api.services.jsonable import jsonable
from taxonomist.api.services.state import Principal, Services
from taxonomist.errors import ModelNotFoundError, NotFoundError
from taxonomist.registry import parse_ref
from taxonomist.store import ModelOwner, User
from taxonomist.store.accounts import audit

PLOTS = {
    "confusion_matrix": "report/confusion_matrix.png",
    "per_class_f1": "report/per_class_f1.png",
    "optimization_history": "report/optimization_history.png",
    "param_importances": "report/param_importances.png",
    "reliability": "report/reliability.png",
    # A member trained by epochs (the hybrid network) only: a 404 for the others.
    "training_curve": "report/training_curve.png",
}


def _owners(svc: Services) -> dict[str, int]:
    return {name: owner for name, (owner, _) in _owner_names(svc).items()}


def _owner_names(svc: Services) -> dict[str, tuple[int, str]]:
    """Model name -> (owner's id, owner's username)."""
    with svc.db.session() as s:
        rows = s.execute(
            select(ModelOwner.name, ModelOwner.owner_id, User.username).join(
                User, User.id == ModelOwner.owner_id
            )
        )
        return {name: (owner_id, username) for name, owner_id, username in rows}


def visible_model(svc: Services, user: Principal, name: str) -> str:
    """``name`` when the user may reach that model; a 404 otherwise (no leak)."""
    svc.models.check_access(user, name)
    return name


def model_for(svc: Services, user: Principal, ref: str) -> tuple[str, int, Any]:
    """The loaded model behind ``ref`` (name, name@alias or name/version) the user may use:
    its name, version and the model."""
    svc.models.check_access(user, parse_ref(ref).name)
    name, version = svc.models.resolve(ref)
    return name, version, svc.models.get(name, version)


def list_visible(svc: Services, user: Principal) -> list[dict[str, Any]]:
    """The models and versions the user may see, each with its owner (id and username)."""
    owners = _owner_names(svc)
    out = []
    for m in svc.registry.list_models():
        owner_id, owner = owners.get(m["name"], (None, None))
        if user.is_admin or owner_id == user.id:
            out.append({**m, "owner_id": owner_id, "owner": owner})
    return out


def model_detail(svc: Services, user: Principal, name: str) -> dict[str, Any]:
    for m in list_visible(svc, user):
        if m["name"] == name:
            return m
    raise ModelNotFoundError(f"No model named '{name}'.")


def loaded_models(svc: Services, user: Principal) -> list[LoadedModel]:
    """The versions held in memory, of the models the user may see."""
    owners = _owners(svc)
    return [
        LoadedModel(name=n, version=v)
        for n, v in svc.registry.loaded_models()
        if user.is_admin or owners.get(n) == user.id
    ]


def version_detail(svc: Services, name: str, version: int) -> dict[str, Any]:
    """One version: what the registry shows, links to its plots, the training data's profile
    and the per-class evaluation (None for a run that lacks them)."""
    out = svc.registry.show(f"{name}/{version}")
    if out.get("config"):
        out["config"].pop("data", None)  # the server's path to its copy of the data
    out["plots"] = {k: f"/api/v1/models/{name}/versions/{version}/plots/{k}" for k in PLOTS}
    for key, artifact in (("profile", "profile.json"), ("evaluation", "metrics.json")):
        try:
            path = svc.registry.run_artifact(out["run_id"], f"report/{artifact}")
            out[key] = jsonable(json.loads(path.read_text()))  # NaN scores become null
        except Exception:  # an old run without it: the rest is still useful
            out[key] = None
    return out


def plot_file(svc: Services, name: str, version: int, plot: str) -> Path:
    """The PNG of one of :data:`PLOTS`; a 404 when the run has none."""
    mv = svc.registry.resolve(f"{name}/{version}")
    try:
        return Path(svc.registry.run_artifact(mv.run_id, PLOTS[plot]))
    except Exception as exc:
        raise NotFoundError(f"Version {version} of '{name}' has no {plot} plot.") from exc


def set_alias(
    svc: Services, user: Principal, name: str, version: int, alias: str
) -> dict[str, Any]:
    out = svc.registry.set_alias(f"{name}/{version}", alias)
    with svc.db.session() as s:
        audit(s, user.id, "set_alias", "model", name, out)
    svc.models.forget(name)
    return out


def _ref(name: str, version: int | None, alias: str | None) -> str:
    if version is not None:
        return f"{name}/{version}"
    return f"{name}@{alias}" if alias else name


def load(svc: Services, name: str, version: int | None, alias: str | None) -> LoadedModel:
    """Load one version (by number, alias, or the champion) into memory."""
    resolved, v = svc.models.resolve(_ref(name, version, alias))
    svc.models.get(resolved, v)
    return LoadedModel(name=resolved, version=v)


def unload(svc: Services, name: str, version: int | None) -> dict[str, Any]:
    return {"name": name, "unloaded": svc.registry.unload(name, version)}


def delete_version(svc: Services, user: Principal, name: str, version: int) -> dict[str, Any]:
    out = svc.registry.delete(f"{name}/{version}")
    with svc.db.session() as s:
        audit(s, user.id, "delete_model_version", "model", name, out)
    svc.models.forget(name)
    return out


def delete_model(svc: Services, user: Principal, name: str) -> dict[str, Any]:
    """Delete every version and free the name."""
    out = svc.registry.delete(name)
    with svc.db.session() as s:
        s.execute(sql_delete(ModelOwner).where(ModelOwner.name == name))
        audit(s, user.id, "delete_model", "model", name)
    svc.models.forget(name)
    return out


def delete_all(svc: Services, admin: Principal) -> dict[str, Any]:
    """Delete every registered model (an admin's call)."""
    names = [m["name"] for m in svc.registry.list_models()]
    for name in names:
        svc.registry.delete(name)
    with svc.db.session() as s:
        s.execute(sql_delete(ModelOwner))
        audit(s, admin.id, "delete_all_models", "model", None, {"names": names})
    svc.models.forget()
    return {"deleted": names}
