"""Plain-JSON conversion of what the library reports (numpy scalars, NaN)."""

from __future__ import annotations

import math
from typing import Any


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
