"""The model registry: a thin object over MLflow's tracking store and model registry.

Build one per process from settings (``Registry(settings)``, or :func:`get_registry` for the
process default) and hold it: it keeps one MLflow client, one bounded cache of loaded models
and, when asked, a short-lived cache of resolved references (a service resolves ``name`` on
every prediction).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from taxonomist.config import Settings, get_settings
from taxonomist.connections import redact
from taxonomist.errors import ModelNotFoundError, ServiceUnavailableError
from taxonomist.registry.cache import LoadedModels
from taxonomist.registry.candidate import Candidate, Registration, Trial
from taxonomist.registry.refs import CHAMPION, ModelRef, check_name, parse_ref

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)
CONFIG_ARTIFACT = "train_config.json"
# MLflow's error codes for a reference that names nothing (anything else is the store failing)
NOT_THERE = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}
TABLES_ARTIFACTS = "data"


class Registry:
    """Register, resolve, load, list, alias and delete model versions."""

    def __init__(self, settings: Settings | None = None, *, resolve_ttl: float = 0.0) -> None:
        self.settings = settings or get_settings()
        self.uri = self.settings.mlflow_tracking_uri
        self.resolve_ttl = resolve_ttl
        self.loaded = LoadedModels(
            self.settings.model_cache_size, int(self.settings.model_cache_mb * 2**20)
        )
        self._client: MlflowClient | None = None
        self._refs: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    # -- MLflow -----------------------------------------------------------------------------
    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            if not self.settings.mlflow_uri:
                self.settings.home.mkdir(parents=True, exist_ok=True)
            # A tracking server that went away fails a request in seconds, not after MLflow's
            # default of seven retries with a growing back-off (minutes).
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def _experiment_id(self) -> str:
        c = self.client
        exp = c.get_experiment_by_name(self.settings.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        uri = self.settings.mlflow_uri
        if self.settings.artifacts_uri:  # the bucket every machine reads models from
            location = f"{self.settings.artifacts_uri}/mlflow"
        elif not uri or uri.startswith(("sqlite:", "file:")):
            self.settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
            location = self.settings.artifacts_dir.resolve().as_uri()
        return str(c.create_experiment(self.settings.experiment, artifact_location=location))

    # -- writing ----------------------------------------------------------------------------
    def register(
        self,
        name: str,
        candidate: Candidate,
        *,
        promote: bool = False,
        keep_champion: bool = False,
    ) -> Registration:
        """Log ``candidate`` as an MLflow run (trials as nested runs, its report folder,
        config and tables as artifacts), register it as a new version of ``name`` and move
        ``champion`` to it when it wins (first version, better score on the same protocol, or
        ``promote``). ``keep_champion``: register only; the caller decides (a retrain).
        """
        import joblib
        import mlflow
        from mlflow.entities import Metric as MlMetric
        from mlflow.entities import Param
        from mlflow.models import infer_signature

        from taxonomist.registry.pyfunc import TaxonomistPyfunc, pyfunc_output

        check_name(name)
        c = self.client
        exp = self._experiment_id()
        now = int(time.time() * 1000)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        protocol = json.dumps(candidate.protocol, sort_keys=True)
        run_name = candidate.run_name or f"{name}-train"
        with mlflow.start_run(experiment_id=exp, run_name=run_name) as run:
            run_id = run.info.run_id
            params = {**candidate.params, "validation": protocol}
            c.log_batch(
                run_id,
                metrics=[MlMetric(k, float(v), now, 0) for k, v in candidate.metrics.items()]
                + _curve_metrics(candidate.model, now),
                params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            )
            self._log_trials(exp, run_id, candidate.trials, candidate.metric)
            if candidate.report is not None:
                mlflow.log_artifacts(str(candidate.report), artifact_path="report")
            if candidate.config is not None:
                mlflow.log_dict(candidate.config, CONFIG_ARTIFACT)
            if candidate.tables:
                _log_tables(candidate.tables)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.joblib"
                joblib.dump(candidate.model, path, compress=3)
                sample = candidate.input_example
                signature = infer_signature(sample, pyfunc_output(candidate.model, sample))
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=TaxonomistPyfunc(),
                    artifacts={"model": str(path)},
                    pip_requirements=pip_requirements(),
                    signature=signature,
                )
            # Read the champion, compare, register, move the alias: one step per name, or
            # two jobs finishing together could both beat the old champion and the later
            # alias (perhaps the worse model's) would win.
            with self.champion_lock(name):
                if keep_champion and self._champion(name) is not None:
                    promoted, reason = False, "registered as a challenger; the champion stays"
                else:
                    promoted, reason = self._decide_promotion(name, candidate, protocol, promote)
                tags = {
                    **candidate.tags,
                    "primary": f"{candidate.primary:.6f}",
                    "metric": candidate.metric,
                    "protocol": protocol,
                    "promotion": reason,
                }
                # The version and its tags in one write: a process killed while it registers
                # leaves a whole version or none (a run whose model no version points to).
                version = str(mlflow.register_model(info.model_uri, name, tags=tags).version)
                if promoted:
                    c.set_registered_model_alias(name, CHAMPION, version)
            mlflow.set_tags(
                {
                    "promoted": str(promoted),
                    "promotion": reason,
                    "registered_model": f"{name}/{version}",
                }
            )
        self._forget_refs(name)
        logger.info("registered %s/%s (%s)", name, version, reason)
        return Registration(name, int(version), run_id, promoted, reason)

    def champion_lock(self, name: str, timeout: float = 600) -> FileLock:
        """The lock that makes "read the champion, compare, move the alias" of ``name`` one
        step, across the threads and processes of this home (the service's workers, the
        Dask workers, the CLI). A file lock: the kernel releases a killed holder's."""
        folder = self.settings.home / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(folder / f"champion-{name}.lock", timeout=timeout)

    def _decide_promotion(
        self, name: str, candidate: Candidate, protocol: str, promote: bool
    ) -> tuple[bool, str]:
        champ = self._champion(name)
        if promote:
            return True, "promoted on request (--promote)"
        if champ is None:
            return True, "first champion of this model"
        tags = champ.tags or {}
        if tags.get("protocol") != protocol:
            return False, (
                f"the champion (version {champ.version}) was validated differently "
                f"({tags.get('protocol')}); the scores are not comparable, so it stays. "
                "Use --promote to promote anyway."
            )
        mine, theirs = candidate.primary, float(tags.get("primary", "nan"))
        better = mine > theirs if candidate.greater_is_better else mine < theirs
        if better:
            return True, f"beats champion version {champ.version}: {mine:.4f} vs {theirs:.4f}"
        return False, (
            f"does not beat champion version {champ.version} "
            f"({mine:.4f} vs {theirs:.4f}); champion unchanged"
        )

    def _log_trials(self, exp: str, parent: str, trials: list[Trial], metric: str) -> None:
        from mlflow.entities import Metric as MlMetric
        from mlflow.entities import Param, RunStatus

        c = self.client
        now = int(time.time() * 1000)
        for t in trials:
            run = c.create_run(
                exp,
                run_name=f"trial-{t.number}",
                tags={"mlflow.parentRunId": parent, "trial_state": t.state},
            )
            metrics = [MlMetric("fold_seconds", float(t.fold_seconds), now, 0)]
            if t.score is not None:
                metrics.append(MlMetric(metric, float(t.score), now, 0))
            c.log_batch(
                run.info.run_id,
                metrics=metrics,
                params=[Param(k, str(v)) for k, v in t.params.items()],
            )
            c.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def set_alias(self, ref: str, alias: str = CHAMPION) -> dict[str, Any]:
        """Point ``alias`` at the version ``ref`` resolves to."""
        mv = self.resolve(ref)
        self.client.set_registered_model_alias(mv.name, alias, str(mv.version))
        self._forget_refs(mv.name)
        return {"name": mv.name, "version": int(mv.version), "alias": alias}

    def delete(self, ref: str) -> dict[str, Any]:
        """Delete one version (``name/version``) or a whole model (``name``)."""
        r = parse_ref(ref)
        if r.version or r.alias:
            mv = self.resolve(r)
            self.client.delete_model_version(mv.name, str(mv.version))
            deleted = {"name": mv.name, "version": int(mv.version)}
        else:
            self.resolve(r)  # a clear error when the model does not exist
            self.client.delete_registered_model(r.name)
            deleted = {"name": r.name, "version": None}
        self.unload(deleted["name"], deleted["version"])
        self._forget_refs(deleted["name"])
        return deleted

    # -- reading ----------------------------------------------------------------------------
    def _champion(self, name: str) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return None

    def resolve(self, ref: str | ModelRef, *, visible: set[str] | None = None) -> Any:
        """The MLflow ModelVersion a reference points to. ``visible``: the model names the
        caller may see (the 'not found' message names only those)."""
        from mlflow.exceptions import MlflowException

        r = parse_ref(ref)
        key = str(r)
        if self.resolve_ttl:
            hit = self._refs.get(key)
            if hit is not None and hit[1] > time.monotonic():
                return hit[0]
        c = self.client
        mv = None
        try:
            if r.version:
                mv = c.get_model_version(r.name, r.version)
            elif r.alias:
                mv = c.get_model_version_by_alias(r.name, r.alias)
            else:
                mv = self._champion(r.name)
                if mv is None:
                    versions = c.search_model_versions(f"name='{r.name}'")
                    mv = max(versions, key=lambda v: int(v.version)) if versions else None
        except MlflowException as exc:
            if exc.error_code not in NOT_THERE and not self._answers():  # the store is away
                return self._stale(key, exc)
            mv = None  # the store answers: the reference names nothing it has
        except Exception as exc:  # the tracking server's connection, its HTTP errors
            return self._stale(key, exc)
        if mv is None:
            raise self._not_found(r, visible)
        if self.resolve_ttl:
            with self._lock:
                self._refs[key] = (mv, time.monotonic() + self.resolve_ttl)
        return mv

    def _answers(self) -> bool:
        """Whether the tracking store answers now (a failed lookup: its fault, or the
        reference's?)."""
        from taxonomist.connections import check

        return check(self.settings, "tracking", timeout=3).ok

    def _stale(self, key: str, exc: Exception) -> Any:
        """What ``key`` resolved to last, while the tracking store cannot be reached (the
        models already loaded keep serving); a 503 saying so when it never resolved."""
        hit = self._refs.get(key)
        if hit is not None:
            logger.warning("tracking store unreachable, %s resolved as before: %s", key, exc)
            return hit[0]
        raise ServiceUnavailableError(
            f"The MLflow tracking store ({redact(self.uri)}) does not answer: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}. "
            "Check TAXONOMIST_MLFLOW_TRACKING_URI (taxonomist doctor)."
        ) from exc

    def exists(self, name: str) -> bool:
        """Whether a model of that name is registered (with or without versions)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            return False
        return True

    def _not_found(self, r: ModelRef, visible: set[str] | None) -> ModelNotFoundError:
        known = [m.name for m in self.client.search_registered_models()]
        if visible is not None:
            known = [n for n in known if n in visible]
        return model_not_found(str(r), known)

    def _forget_refs(self, name: str) -> None:
        with self._lock:
            for key in [k for k in self._refs if parse_ref(k).name == name]:
                self._refs.pop(key, None)

    def load(self, ref: str | ModelRef) -> Any:
        """The model behind ``ref``, from this registry's cache or downloaded and unpickled."""
        import joblib
        import mlflow

        r = parse_ref(ref)
        if r.version:  # a pinned version: no registry round trip once loaded (5-10 ms)
            hit = self.loaded.get((r.name, int(r.version)))
            if hit is not None:
                return hit
        mv = self.resolve(r)
        key = (mv.name, int(mv.version))
        hit = self.loaded.get(key)
        if hit is not None:
            return hit
        source = self.client.get_model_version_download_uri(mv.name, str(mv.version))
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=self.uri)
        model = joblib.load(next(Path(local).rglob("model.joblib")))
        info = getattr(model, "info", None)
        if isinstance(info, dict):
            info.setdefault("registry", {}).update(name=mv.name, version=int(mv.version))
        for name, version in self.loaded.put(key, model):
            logger.info("unloaded %s/%s (model cache full)", name, version)
        return model

    def loaded_models(self) -> list[tuple[str, int]]:
        """(name, version) of the models this registry holds in memory."""
        return sorted(self.loaded.keys())

    def unload(self, name: str, version: int | None = None) -> int:
        """Drop a model (one version or all) from memory; returns how many were dropped."""
        return self.loaded.pop(lambda k: k[0] == name and (version is None or k[1] == version))

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model with its versions (newest first) and aliases."""
        c = self.client
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
                    "versions": [
                        _version_dict(v, aliases.get(str(v.version), [])) for v in versions
                    ],
                }
            )
        return out

    def show(self, ref: str) -> dict[str, Any]:
        """One version's registry entry plus its run's metrics and the model's schema."""
        c = self.client
        mv = self.resolve(ref)
        rm = c.get_registered_model(mv.name)
        aliases = [a for a, v in (rm.aliases or {}).items() if str(v) == str(mv.version)]
        out = {"name": mv.name, **_version_dict(mv, aliases)}
        run = c.get_run(mv.run_id) if mv.run_id else None
        if run is not None:
            out["metrics"] = dict(run.data.metrics)
            out["params"] = dict(run.data.params)
        model = self.load(f"{mv.name}/{mv.version}")
        out["classes"] = [str(x) for x in model.classes]
        out["roles"] = model.roles()
        out["ensemble"] = model.families
        out["config"] = self.config(f"{mv.name}/{mv.version}")
        return out

    def config(self, ref: str) -> dict[str, Any] | None:
        """The training config stored with a version (``None`` for a version without one)."""
        mv = self.resolve(ref)
        if not mv.run_id:
            return None
        try:
            path = self.run_artifact(mv.run_id, CONFIG_ARTIFACT)
        except Exception:  # a version registered before configs were stored
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def table(self, ref: str, key: str) -> Any | None:
        """A DataFrame stored with a version (``train``: the rows it was trained on;
        ``reference``: the drift reference), or ``None`` for a version without it."""
        import pandas as pd

        mv = self.resolve(ref)
        if not mv.run_id:
            return None
        try:
            path = self.run_artifact(mv.run_id, f"{TABLES_ARTIFACTS}/{key}.parquet")
        except Exception:  # a version registered before tables were stored
            return None
        return pd.read_parquet(path)

    def run_artifact(self, run_id: str, path: str) -> Path:
        """A local copy of one artifact of a training run (a plot, the profile)."""
        import mlflow

        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, tracking_uri=self.uri
        )
        return Path(local)


