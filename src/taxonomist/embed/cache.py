"""A persistent cache of sentence embeddings: SQLite rows of (model, sha1(text)) -> float32.

Embedding is the slowest step of training (tens to hundreds of texts per second on CPU);
the cache makes a second training, a retraining or a tuning trial on the same texts free.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import numpy as np


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8", errors="surrogatepass")).digest()


class EmbeddingCache:
    """Thread-safe store of vectors per encoder name; opens its file lazily."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embedding (model TEXT NOT NULL, "
                "key BLOB NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, key))"
            )
            self._conn = conn
        return self._conn

    def get(self, model: str, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            conn = self._connect()
            for i in range(0, len(keys), 500):
                batch = keys[i : i + 500]
                marks = ",".join("?" * len(batch))
                rows = conn.execute(
                    f"SELECT key, vector FROM embedding WHERE model = ? AND key IN ({marks})",
                    [model, *batch],
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.size == dim:
                        found[bytes(key)] = vec
        return found

    def put(self, model: str, items: dict[bytes, np.ndarray]) -> None:
        if not items:
            return
        with self._lock:
            conn = self._connect()
            conn.executemany(
                "INSERT OR REPLACE INTO embedding (model, key, vector) VALUES (?, ?, ?)",
                [(model, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
            )
            conn.commit()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(Path(str(state["path"])))  # type: ignore[misc]
