"""Where a command's work runs: here (:class:`LocalBackend`, over the library) or on a
Taxonomist server (:class:`RemoteBackend`, over :class:`taxonomist.client.Client`).

Both offer the same operations with the same results, so each command is written once and
picks its backend with :func:`backend_for` from ``--remote``/``--token``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from taxonomist.cli.monitor_ops import LocalMonitorOps, MonitorOps, RemoteMonitorOps
from taxonomist.errors import (
    AuthenticationError,
    InvalidParameterError,
    NotFoundError,
    TaxonomistError,
)

if TYPE_CHECKING:
    import pandas as pd

    from taxonomist.cli.output import TrainStatus
    from taxonomist.client import Client
    from taxonomist.models.config import TrainConfig
    from taxonomist.models.result import TrainResult
    from taxonomist.registry import Registry
    from taxonomist.retrieval import RetrievalParams, Store

StepProgress = Callable[[str, int, int], None]
"""Progress of a retrieval build or evaluation: ``(phase, done, total)``."""


class TrainListener(Protocol):
    """Follows a training run: :meth:`update` after each trial, :meth:`note` for a message."""

    def update(self, p: TrainStatus) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass
class TrainOutcome:
    """A registered training run: its summary (the ``train --json`` contract) and, when it
    ran here, the whole :class:`TrainResult`."""

    summary: dict[str, Any]
    result: TrainResult | None = None


@dataclass
class Predictions:
    """The input rows with ``prediction`` and ``proba_<class>`` columns, and which model made
    them (its registry entry here, the reference as given on a server)."""

    frame: pd.DataFrame
    model: Any


class Backend(MonitorOps, Protocol):
    """The operations every command runs through; ``where`` names the place in messages."""

    where: str

    def train(self, config: TrainConfig, progress: TrainListener) -> TrainOutcome: ...
    def predict_file(self, model: str, data: Path) -> Predictions: ...
    def list_models(self) -> list[dict[str, Any]]: ...
    def show_model(self, ref: str) -> dict[str, Any]: ...
    def model_config(self, ref: str) -> dict[str, Any] | None: ...
    def set_alias(self, ref: str, alias: str) -> dict[str, Any]: ...
    def delete_model(self, ref: str) -> dict[str, Any]: ...
    def retrieval_build(
        self,
        name: str,
        data: Path,
        params: RetrievalParams,
        *,
        context: str,
        question: str,
        replace: bool,
        on_progress: StepProgress,
    ) -> dict[str, Any]: ...
    def retrieval_ask(self, model_id: str, question: str, k: int) -> list[dict[str, Any]]: ...
    def retrieval_evaluate(
        self, model_id: str, data: Path, *, context: str, question: str, on_progress: StepProgress
    ) -> dict[str, Any]: ...
    def retrieval_list(self) -> list[dict[str, Any]]: ...
    def retrieval_load(self, model_id: str) -> dict[str, Any]: ...
    def retrieval_unload(self, model_id: str) -> bool: ...
    def retrieval_remove(self, model_id: str | None) -> int: ...


def backend_for(remote: str | None, token: str | None) -> Backend:
    """The server at ``remote`` (which needs ``token``), else this machine."""
    if not remote:
        return LocalBackend()
    if not token:
        raise AuthenticationError(
            "--remote needs a token: pass --token or set TAXONOMIST_TOKEN (log in to the "
            "server, then create one with POST /api/v1/auth/tokens)."
        )
    from taxonomist.client import Client

    return RemoteBackend(Client(remote, token, source="cli"), remote)


def _no_retrieval_model(model_id: str) -> NotFoundError:
    return NotFoundError(f"No retrieval model named '{model_id}'.")


class LocalBackend(LocalMonitorOps):
    """The library in this process: the registry and retrieval store of TAXONOMIST_HOME."""

    where = "this machine"

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._store: Store | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from taxonomist.registry import get_registry

            self._registry = get_registry()
        return self._registry

    @property
    def store(self) -> Store:
        if self._store is None:
            from taxonomist.config import get_settings
            from taxonomist.retrieval import open_store

            self._store = open_store(get_settings())
        return self._store

    # -- classifiers ------------------------------------------------------------------------
    def train(self, config: TrainConfig, progress: TrainListener) -> TrainOutcome:
        from taxonomist.models.train import train

        result = train(None, config, on_progress=progress.update)
        result.register(self.registry)
        return TrainOutcome(result.summary(), result)

    def predict_file(self, model: str, data: Path) -> Predictions:
        from taxonomist.data.load import load_table

        m = self.registry.load(model)
        table = load_table(data)
        if m.schema.image:  # its relative paths start from its folder, as in training
            from taxonomist.data.archive import data_folder

            m.set_image_folder(data_folder(data))
        started = time.perf_counter()
        frame = m.predict_frame(table)
        ms = (time.perf_counter() - started) * 1000
        self._log(m, table, frame, ms)
        return Predictions(frame, m.info.get("registry"))

    def _log(self, model: Any, table: pd.DataFrame, frame: pd.DataFrame, ms: float) -> None:
        """The predictions of a local run go to this home's prediction log (source cli)."""
        from taxonomist.monitor.log import PredictionLog, frame_rows, new_request_id

        settings = self.registry.settings
        if not settings.prediction_log:
            return
        registered = model.info.get("registry", {})
        db = self.database()
        log = PredictionLog(db, retention_days=settings.prediction_log_days)
        try:
            log.write(
                frame_rows(
                    model,
                    table,
                    frame,
                    name=registered.get("name", "?"),
                    version=int(registered.get("version", 0)),
                    latency_ms=ms,
                    request_id=new_request_id(),
                    user_id=None,
                    source="cli",
                )
            )
        finally:
            log.close()
            db.dispose()

    def list_models(self) -> list[dict[str, Any]]:
        return self.registry.list_models()

    def show_model(self, ref: str) -> dict[str, Any]:
        return self.registry.show(ref)

    def model_config(self, ref: str) -> dict[str, Any] | None:
        return self.registry.config(ref)

    def set_alias(self, ref: str, alias: str) -> dict[str, Any]:
        return self.registry.set_alias(ref, alias)

    def delete_model(self, ref: str) -> dict[str, Any]:
        return self.registry.delete(ref)

    # -- retrieval --------------------------------------------------------------------------
    def retrieval_build(
        self,
        name: str,
        data: Path,
        params: RetrievalParams,
        *,
        context: str,
        question: str,
        replace: bool,
        on_progress: StepProgress,
    ) -> dict[str, Any]:
        from taxonomist.retrieval import build_model, load_qa

        dataset = load_qa(data, context=context, question=question)
        model = build_model(
            name,
            dataset,
            self.store,
            params,
            replace=replace,
            on_progress=on_progress,
            info={"dataset": data.name},
        )
        meta: dict[str, Any] = model.describe()
        return meta

    def retrieval_ask(self, model_id: str, question: str, k: int) -> list[dict[str, Any]]:
        from taxonomist.retrieval import RetrievalModel

        hits: list[dict[str, Any]] = RetrievalModel.open(self.store, model_id).search(question, k=k)
        return hits

    def retrieval_evaluate(
        self, model_id: str, data: Path, *, context: str, question: str, on_progress: StepProgress
    ) -> dict[str, Any]:
        from taxonomist.retrieval import RetrievalModel, evaluate, load_qa

        dataset = load_qa(data, context=context, question=question)
        model = RetrievalModel.open(self.store, model_id)
        return evaluate(model, dataset, on_progress=on_progress)

    def retrieval_list(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if k != "collections"} for m in self.store.all_meta()]

    def retrieval_load(self, model_id: str) -> dict[str, Any]:
        # A command-line run cannot keep a model in memory after it ends: check that it opens.
        from taxonomist.retrieval import RetrievalModel

        start = time.perf_counter()
        RetrievalModel.open(self.store, model_id).close()
        return {"id": model_id, "loaded": False, "open_seconds": time.perf_counter() - start}

    def retrieval_unload(self, model_id: str) -> bool:
        if self.store.read_meta(model_id) is None:
            raise _no_retrieval_model(model_id)
        return False  # nothing of it is held once the command ends

    def retrieval_remove(self, model_id: str | None) -> int:
        from taxonomist.retrieval.model import remove_model

        ids = [m["id"] for m in self.store.all_meta()] if model_id is None else [model_id]
        n = sum(remove_model(self.store, i) for i in ids)
        if model_id is not None and not n:
            raise _no_retrieval_model(model_id)
        return n


