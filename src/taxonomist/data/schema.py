"""Column roles: which columns are text, categorical, numeric, ids, image paths or the target."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from taxonomist.errors import ColumnNotFoundError, InvalidParameterError


class ColumnRole(StrEnum):
    TEXT = "text"
    CATEGORICAL = "categorical"
    NUMERIC = "numeric"
    ID = "id"
    IMAGE = "image"
    TIME = "time"
    TARGET = "target"
    IGNORE = "ignore"


FEATURE_ROLES = (
    ColumnRole.TEXT,
    ColumnRole.CATEGORICAL,
    ColumnRole.NUMERIC,
    ColumnRole.IMAGE,
    ColumnRole.TIME,
)
_IMAGE_EXT = re.compile(r"\.(?:jpe?g|png|gif|bmp|webp|tiff?)$", re.IGNORECASE)
_ID_NAME = re.compile(r"(id|uuid|guid|key|index)$|^unnamed: ?0$", re.I)
# Names of time columns: the guess reads their values as times only when the name says so
# (a column of years or of codes is no clock).
_TIME_NAME = re.compile(
    r"(^|[_\s])(time|timestamp|date|datetime|hour|created|updated)([_\s]|$)|_at$|^ts$", re.I
)


@dataclass
class Schema:
    """The role of every column, and the target."""

    target: str | None
    roles: dict[str, ColumnRole] = field(default_factory=dict)

    def columns(self, role: ColumnRole) -> list[str]:
        return [c for c, r in self.roles.items() if r == role]

    @property
    def text(self) -> list[str]:
        return self.columns(ColumnRole.TEXT)

    @property
    def categorical(self) -> list[str]:
        return self.columns(ColumnRole.CATEGORICAL)

    @property
    def numeric(self) -> list[str]:
        return self.columns(ColumnRole.NUMERIC)

    @property
    def image(self) -> list[str]:
        return self.columns(ColumnRole.IMAGE)

    @property
    def time(self) -> list[str]:
        return self.columns(ColumnRole.TIME)

    @property
    def features(self) -> list[str]:
        return [c for c, r in self.roles.items() if r in FEATURE_ROLES]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "roles": {c: str(r) for c, r in self.roles.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(
            target=data.get("target"),
            roles={c: ColumnRole(r) for c, r in data.get("roles", {}).items()},
        )


def suggest_column(name: str, columns: list[str]) -> str | None:
    """The column whose name is closest to ``name`` (case-insensitive), if any is close."""
    lowered = {c.lower(): c for c in columns}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def require_column(name: str, columns: list[str], *, what: str) -> None:
    """Raise ``ColumnNotFoundError`` naming the closest column when ``name`` is not present."""
    if name in columns:
        return
    guess = suggest_column(name, columns)
    hint = f" Did you mean '{guess}'?" if guess else ""
    raise ColumnNotFoundError(
        f"The {what} column '{name}' is not in the data.{hint} "
        f"Columns found: {', '.join(columns[:30])}{' ...' if len(columns) > 30 else ''}.",
        details={"column": name, "suggestion": guess, "columns": columns},
    )


def infer_column_roles(
    df: pd.DataFrame,
    target: str | None = None,
    overrides: dict[str, ColumnRole | str] | None = None,
) -> Schema:
    """Guess each column's role from its values; ``overrides`` win over the guess."""
    columns = [str(c) for c in df.columns]
    overrides = dict(overrides or {})
    for col, role in overrides.items():
        require_column(col, columns, what=f"'{role}'")
        try:
            overrides[col] = ColumnRole(role)
        except ValueError as exc:
            raise InvalidParameterError(
                f"Unknown role '{role}' for column '{col}'. "
                f"Allowed roles: {', '.join(r.value for r in ColumnRole)}.",
            ) from exc
    if target is not None:
        require_column(target, columns, what="target")
    roles: dict[str, ColumnRole] = {}
    # One time column is guessed (the first): validation and the time parts follow one clock.
    clock = any(ColumnRole(r) == ColumnRole.TIME for r in overrides.values())
    for col in columns:
        if col == target:
            roles[col] = ColumnRole.TARGET
        elif col in overrides:
            roles[col] = ColumnRole(overrides[col])
        else:
            roles[col] = _guess_role(col, df[col], times=not clock)
            clock = clock or roles[col] == ColumnRole.TIME
    return Schema(target=target, roles=roles)


def looks_like_time(values: pd.Series) -> bool:
    """Whether nearly all of a sample of ``values`` (no missing ones) read as times:
    YYMMDDHH integers (click logs' ``hour``) or date strings pandas parses."""
    sample = values.iloc[:500]
    if pd.api.types.is_bool_dtype(sample):
        return False
    if pd.api.types.is_numeric_dtype(sample):
        if not pd.api.types.is_integer_dtype(sample) and (sample % 1 != 0).any():
            return False
        v = sample.astype("int64")
        month, day, hour = v // 10_000 % 100, v // 100 % 100, v % 100
        return bool(
            ((v >= 10**7) & (v < 10**8) & month.between(1, 12) & day.between(1, 31))
            .where(hour < 24, False)
            .mean()
            > 0.98
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample.astype(str), errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.98)


def _guess_role(name: str, s: pd.Series, *, times: bool = True) -> ColumnRole:
    n = len(s)
    values = s.dropna()
    if values.empty:
        return ColumnRole.IGNORE
    n_unique = values.nunique()
    if n_unique == 1:
        return ColumnRole.IGNORE
    if times and _TIME_NAME.search(name) and looks_like_time(values):
        return ColumnRole.TIME
    unique_ratio = n_unique / max(len(values), 1)
    if pd.api.types.is_bool_dtype(s):
        return ColumnRole.CATEGORICAL
    if pd.api.types.is_numeric_dtype(s):
        if _ID_NAME.search(name) and unique_ratio > 0.95:
            return ColumnRole.ID
        if pd.api.types.is_integer_dtype(s) and unique_ratio == 1.0 and n > 50:
            diffs = np.diff(values.to_numpy()[:1000].astype("int64"))
            if diffs.size and (diffs == 1).mean() > 0.9:
                return ColumnRole.ID  # a row counter
        return ColumnRole.NUMERIC
    as_str = values.astype(str)
    sample = as_str.iloc[:2000]
    if sample.str.contains(_IMAGE_EXT).mean() > 0.9:
        return ColumnRole.IMAGE
    numeric = pd.to_numeric(sample, errors="coerce")
    if numeric.notna().mean() > 0.98:
        return ColumnRole.NUMERIC
    words = sample.str.split().str.len().mean()
    length = sample.str.len().mean()
    if words >= 2.5 or (length >= 25 and unique_ratio >= 0.3):
        return ColumnRole.TEXT
    if _ID_NAME.search(name) and unique_ratio > 0.95:
        return ColumnRole.ID
    if unique_ratio > 0.98 and n > 100:
        return ColumnRole.ID
    return ColumnRole.CATEGORICAL
