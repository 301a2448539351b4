"""Where retrieval models live: Qdrant, in-process (Qdrant Edge) or a server (qdrant-client).

A model is a few collections (its passages, its sentences) and a metadata record; the record
is written last, so a build that fails leaves no model behind, and a rebuild switches to the
new collections in one write. Both backends pass one conformance suite
(``tests/test_retrieval_store.py``).

- :class:`EdgeStore` (default): one Qdrant Edge shard per collection under
  ``$TAXONOMIST_HOME/retrieval``; the metadata are JSON files beside them. A shard is opened
  by one process at a time: the service that serves the model.
- :class:`ServerStore`: a Qdrant server at ``TAXONOMIST_QDRANT_URL`` (or any
  ``qdrant_client.QdrantClient``, e.g. its local mode in tests); the metadata are points of
  the ``taxonomist-retrieval-models`` collection.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taxonomist.config import Settings
from taxonomist.errors import ServiceUnavailableError

DENSE, SPARSE = "dense", "bm25"
Sparse = tuple[Sequence[int], Sequence[float]]  # (indices, values)
Hit = tuple[str, float]  # (passage_id, score)
Query = tuple[str, Any, int]  # (vector name, dense vector or Sparse, limit)


class Store(ABC):
    """The operations a retrieval model needs from a vector database."""

    backend: str

    @abstractmethod
    def create(self, name: str, *, dense_size: int | None, sparse: bool) -> None: ...

    @abstractmethod
    def upsert(
        self,
        name: str,
        ids: Sequence[int],
        payloads: Sequence[dict[str, Any]],
        *,
        dense: np.ndarray | None = None,
        sparse: Sequence[Sparse] | None = None,
    ) -> None: ...

    def finish(self, name: str) -> None:
        """Called once a collection is filled (builds the HNSW graph where that is lazy)."""
        return None

    @abstractmethod
    def query(
        self, name: str, queries: Sequence[Query], *, passage_ids: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        """For each ``(using, vector, limit)``, the ``limit`` best points by the ``using``
        vector as ``(passage_id, score)``, optionally among the given passages' points only.
        The queries run as one batch."""

    @abstractmethod
    def fetch(self, name: str, passage_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The payloads of the points of the given passages."""

    @abstractmethod
    def drop(self, name: str) -> None: ...

    @abstractmethod
    def collections(self) -> list[str]: ...

    def open(self, name: str) -> None:
        """Bring a collection into memory (a no-op for a server)."""
        return None

    def close(self, name: str) -> None:
        """Release a collection's memory (a no-op for a server)."""
        return None

    def shutdown(self) -> None:
        """Close everything this store holds open."""
        return None

    @abstractmethod
    def write_meta(self, model_id: str, meta: dict[str, Any]) -> None: ...

    @abstractmethod
    def read_meta(self, model_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def all_meta(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def delete_meta(self, model_id: str) -> None: ...

    def sweep(self, older_than: float = 3600.0) -> list[str]:
        """Drop the collections no model refers to (left by a process killed mid-build) once
        they are ``older_than`` seconds old: a younger one may be a build under way."""
        return []

    def new_collection_name(self, model_id: str, part: str) -> str:
        return f"{model_id}-{part}-{uuid.uuid4().hex[:8]}"


def _points(
    api: Any,
    point: Any,
    ids: Sequence[int],
    payloads: Sequence[dict[str, Any]],
    dense: np.ndarray | None,
    sparse: Sequence[Sparse] | None,
) -> list[Any]:
    """Points of either client (``api``: the ``qdrant_edge`` or ``qdrant_client.models``
    module; they name their classes and arguments alike)."""
    points = []
    for i, point_id in enumerate(ids):
        vector: dict[str, Any] = {}
        if dense is not None:
            vector[DENSE] = dense[i].tolist()
        if sparse is not None:
            vector[SPARSE] = api.SparseVector(indices=list(sparse[i][0]), values=list(sparse[i][1]))
        points.append(point(id=int(point_id), vector=vector, payload=payloads[i]))
    return points


def _among(api: Any, passage_ids: Sequence[str] | None) -> Any:
    """A filter to the points of the given passages (None: no filter)."""
    if passage_ids is None:
        return None
    return api.Filter(
        must=[api.FieldCondition(key="passage_id", match=api.MatchAny(any=list(passage_ids)))]
    )


def open_store(settings: Settings) -> Store:
    """The server at ``settings.qdrant_url`` when set, else Qdrant Edge under the home."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        return ServerStore(QdrantClient(url=settings.qdrant_url, timeout=30))
    return EdgeStore(settings.home / "retrieval")


# -- Qdrant Edge --------------------------------------------------------------------------------
class EdgeStore(Store):
    backend = "qdrant-edge"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "collections").mkdir(parents=True, exist_ok=True)
        (self.root / "models").mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.root / "collections" / name

    def _shard(self, name: str) -> Any:
        shard = self._shards.get(name)
        if shard is None:
            self.open(name)
            shard = self._shards[name]
        return shard

    def create(self, name: str, *, dense_size: int | None, sparse: bool) -> None:
        import qdrant_edge as q

        vectors = (
            {DENSE: q.EdgeVectorParams(size=dense_size, distance=q.Distance.Cosine)}
            if dense_size
            else {}
        )
        sparse_vectors = {SPARSE: q.EdgeSparseVectorParams()} if sparse else None
        shard = q.EdgeShard.create(
            str(self._path(name)), q.EdgeConfig(vectors=vectors, sparse_vectors=sparse_vectors)
        )
        shard.update(
            q.UpdateOperation.create_field_index("passage_id", q.PayloadSchemaType.Keyword)
        )
        with self._lock:
            self._shards[name] = shard

    def upsert(
        self,
        name: str,
        ids: Sequence[int],
        payloads: Sequence[dict[str, Any]],
        *,
        dense: np.ndarray | None = None,
        sparse: Sequence[Sparse] | None = None,
    ) -> None:
        import qdrant_edge as q

        points = _points(q, q.Point, ids, payloads, dense, sparse)
        self._shard(name).update(q.UpdateOperation.upsert_points(points))

    def finish(self, name: str) -> None:
        shard = self._shard(name)
        shard.optimize()
        shard.flush()

    def query(
        self, name: str, queries: Sequence[Query], *, passage_ids: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        import qdrant_edge as q

        where = _among(q, passage_ids)
        requests, slots = [], []
        for k, (using, vector, limit) in enumerate(queries):
            if using == SPARSE:
                if not len(vector[0]):
                    continue  # no known term: nothing matches
                vector = q.SparseVector(indices=list(vector[0]), values=list(vector[1]))
            slots.append(k)
            requests.append(
                q.QueryRequest(
                    limit=limit,
                    query=q.Query.Nearest(vector, using=using),
                    with_payload=q.PayloadSelector.Include(["passage_id"]),
                    filter=where,
                )
            )
        found = self._shard(name).query_batch(q.QueryBatchRequest(requests)) if requests else []
        out: list[list[Hit]] = [[] for _ in queries]
        for slot, hits in zip(slots, found, strict=True):
            out[slot] = [(h.payload["passage_id"], float(h.score)) for h in hits]
        return out

    def fetch(self, name: str, passage_ids: Sequence[str]) -> list[dict[str, Any]]:
        import qdrant_edge as q

        where = _among(q, passage_ids)
        records, _ = self._shard(name).scroll(
            q.ScrollRequest(limit=max(len(passage_ids), 1) * 64, filter=where, with_payload=True)
        )
        return [r.payload for r in records]

    def open(self, name: str) -> None:
        import qdrant_edge as q

        with self._lock:
            if name in self._shards:
                return
            path = self._path(name)
            if not path.exists():
                raise ServiceUnavailableError(
                    f"The collection '{name}' is missing from {path.parent}: remove the model "
                    "and build it again."
                )
            self._shards[name] = q.EdgeShard.load(str(path))

    def close(self, name: str) -> None:
        with self._lock:
            shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()

    def shutdown(self) -> None:
        for name in list(self._shards):
            self.close(name)

    def drop(self, name: str) -> None:
        self.close(name)
        shutil.rmtree(self._path(name), ignore_errors=True)

    def collections(self) -> list[str]:
        return sorted(p.name for p in (self.root / "collections").iterdir() if p.is_dir())

    def sweep(self, older_than: float = 3600.0) -> list[str]:
        import time

        used = {n for meta in self.all_meta() for n in meta.get("collections", {}).values()}
        stale = [
            name
            for name in self.collections()
            if name not in used and time.time() - self._path(name).stat().st_mtime > older_than
        ]
        for name in stale:
            self.drop(name)
        return stale

    def _meta_path(self, model_id: str) -> Path:
        return self.root / "models" / f"{model_id}.json"

    def write_meta(self, model_id: str, meta: dict[str, Any]) -> None:
        path = self._meta_path(model_id)
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, path)  # atomic: readers see the old record or the new one

    def read_meta(self, model_id: str) -> dict[str, Any] | None:
        path = self._meta_path(model_id)
        return json.loads(path.read_text()) if path.exists() else None

    def all_meta(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.root / "models").glob("*.json"))]

    def delete_meta(self, model_id: str) -> None:
        self._meta_path(model_id).unlink(missing_ok=True)


# -- a Qdrant server ----------------------------------------------------------------------------
META_COLLECTION = "taxonomist-retrieval-models"
PREFIX = "taxonomist-"


class ServerStore(Store):
    backend = "qdrant-server"

    def __init__(self, client: Any) -> None:
        from qdrant_client import models

        self.client, self.m = client, models
        try:
            if not client.collection_exists(META_COLLECTION):
                client.create_collection(META_COLLECTION, vectors_config={})
        except Exception as exc:  # connection refused, wrong URL
            raise ServiceUnavailableError(
                f"Cannot reach the Qdrant server ({exc.__class__.__name__}: {exc}). Check "
                "TAXONOMIST_QDRANT_URL, or unset it to keep models in-process."
            ) from exc

    def create(self, name: str, *, dense_size: int | None, sparse: bool) -> None:
        m = self.m
        self.client.create_collection(
            PREFIX + name,
            vectors_config={DENSE: m.VectorParams(size=dense_size, distance=m.Distance.COSINE)}
            if dense_size
            else {},
            sparse_vectors_config={SPARSE: m.SparseVectorParams()} if sparse else None,
        )
        with warnings.catch_warnings():  # qdrant-client's local mode has no payload indexes
            warnings.simplefilter("ignore", UserWarning)
            self.client.create_payload_index(
                PREFIX + name, "passage_id", field_schema=m.PayloadSchemaType.KEYWORD
            )

    def upsert(
        self,
        name: str,
        ids: Sequence[int],
        payloads: Sequence[dict[str, Any]],
        *,
        dense: np.ndarray | None = None,
        sparse: Sequence[Sparse] | None = None,
    ) -> None:
        points = _points(self.m, self.m.PointStruct, ids, payloads, dense, sparse)
        self.client.upsert(PREFIX + name, points=points, wait=True)

    def query(
        self, name: str, queries: Sequence[Query], *, passage_ids: Sequence[str] | None = None
    ) -> list[list[Hit]]:
        m = self.m
        where = _among(m, passage_ids)
        requests, slots = [], []
        for k, (using, vector, limit) in enumerate(queries):
            if using == SPARSE:
                if not len(vector[0]):
                    continue
                vector = m.SparseVector(indices=list(vector[0]), values=list(vector[1]))
            slots.append(k)
            requests.append(
                m.QueryRequest(
                    query=vector,
                    using=using,
                    limit=limit,
                    filter=where,
                    with_payload=m.PayloadSelectorInclude(include=["passage_id"]),
                )
            )
        found = self.client.query_batch_points(PREFIX + name, requests) if requests else []
        out: list[list[Hit]] = [[] for _ in queries]
        for slot, response in zip(slots, found, strict=True):
            out[slot] = [(p.payload["passage_id"], float(p.score)) for p in response.points]
        return out

    def fetch(self, name: str, passage_ids: Sequence[str]) -> list[dict[str, Any]]:
        where = _among(self.m, passage_ids)
        points, _ = self.client.scroll(
            PREFIX + name,
            scroll_filter=where,
            limit=max(len(passage_ids), 1) * 64,
            with_payload=True,
        )
        return [dict(p.payload or {}) for p in points]

    def shutdown(self) -> None:
        self.client.close()

    def drop(self, name: str) -> None:
        if self.client.collection_exists(PREFIX + name):
            self.client.delete_collection(PREFIX + name)

    def collections(self) -> list[str]:
        names = [c.name for c in self.client.get_collections().collections]
        return sorted(
            n[len(PREFIX) :] for n in names if n.startswith(PREFIX) and n != META_COLLECTION
        )

    @staticmethod
    def _point_id(model_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"taxonomist-retrieval/{model_id}"))

    def write_meta(self, model_id: str, meta: dict[str, Any]) -> None:
        point = self.m.PointStruct(id=self._point_id(model_id), vector={}, payload=meta)
        self.client.upsert(META_COLLECTION, points=[point], wait=True)

    def read_meta(self, model_id: str) -> dict[str, Any] | None:
        found = self.client.retrieve(META_COLLECTION, ids=[self._point_id(model_id)])
        return dict(found[0].payload) if found else None

    def all_meta(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = None
        while True:
            points, offset = self.client.scroll(
                META_COLLECTION, limit=256, offset=offset, with_payload=True
            )
            out.extend(dict(p.payload or {}) for p in points)
            if offset is None:
                return sorted(out, key=lambda m: m.get("id", ""))

    def delete_meta(self, model_id: str) -> None:
        self.client.delete(
            META_COLLECTION, points_selector=self.m.PointIdsList(points=[self._point_id(model_id)])
        )