def _log_tables(tables: dict[str, Any]) -> None:
    """Each DataFrame as ``data/{key}.parquet`` of the active run; a column of mixed
    Python types (which Arrow refuses) is stored as text."""
    import mlflow
    import pyarrow as pa

    with tempfile.TemporaryDirectory() as tmp:
        for key, frame in tables.items():
            path = Path(tmp) / f"{key}.parquet"
            try:
                frame.to_parquet(path, index=False, compression="zstd")
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                mixed = frame.select_dtypes(include="object").columns
                frame = frame.astype({c: "string" for c in mixed})
                frame.to_parquet(path, index=False, compression="zstd")
        mlflow.log_artifacts(tmp, artifact_path=TABLES_ARTIFACTS)


def model_not_found(ref: str, known: list[str]) -> ModelNotFoundError:
    """The 404 for ``ref``, naming the registered models ``known`` (those the caller may see)."""
    hint = (
        f" Registered models: {', '.join(known)}."
        if known
        else " No model is registered yet: train one with "
        "'taxonomist train DATA --target COL --name NAME'."
    )
    return ModelNotFoundError(
        f"No model version matches '{ref}'.{hint}", details={"ref": ref, "models": known}
    )


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
        "dataset_id": int(tags["dataset_id"]) if tags.get("dataset_id") else None,
    }


