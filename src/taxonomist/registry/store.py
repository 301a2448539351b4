"""A thin facade over MLflow's tracking store and model registry.

Model references: ``name`` (the champion, else the latest version), ``name@alias`` or
``name/version``.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxonomist.config import Settings, get_settings
from taxonomist.errors import InvalidParameterError, ModelNotFoundError

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

    from taxonomist.models.model import TaxonomistModel
    from taxonomist.models.train import TrainResult

logger = logging.getLogger(__name__)

CHAMPION = "champion"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_lock = threading.Lock()
_loaded: dict[tuple[str, str, str], TaxonomistModel] = {}


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(ref: str) -> ModelRef:
    """``name``, ``name@alias`` or ``name/version`` -> :class:`ModelRef`."""
    ref = ref.strip()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        out = ModelRef(name, alias=alias)
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
        if not version.isdigit():
            raise InvalidParameterError(
                f"Model reference '{ref}': the version after '/' must be a number, "
                "e.g. 'apps/3'. Use 'name@alias' for an alias."
            )
        out = ModelRef(name, version=version)
    else:
        out = ModelRef(ref)
    check_name(out.name)
    return out


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidParameterError(
            f"Invalid model name '{name}': use letters, digits, '.', '_' or '-' (at most 100 "
            "characters, starting with a letter or digit)."
        )


def client(settings: Settings | None = None) -> MlflowClient:
    """An MLflow client on the configured store (a sqlite file in TAXONOMIST_HOME by default)."""
    import mlflow
    from mlflow import MlflowClient

    settings = settings or get_settings()
    if not settings.mlflow_uri:
        settings.home.mkdir(parents=True, exist_ok=True)
    uri = settings.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(c: MlflowClient, settings: Settings) -> str:
    exp = c.get_experiment_by_name(settings.experiment)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if not settings.mlflow_uri or settings.mlflow_uri.startswith(("sqlite:", "file:")):
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        location = settings.artifacts_dir.resolve().as_uri()
    return str(c.create_experiment(settings.experiment, artifact_location=location))


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    pins = []
    for pkg in ("scikit-learn", "lightgbm", "catboost", "pandas", "numpy", "scipy", "mlflow"):
        try:
            pins.append(f"{pkg}=={version(pkg)}")
        except Exception:  # not installed: the model does not need it
            continue
    return ["taxonomist", *pins]


def _champion(c: MlflowClient, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _decide_promotion(
    c: MlflowClient, name: str, result: TrainResult, promote: bool
) -> tuple[bool, str]:
    champ = _champion(c, name)
    if promote:
        return True, "promoted on request (--promote)"
    if champ is None:
        return True, "first champion of this model"
    tags = champ.tags or {}
    protocol = json.dumps(result.model.info["protocol"], sort_keys=True)
    mine = result.metrics["primary"]
    if tags.get("protocol") != protocol:
        return False, (
            f"the champion (version {champ.version}) was validated differently "
            f"({tags.get('protocol')}); the scores are not comparable, so it stays. "
            "Use --promote to promote anyway."
        )
    theirs = float(tags.get("primary", "nan"))
    greater = result.metrics["primary_metric"] != "log_loss"
    better = mine > theirs if greater else mine < theirs
    if better:
        return True, f"beats champion version {champ.version}: {mine:.4f} vs {theirs:.4f}"
    return False, (
        f"does not beat champion version {champ.version} "
        f"({mine:.4f} vs {theirs:.4f}); champion unchanged"
    )


def register_training(
    result: TrainResult,
    *,
    name: str,
    promote: bool,
    study: optuna.Study | None,
    settings: Settings | None = None,
) -> None:
    """Log the training as an MLflow run (trials as nested runs), register the model as a new
    version of ``name`` and move ``champion`` when it wins. Fills ``result``'s registry fields.
    """
    import joblib
    import mlflow
    from mlflow.entities import Metric as MlMetric
    from mlflow.entities import Param
    from mlflow.models import infer_signature

    from taxonomist.registry.pyfunc import TaxonomistPyfunc

    check_name(name)
    settings = settings or get_settings()
    c = client(settings)
    exp = experiment_id(c, settings)
    model = result.model
    now = int(time.time() * 1000)
    with mlflow.start_run(experiment_id=exp, run_name=f"{name}-train") as run:
        run_id = run.info.run_id
        params = {
            "target": model.schema.target,
            "n_rows": result.report.n_rows_used,
            "n_classes": len(model.classes),
            "metric": model.metric,
            "validation": json.dumps(model.info["protocol"], sort_keys=True),
            "ensemble": json.dumps(model.families),
            "best_family": result.best_family,
            "language": result.profile.language,
        }
        metrics = {
            k: float(v)
            for k, v in result.metrics.items()
            if isinstance(v, int | float) and v is not None and k != "n"
        }
        c.log_batch(
            run_id,
            metrics=[MlMetric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
        )
        if study is not None:
            _log_trials(c, exp, run_id, study, model.metric)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            result.artifacts = _write_artifacts(result, study, folder)
            mlflow.log_artifacts(str(folder / "report"), artifact_path="report")
            path = folder / "model.joblib"
            joblib.dump(model, path, compress=3)
            sample = _input_example(model)
            signature = infer_signature(sample, TaxonomistPyfunc_predict(model, sample))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=TaxonomistPyfunc(),
                artifacts={"model": str(path)},
                pip_requirements=_pip_requirements(),
                signature=signature,
                registered_model_name=name,
            )
        version = str(info.registered_model_version)
        result.run_id = run_id
        result.name = name
        result.version = int(version)
        primary = result.metrics["primary"]
        for key, value in {
            "primary": f"{primary:.6f}",
            "metric": model.metric,
            "protocol": json.dumps(model.info["protocol"], sort_keys=True),
            "target": str(model.schema.target),
            "best_family": result.best_family,
        }.items():
            c.set_model_version_tag(name, version, key, value)
        promoted, reason = _decide_promotion(c, name, result, promote)
        if promoted:
            c.set_registered_model_alias(name, CHAMPION, version)
        c.set_model_version_tag(name, version, "promotion", reason)
        mlflow.set_tags(
            {
                "promoted": str(promoted),
                "promotion": reason,
                "registered_model": f"{name}/{version}",
            }
        )
        result.promoted, result.promotion_reason = promoted, reason
        logger.info("registered %s/%s (%s)", name, version, reason)


def TaxonomistPyfunc_predict(model: TaxonomistModel, sample: Any) -> Any:
    out = model.predict_frame(sample)
    return out[["prediction", *[c for c in out.columns if str(c).startswith("proba_")]]]


def _input_example(model: TaxonomistModel) -> Any:
    import pandas as pd

    row: dict[str, Any] = {}
    for col in model.feature_columns:
        role = model.schema.roles[col]
        row[col] = 0.0 if str(role) == "numeric" else "example"
    return pd.DataFrame([row])


def _log_trials(c: MlflowClient, exp: str, parent: str, study: optuna.Study, metric: str) -> None:
    import optuna
    from mlflow.entities import Metric as MlMetric
    from mlflow.entities import Param, RunStatus

    now = int(time.time() * 1000)
    for t in study.trials:
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        run = c.create_run(
            exp,
            run_name=f"trial-{t.number}",
            tags={"mlflow.parentRunId": parent, "trial_state": t.state.name},
        )
        metrics = [MlMetric("fold_seconds", float(t.user_attrs.get("fold_seconds", 0.0)), now, 0)]
        if t.value is not None:
            score = -t.value if metric != "log_loss" else t.value
            metrics.append(MlMetric(metric, float(score), now, 0))
        c.log_batch(
            run.info.run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in t.params.items()]
        )
        c.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))


def _write_artifacts(
    result: TrainResult, study: optuna.Study | None, folder: Path
) -> dict[str, str]:
    from taxonomist.models import plots
    from taxonomist.models.metrics import METRICS

    report = folder / "report"
    report.mkdir()
    model = result.model
    files: dict[str, Path] = {}
    (report / "profile.json").write_text(json.dumps(result.profile.to_dict(), default=str))
    (report / "validation.json").write_text(json.dumps(result.report.to_dict(), default=str))
    (report / "metrics.json").write_text(json.dumps(result.metrics, default=str, indent=1))
    (report / "schema.json").write_text(json.dumps(model.schema.to_dict()))
    result.leaderboard.to_csv(report / "leaderboard.csv", index=False)
    classes = [str(c) for c in model.classes]
    files["confusion_matrix"] = plots.confusion_matrix_plot(
        result.metrics["confusion_matrix"], classes, report / "confusion_matrix.png"
    )
    files["per_class_f1"] = plots.per_class_f1_plot(
        result.metrics["per_class"], report / "per_class_f1.png"
    )
    if study is not None:
        files["history"] = plots.history_plot(
            study,
            model.metric,
            METRICS[model.metric].greater_is_better,
            report / "optimization_history.png",
        )
        imp = plots.param_importances(study, result.best_family)
        (report / "param_importances.json").write_text(json.dumps(imp))
        files["importances"] = plots.importance_plot(
            imp, result.best_family, report / "param_importances.png"
        )
    return {k: v.name for k, v in files.items()}


# -- reading the registry -------------------------------------------------------------------
def resolve(ref: str | ModelRef, settings: Settings | None = None) -> Any:
    """The MLflow ModelVersion a reference points to."""
    from mlflow.exceptions import MlflowException

    r = parse_ref(ref) if isinstance(ref, str) else ref
    c = client(settings)
    try:
        if r.version:
            return c.get_model_version(r.name, r.version)
        if r.alias:
            return c.get_model_version_by_alias(r.name, r.alias)
        champ = _champion(c, r.name)
        if champ is not None:
            return champ
        versions = c.search_model_versions(f"name='{r.name}'")
        if versions:
            return max(versions, key=lambda v: int(v.version))
    except MlflowException:
        pass
    known = [m.name for m in c.search_registered_models()]
    hint = (
        f" Registered models: {', '.join(known)}."
        if known
        else " No model is registered yet: train one with "
        "'taxonomist train DATA --target COL --name NAME'."
    )
    raise ModelNotFoundError(
        f"No model version matches '{r}'.{hint}", details={"ref": str(r), "models": known}
    )


def load_model(ref: str, settings: Settings | None = None) -> TaxonomistModel:
    """Load (and cache in this process) the TaxonomistModel behind ``ref``."""
    import joblib
    import mlflow

    settings = settings or get_settings()
    r = parse_ref(ref)
    if r.version:  # a pinned version: no registry round trip once loaded (5-10 ms)
        with _lock:
            hit = _loaded.get((settings.mlflow_tracking_uri, r.name, r.version))
        if hit is not None:
            return hit
    mv = resolve(r, settings)
    key = (settings.mlflow_tracking_uri, mv.name, str(mv.version))
    with _lock:
        if key in _loaded:
            return _loaded[key]
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{mv.name}/{mv.version}", tracking_uri=settings.mlflow_tracking_uri
    )
    path = next(Path(local).rglob("model.joblib"))
    model = joblib.load(path)
    model.info.setdefault("registry", {}).update(name=mv.name, version=int(mv.version))
    with _lock:
        _loaded[key] = model
    return model


def _version_dict(mv: Any, aliases: list[str]) -> dict[str, Any]:
    tags = mv.tags or {}
    return {
        "version": int(mv.version),
        "aliases": aliases,
        "run_id": mv.run_id,
        "created": mv.creation_timestamp,
        "metric": tags.get("metric"),
        "primary": float(tags["primary"]) if "primary" in tags else None,
        "target": tags.get("target"),
        "best_family": tags.get("best_family"),
        "promotion": tags.get("promotion"),
    }


def list_models(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every registered model with its versions (newest first) and aliases."""
    c = client(settings)
    out = []
    for rm in c.search_registered_models():
        aliases: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        versions = sorted(
            c.search_model_versions(f"name='{rm.name}'"), key=lambda v: -int(v.version)
        )
        out.append(
            {
                "name": rm.name,
                "versions": [_version_dict(v, aliases.get(str(v.version), [])) for v in versions],
            }
        )
    return out


