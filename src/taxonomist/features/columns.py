"""A few rows as plain numpy columns, for the single-record fast path."""

from __future__ import annotations

import numpy as np
import pandas as pd


class ColumnView:
    """A few rows as plain numpy columns: what a single-record prediction passes to blocks
    instead of a DataFrame, whose construction and column selection cost ~0.25 ms each."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self._columns = columns

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, column: str) -> np.ndarray:
        return self._columns[column]

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def subset(self, columns: tuple[str, ...] | list[str]) -> ColumnView:
        return ColumnView({c: self._columns[c] for c in columns})

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._columns)
