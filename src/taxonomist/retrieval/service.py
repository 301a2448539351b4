"""Retrieval inside a long-running process: the store, the loaded models and their jobs.

The service process owns the store (a Qdrant Edge shard is opened by one process at a time),
so retrieval jobs (build, quality test, map) run here, one at a time on a worker thread, with
the same job rows, progress and cancel flag as training jobs. Who may see or change which model
is the caller's business (the API's service layer): this class knows nothing of users.

A build's job row is its model name's reservation (:meth:`RetrievalService.building`): while
the job is queued or running no other build of that name may start, and the name is free
again as soon as the row ends, however it ends (succeeded, failed, cancelled, or failed by
the next start of a service that died under it). No separate record can be left behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from taxonomist.config import Settings
from taxonomist.engine import run_here
from taxonomist.errors import ServiceUnavailableError
from taxonomist.retrieval.corpus import QADataset, load_qa
from taxonomist.retrieval.evaluate import evaluate, latency
from taxonomist.retrieval.model import (
    Guard,
    RetrievalModel,
    RetrievalParams,
    build_model,
    remove_model,
)
from taxonomist.retrieval.store import Store, open_store
from taxonomist.store import UNFINISHED, Database, Job, JobState

logger = logging.getLogger(__name__)
BUILD_KIND = "retrieval_build"


def load_dataset(path: str | Path, roles: dict[str, str]) -> QADataset:
    """A stored QA dataset, read with the column names chosen at upload."""
    by_role = {role: column for column, role in roles.items()}
    return load_qa(
        path,
        context=by_role.get("context", "context"),
        question=by_role.get("question", "question"),
        answer=by_role.get("answer"),
    )


class RetrievalService:
    def __init__(self, settings: Settings, db: Database, store: Store | None = None) -> None:
        self.settings, self.db = settings, db
        self._store = store
        self.loaded: dict[str, RetrievalModel] = {}
        self._lock = threading.RLock()
        self._naming = threading.Lock()
        self._submitted: set[int] = set()  # the jobs this process runs
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taxonomist-retrieval")

    @property
    def store(self) -> Store:
        with self._lock:  # one store per process: two would both try to open the shards
            if self._store is None:  # opened on first use: a Qdrant server may be down at start
                if self.settings.serve_workers > 1 and not self.settings.qdrant_url:
                    raise ServiceUnavailableError(
                        "Retrieval with Qdrant Edge keeps its index inside one process, and "
                        f"this server runs {self.settings.serve_workers}: set "
                        "TAXONOMIST_QDRANT_URL to a Qdrant server, or serve with --workers 1."
                    )
                self._store = open_store(self.settings)
                # A build claims its job row before it creates a collection, and the builds
                # of this process create theirs after this (under the lock): unless another
                # process is building, a collection no model refers to is a killed build's.
                swept = self._store.sweep(older_than=3600.0 if self._building_elsewhere() else 0)
                if swept:
                    logger.warning("dropped %d collections of unfinished builds", len(swept))
            return self._store

    def _building_elsewhere(self) -> bool:
        """Whether a build job is running that this process did not start."""
        with self.db.session() as s:
            running = s.scalars(
                select(Job.id).where(Job.kind == BUILD_KIND, Job.state == JobState.RUNNING.value)
            )
            return bool(set(running) - self._submitted)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for model_id in list(self.loaded):
            self.unload(model_id)
        if self._store is not None:
            self._store.shutdown()

    # -- models ------------------------------------------------------------------------------
    def meta(self, model_id: str) -> dict[str, Any] | None:
        """A stored model's metadata (with the ``info`` it was built with); None if none."""
        return self.store.read_meta(model_id)

    def models(self) -> list[dict[str, Any]]:
        """Every stored model, described (:meth:`describe`)."""
        return [self.describe(meta) for meta in self.store.all_meta()]

    def describe(self, meta: dict[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in meta.items() if k != "collections"}
        return {**public, "loaded": meta["id"] in self.loaded}

    def load(self, model_id: str) -> RetrievalModel:
        with self._lock:
            model = self.loaded.get(model_id)
            if model is None:
                model = RetrievalModel.open(self.store, model_id)
                self.loaded[model_id] = model
            return model

    def unload(self, model_id: str) -> bool:
        with self._lock:
            model = self.loaded.pop(model_id, None)
        if model is not None:
            model.close()
        return model is not None

    def remove(self, model_id: str) -> None:
        with self._lock:
            self.unload(model_id)
            remove_model(self.store, model_id)

    def remove_all(self) -> int:
        metas = self.store.all_meta()
        for meta in metas:
            self.remove(meta["id"])
        return len(metas)

    def search(self, model_id: str, question: str, k: int) -> list[dict[str, Any]]:
        return self.load(model_id).search(question, k=k)

    def benchmark(self, model_id: str, dataset: QADataset, n: int, k: int) -> dict[str, Any]:
        model = self.load(model_id)
        result = latency(
            model, dataset.questions["question"].tolist(), n=n, k=k, seed=self.settings.seed
        )
        if result["ms"]:
            counts, edges = np.histogram(result["ms"], bins=20)
            result["histogram"] = {"counts": counts.tolist(), "edges": edges.round(3).tolist()}
        return result

    # -- jobs --------------------------------------------------------------------------------
    def submit(self, job_id: int, work: Any) -> None:
        self._submitted.add(job_id)
        self._pool.submit(run_here, self.db, job_id, work, lease=self.settings.job_lease_seconds)

    def building(self, model_id: str) -> Job | None:
        """The build job that holds the name ``model_id``: one queued or running whose config
        names it (None if none). A queued job whose cancel flag is set holds nothing: it will
        never run (the worker does not claim it)."""
        with self.db.session() as s:
            jobs = s.scalars(
                select(Job)
                .where(
                    Job.kind == BUILD_KIND,
                    Job.state.in_(UNFINISHED),
                )
                .order_by(Job.id)
            ).all()
        return next(
            (
                job
                for job in jobs
                if job.config.get("name") == model_id
                and not (job.state == JobState.QUEUED.value and job.cancel_requested)
            ),
            None,
        )

    @contextmanager
    def reserving(self, model_id: str) -> Iterator[Job | None]:
        """Hold the build names while the caller decides on a build of ``model_id`` and writes
        its job row (kind ``retrieval_build``, ``config["name"]`` the name): yields the job
        building that name now (:meth:`building`). Two submissions of one name cannot both see
        it free. The lock is this process's: one service process owns the store (and the next
        one to start fails the build jobs left unfinished)."""
        with self._naming:
            yield self.building(model_id)

    def build_work(
        self,
        model_id: str,
        path: str | Path,
        roles: dict[str, str],
        params: RetrievalParams,
        info: dict[str, Any],
        replace: bool,
        guard: Guard | None = None,
    ) -> Any:
        """A build job's work; ``guard`` is :func:`build_model`'s (the caller's last word on
        the record the new model replaces)."""

        def work(progress: Any) -> dict[str, Any]:
            dataset = load_dataset(path, roles)
            with self._lock:
                was_loaded = self.unload(model_id)
            model = build_model(
                model_id,
                dataset,
                self.store,
                params,
                replace=replace,
                info=info,
                on_progress=progress,
                guard=guard,
            )
            if was_loaded:
                self.load(model_id)
            return self.describe(model.meta)

        return work

    def evaluate_work(self, model_id: str, path: str | Path, roles: dict[str, str]) -> Any:
        def work(progress: Any) -> dict[str, Any]:
            dataset = load_dataset(path, roles)
            model = self.load(model_id)
            return {"model": model_id, **evaluate(model, dataset, on_progress=progress)}

        return work

    def map_work(self, path: str | Path, roles: dict[str, str], sample: int) -> Any:
        def work(progress: Any) -> dict[str, Any]:
            import pandas as pd

            from taxonomist.features.text_map import text_map

            dataset = load_dataset(path, roles)
            progress("map", 0, 1)
            texts = pd.concat(
                [
                    pd.DataFrame({"text": dataset.passages["context"], "kind": "passage"}),
                    pd.DataFrame({"text": dataset.questions["question"], "kind": "question"}),
                ],
                ignore_index=True,
            )
            points = text_map(texts, "text", "kind", sample=sample, seed=self.settings.seed)
            progress("map", 1, 1)
            return {"n": len(points), "points": points.to_dict("records")}

        return work