def show_model(ref: str, settings: Settings | None = None) -> dict[str, Any]:
    """One version's registry entry plus its run's metrics and the model's schema."""
    c = client(settings)
    mv = resolve(ref, settings)
    rm = c.get_registered_model(mv.name)
    aliases = [a for a, v in (rm.aliases or {}).items() if str(v) == str(mv.version)]
    out = {"name": mv.name, **_version_dict(mv, aliases)}
    run = c.get_run(mv.run_id) if mv.run_id else None
    if run is not None:
        out["metrics"] = dict(run.data.metrics)
        out["params"] = dict(run.data.params)
    model = load_model(f"{mv.name}/{mv.version}", settings)
    out["classes"] = [str(x) for x in model.classes]
    out["roles"] = model.roles()
    out["ensemble"] = model.families
    return out


def set_alias(ref: str, alias: str = CHAMPION, settings: Settings | None = None) -> dict:
    """Point ``alias`` at the version ``ref`` resolves to."""
    c = client(settings)
    mv = resolve(ref, settings)
    c.set_registered_model_alias(mv.name, alias, str(mv.version))
    return {"name": mv.name, "version": int(mv.version), "alias": alias}


def delete(ref: str, settings: Settings | None = None) -> dict[str, Any]:
    """Delete one version (``name/version``) or a whole model (``name``)."""
    c = client(settings)
    r = parse_ref(ref)
    if r.version or r.alias:
        mv = resolve(r, settings)
        c.delete_model_version(mv.name, str(mv.version))
        deleted = {"name": mv.name, "version": int(mv.version)}
    else:
        resolve(r, settings)  # raises a clear error when the model does not exist
        c.delete_registered_model(r.name)
        deleted = {"name": r.name, "version": None}
    with _lock:
        for key in [k for k in _loaded if k[1] == deleted["name"]]:
            _loaded.pop(key, None)
    return deleted


def loaded_models() -> list[tuple[str, int]]:
    """(name, version) of the models held in this process's memory."""
    with _lock:
        return sorted({(k[1], int(k[2])) for k in _loaded})


def unload(name: str, version: int | None = None) -> int:
    """Drop a model (one version or all) from memory; returns how many were dropped."""
    with _lock:
        keys = [k for k in _loaded if k[1] == name and (version is None or k[2] == str(version))]
        for key in keys:
            _loaded.pop(key, None)
    return len(keys)


def run_artifact(run_id: str, path: str, settings: Settings | None = None) -> Path:
    """A local copy of one artifact of a training run (a plot, the profile)."""
    import mlflow

    settings = settings or get_settings()
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=path, tracking_uri=settings.mlflow_tracking_uri
    )
    return Path(local)
