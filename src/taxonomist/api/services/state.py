"""What every request shares: the :class:`Services` (settings, database, job engine, model
registry, retrieval models, metrics), the :class:`Principal` behind a request, the token cache,
and who owns which registered model (:class:`ModelAccess`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from taxonomist.api.metrics import Metrics
from taxonomist.config import Settings
from taxonomist.data.parse_pool import ParsePool
from taxonomist.engine import JobEngine
from taxonomist.errors import ModelNotFoundError
from taxonomist.monitor.log import PredictionLog
from taxonomist.registry import Registry
from taxonomist.retrieval.service import RetrievalService
from taxonomist.store import Database, ModelOwner
from taxonomist.store.files import FileStore

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


class LoginThrottle:
    """Backoff after failed logins, per username and per client address: after ``free``
    failures in ``window`` seconds, each further attempt must wait 2, 4, 8 ... seconds (at most
    ``cap``) after the last failure, right password or not. In memory, per process."""

    def __init__(
        self, free: int = 5, free_per_address: int = 20, window: float = 900, cap: float = 300
    ) -> None:
        self.free, self.free_per_address, self.window, self.cap = (
            free,
            free_per_address,
            window,
            cap,
        )
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, last failure)
        self._lock = threading.Lock()

    def wait_for(self, username: str, address: str) -> float:
        """Seconds the next attempt must still wait (0: go ahead)."""
        now = time.monotonic()
        waits = []
        for key, free in (
            (f"user:{username}", self.free),
            (f"addr:{address}", self.free_per_address),
        ):
            count, last = self._failures.get(key, (0, 0.0))
            if count > free and now - last < self.window:
                waits.append(min(self.cap, 2.0 ** (count - free)) - (now - last))
        return max([0.0, *waits])

    def failed(self, username: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"user:{username}", f"addr:{address}"):
                count, last = self._failures.get(key, (0, 0.0))
                self._failures[key] = (1 if now - last > self.window else count + 1, now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{username}", None)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()


class ModelAccess:
    """Who owns which registered model (cached for a few seconds), over the service's one
    :class:`Registry` (which holds the loaded models and resolves references)."""

    def __init__(self, registry: Registry, db: Database) -> None:
        self.registry, self.db = registry, db
        self._owners: dict[str, tuple[int | None, float]] = {}
        self._lock = threading.Lock()

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

    def owned_by(self, user: Principal) -> set[str]:
        """The names of the models ``user`` owns."""
        with self.db.session() as s:
            return set(s.scalars(select(ModelOwner.name).where(ModelOwner.owner_id == user.id)))

    def resolve(self, ref: str) -> tuple[str, int]:
        mv = self.registry.resolve(ref)
        return mv.name, int(mv.version)

    def get(self, name: str, version: int) -> Any:
        return self.registry.load(f"{name}/{version}")

    def forget(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._owners.clear()
            else:
                self._owners.pop(name, None)


@dataclass
class Services:
    """The heavy things, built once in the app's lifespan (``api.app.build_services``)."""

    settings: Settings
    db: Database
    engine: JobEngine
    registry: Registry
    models: ModelAccess
    metrics: Metrics
    retrieval: RetrievalService
    parser: ParsePool  # every parse of a user's file: in worker processes, memory-limited
    files: FileStore  # the uploaded datasets: home, or a bucket with home as its cache
    tokens: TokenCache = field(default_factory=TokenCache)
    logins: LoginThrottle = field(default_factory=LoginThrottle)
    prediction_log: PredictionLog | None = None  # None: TAXONOMIST_PREDICTION_LOG=off
