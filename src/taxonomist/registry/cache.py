"""The loaded models a process holds: least recently used first out, bounded by count and by
bytes.

The byte size of a model is estimated once, when it is loaded, by walking its object graph and
adding up the buffers of numpy arrays and scipy sparse matrices (what a fitted model's memory
is made of); Python objects around them are small next to weight matrices and vocabularies.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

ModelKey = tuple[str, int]  # (registered name, version)


def estimate_bytes(obj: Any) -> int:
    """Approximate memory held by ``obj``: its numpy buffers plus its strings and containers."""
    import numpy as np

    seen: set[int] = set()
    stack = [obj]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            total += item.nbytes
            if item.dtype == object:
                stack.extend(item.ravel().tolist())
            continue
        if isinstance(item, str | bytes):
            total += sys.getsizeof(item)
            continue
        if isinstance(item, int | float | bool):
            continue
        if isinstance(item, dict):
            total += sys.getsizeof(item)
            stack.extend(item.keys())
            stack.extend(item.values())
            continue
        if isinstance(item, list | tuple | set | frozenset):
            total += sys.getsizeof(item)
            stack.extend(item)
            continue
        state = getattr(item, "__dict__", None)
        if state is not None:
            stack.append(state)
        slots = getattr(type(item), "__slots__", ())
        stack.extend(getattr(item, s, None) for s in slots if isinstance(s, str))
    return total


class LoadedModels:
    """A thread-safe LRU map ``key -> model`` holding at most ``max_models`` models and about
    ``max_bytes`` bytes. The model just added is always kept, even when it alone is larger."""

    def __init__(self, max_models: int, max_bytes: int) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1; got {max_models}")
        self.max_models, self.max_bytes = max_models, max_bytes
        self._items: OrderedDict[ModelKey, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: ModelKey) -> Any | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: ModelKey, model: Any, size: int | None = None) -> list[ModelKey]:
        """Add ``model``; returns the keys evicted to make room."""
        size = estimate_bytes(model) if size is None else size
        evicted: list[ModelKey] = []
        with self._lock:
            self._items[key] = (model, size)
            self._items.move_to_end(key)
            while len(self._items) > 1 and (
                len(self._items) > self.max_models or self.nbytes > self.max_bytes
            ):
                old, _ = self._items.popitem(last=False)
                evicted.append(old)
        return evicted

    def pop(self, predicate: Callable[[ModelKey], bool]) -> int:
        """Drop every entry whose key satisfies ``predicate``; returns how many."""
        with self._lock:
            keys = [k for k in self._items if predicate(k)]
            for k in keys:
                del self._items[k]
        return len(keys)

    def keys(self) -> list[ModelKey]:
        with self._lock:
            return list(self._items)

    @property
    def nbytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def sizes(self) -> dict[ModelKey, int]:
        with self._lock:
            return {k: size for k, (_, size) in self._items.items()}
