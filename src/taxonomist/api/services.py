"""What the routers share: settings, the database, the job engine, loaded models, metrics."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from taxonomist.api.metrics import Metrics
from taxonomist.config import Settings
from taxonomist.engine import JobEngine
from taxonomist.errors import ModelNotFoundError
from taxonomist.retrieval.service import RetrievalService
from taxonomist.store import Database, ModelOwner

RESOLVE_TTL = 5.0  # seconds a resolved model reference (and its owner) is reused


@dataclass(frozen=True)
class Principal:
    """The user behind a request (a snapshot, cached with the token)."""

    id: int
    username: str
    role: str
    token_id: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class TokenCache:
    """Token hash -> principal for a few seconds: a prediction should not wait on the
    database. Revoking a token, disabling a user or changing a role clears it; with several
    service processes, the others see such a change within ``ttl`` seconds."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Principal | None:
        item = self._items.get(key)
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]

    def put(self, key: str, principal: Principal, expires: float | None) -> None:
        until = time.monotonic() + self.ttl
        if expires is not None:
            until = min(until, time.monotonic() + max(expires - time.time(), 0))
        with self._lock:
            self._items[key] = (principal, until)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class ModelCache:
    """Loaded models by registry version, and model references resolved for a few seconds."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings, self.db = settings, db
        self._refs: dict[str, tuple[str, int, float]] = {}
        self._owners: dict[str, tuple[int | None, float]] = {}
        self._lock = threading.Lock()

    def resolve(self, ref: str) -> tuple[str, int]:
        hit = self._refs.get(ref)
        if hit and hit[2] > time.monotonic():
            return hit[0], hit[1]
        from taxonomist.registry import resolve

        mv = resolve(ref, self.settings)
        out = (mv.name, int(mv.version))
        with self._lock:
            self._refs[ref] = (*out, time.monotonic() + RESOLVE_TTL)
        return out

    def owner(self, name: str) -> int | None:
        hit = self._owners.get(name)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        with self.db.session() as s:
            owner = s.scalar(select(ModelOwner.owner_id).where(ModelOwner.name == name))
        with self._lock:
            self._owners[name] = (owner, time.monotonic() + RESOLVE_TTL)
        return owner

    def check_access(self, user: Principal, name: str) -> None:
        """Members reach only their own models; others' look like missing ones (no leak)."""
        if not user.is_admin and self.owner(name) != user.id:
            raise ModelNotFoundError(
                f"No model named '{name}' is visible to you. List yours with GET /api/v1/models."
            )

    def get(self, name: str, version: int) -> Any:
        from taxonomist.registry import load_model

        return load_model(f"{name}/{version}", self.settings)

    def forget(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._refs.clear()
                self._owners.clear()
                return
            for ref in [r for r, v in self._refs.items() if v[0] == name]:
                self._refs.pop(ref, None)
            self._owners.pop(name, None)


@dataclass
class Services:
    settings: Settings
    db: Database
    engine: JobEngine
    models: ModelCache
    metrics: Metrics
    retrieval: RetrievalService
    tokens: TokenCache = field(default_factory=TokenCache)