@dataclass(frozen=True)
class JobProgress:
    """A training job's progress as the server reports it (a :class:`TrainStatus`)."""

    phase: str
    trials_done: int
    trials_pruned: int
    best_score: float | None
    best_family: str | None
    elapsed: float
    time_left: float | None

    @classmethod
    def of(cls, job: dict[str, Any]) -> JobProgress:
        p = job.get("progress") or {}
        return cls(
            phase=p.get("phase") or "search",
            trials_done=p.get("trials_done") or 0,
            trials_pruned=p.get("trials_pruned") or 0,
            best_score=p.get("best_score"),
            best_family=p.get("best_family"),
            elapsed=p.get("elapsed") or 0.0,
            time_left=p.get("time_left"),
        )


class RemoteBackend(RemoteMonitorOps):
    """A Taxonomist server through its HTTP client: files are uploaded, long work runs as a
    job on the server and is followed until it ends."""

    def __init__(self, client: Client, where: str) -> None:
        self.client = client
        self.where = where

    def _result(self, job: dict[str, Any], poll: float, on_progress: Callable[[Any], None]) -> Any:
        job = self.client.wait_job(job["id"], poll=poll, on_progress=on_progress)
        if job["state"] != "succeeded":
            raise TaxonomistError(f"Job {job['id']} {job['state']}: {job.get('error')}")
        return job["result"]

    def _follow(self, job: dict[str, Any], on_progress: StepProgress) -> dict[str, Any]:
        def show(j: dict[str, Any]) -> None:
            p = j.get("progress") or {}
            if "total" in p:
                on_progress(p.get("phase", j["state"]), p["done"], p["total"])

        result: dict[str, Any] = self._result(job, 0.5, show)
        return result

    # -- classifiers ------------------------------------------------------------------------
    def train(self, config: TrainConfig, progress: TrainListener) -> TrainOutcome:
        if config.data is None or not config.name:
            raise InvalidParameterError("Give the data file and the model name to train on.")
        # The server takes a role per column of the dataset; the target is named apart.
        roles = {c: str(r) for c, r in (config.roles or {}).items() if r != "target"} or None
        uploaded = self.client.upload_dataset(Path(config.data), target=config.target, roles=roles)
        dataset_id = uploaded["dataset"]["id"]
        options = config.model_dump(mode="json", exclude={"data", "name", "target"})
        options["roles"] = roles
        job = self.client.start_job(dataset_id, config.name, target=config.target, **options)
        progress.note(f"Job {job['id']} queued on {self.where} (dataset {dataset_id}).")
        summary = self._result(job, 1.0, lambda j: progress.update(JobProgress.of(j)))
        return TrainOutcome(summary)

    def predict_file(self, model: str, data: Path) -> Predictions:
        import io

        import pandas as pd

        content = self.client.predict_file(model, data, output="parquet")
        return Predictions(pd.read_parquet(io.BytesIO(content)), model)

    def list_models(self) -> list[dict[str, Any]]:
        return self.client.list_models()

    def show_model(self, ref: str) -> dict[str, Any]:
        from taxonomist.registry import parse_ref

        r = parse_ref(ref)
        version = r.version or _aliased_version(self.client.get_model(r.name), r.alias)
        return self.client.get_model_version(r.name, int(version))

    def model_config(self, ref: str) -> dict[str, Any] | None:
        config = self.show_model(ref).get("config")
        if config is None:
            return None
        # 'data' is where the server keeps the dataset: of no use on this machine.
        return {k: v for k, v in config.items() if k != "data"}

    def set_alias(self, ref: str, alias: str) -> dict[str, Any]:
        from taxonomist.registry import parse_ref

        r = parse_ref(ref)
        if not r.version:
            raise InvalidParameterError("Give NAME/VERSION, e.g. 'models alias apps/3'.")
        return self.client.set_alias(r.name, int(r.version), alias)

    def delete_model(self, ref: str) -> dict[str, Any]:
        return self.client.delete_model(ref)

    # -- retrieval --------------------------------------------------------------------------
    def retrieval_build(
        self,
        name: str,
        data: Path,
        params: RetrievalParams,
        *,
        context: str,
        question: str,
        replace: bool,
        on_progress: StepProgress,
    ) -> dict[str, Any]:
        up = self.client.upload_qa(data, context=context, question=question, name=data.name)
        job = self.client.build_retrieval(
            name, up["dataset"]["id"], replace=replace, **params.model_dump(mode="json")
        )
        return self._follow(job, on_progress)

    def retrieval_ask(self, model_id: str, question: str, k: int) -> list[dict[str, Any]]:
        hits: list[dict[str, Any]] = self.client.ask(model_id, question, k)["passages"]
        return hits

    def retrieval_evaluate(
        self, model_id: str, data: Path, *, context: str, question: str, on_progress: StepProgress
    ) -> dict[str, Any]:
        up = self.client.upload_qa(data, context=context, question=question, name=data.name)
        job = self.client.retrieval_evaluate(model_id, up["dataset"]["id"])
        scores = self._follow(job, on_progress)
        scores.pop("model", None)
        return scores

    def retrieval_list(self) -> list[dict[str, Any]]:
        return self.client.list_retrieval_models()

    def retrieval_load(self, model_id: str) -> dict[str, Any]:
        return self.client.load_retrieval(model_id)

    def retrieval_unload(self, model_id: str) -> bool:
        self.client.unload_retrieval(model_id)
        return True

    def retrieval_remove(self, model_id: str | None) -> int:
        if model_id is None:
            return int(self.client.remove_all_retrieval()["removed"])
        self.client.remove_retrieval(model_id)
        return 1


def _aliased_version(model: dict[str, Any], alias: str | None) -> int:
    """The version an alias names; without one the champion, else the newest."""
    versions = model["versions"]  # newest first
    for v in versions:
        if (alias or "champion") in v["aliases"]:
            return int(v["version"])
    if alias:
        from taxonomist.errors import ModelNotFoundError

        raise ModelNotFoundError(f"'{model['name']}' has no alias '{alias}'.")
    return int(versions[0]["version"])