def pip_requirements() -> list[str]:
    """The package pins a logged or exported model names."""
    from importlib.metadata import version

    pins = []
    for pkg in ("scikit-learn", "lightgbm", "catboost", "pandas", "numpy", "scipy", "mlflow"):
        try:
            pins.append(f"{pkg}=={version(pkg)}")
        except Exception:  # not installed: the model does not need it
            continue
    return ["taxonomist", *pins]


_default: dict[str, Registry] = {}
_default_lock = threading.Lock()
_MAX_DEFAULTS = 4  # a process that switches homes (tests, notebooks) keeps the last few


def get_registry(settings: Settings | None = None) -> Registry:
    """The process's registry for these settings' tracking store and home."""
    settings = settings or get_settings()
    key = f"{settings.mlflow_tracking_uri}|{settings.home}"
    with _default_lock:
        reg = _default.pop(key, None) or Registry(settings)
        _default[key] = reg  # most recently used last
        while len(_default) > _MAX_DEFAULTS:
            _default.pop(next(iter(_default)))
    return reg


def _curve_metrics(model: Any, now: int) -> list[Any]:
    """A member trained by epochs logs its curve as MLflow metrics stepped by epoch
    (``hybrid.train_loss``, ``hybrid.valid_macro_f1``, ...): MLflow's UI plots them."""
    from mlflow.entities import Metric as MlMetric

    curves = model.training_curves() if hasattr(model, "training_curves") else {}
    return [
        MlMetric(f"{name}.{key}", float(value), now, int(record["epoch"]))
        for name, history in curves.items()
        for record in history
        for key, value in record.items()
        if key != "epoch"
    ]
