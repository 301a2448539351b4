"""Describe a table: the statistics stored with a model and used later as the drift reference."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from taxonomist.data.language import language_distribution, main_language
from taxonomist.data.schema import ColumnRole, Schema

WORD = re.compile(r"\w+", re.UNICODE)
VOCABULARY_SIZE = 5000
WORDS_BINS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 1000, 10**9)


@dataclass
class ColumnProfile:
    name: str
    role: str
    dtype: str
    missing: int
    n_unique: int
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetProfile:
    """Statistics of a table: size, missing values, columns, words and classes."""

    n_rows: int
    n_columns: int
    n_duplicates: int
    target: str | None
    columns: dict[str, ColumnProfile]
    class_counts: dict[str, int]
    language: str
    languages: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        cols = {k: ColumnProfile(**v) for k, v in data["columns"].items()}
        return cls(**{**data, "columns": cols})

    @property
    def missing(self) -> dict[str, int]:
        return {c: p.missing for c, p in self.columns.items()}


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, the same everywhere (profile, drift, explanations)."""
    return WORD.findall(text.lower())


def profile_table(df: pd.DataFrame, schema: Schema) -> DatasetProfile:
    """Profile ``df`` with the roles of ``schema``."""
    columns: dict[str, ColumnProfile] = {}
    for col in df.columns:
        s = df[col]
        role = schema.roles.get(col, ColumnRole.IGNORE)
        prof = ColumnProfile(
            name=col,
            role=str(role),
            dtype=str(s.dtype),
            missing=int(s.isna().sum()),
            n_unique=int(s.nunique(dropna=True)),
        )
        if role == ColumnRole.NUMERIC:
            prof.stats = _numeric_stats(pd.to_numeric(s, errors="coerce"))
        elif role == ColumnRole.TEXT:
            prof.stats = text_stats(s)
        elif role in (ColumnRole.CATEGORICAL, ColumnRole.TARGET):
            top = s.astype("string").value_counts().head(50)
            prof.stats = {"top": {str(k): int(v) for k, v in top.items()}}
        columns[col] = prof
    class_counts: dict[str, int] = {}
    if schema.target and schema.target in df.columns:
        vc = df[schema.target].dropna().astype(str).value_counts()
        class_counts = {str(k): int(v) for k, v in vc.items()}
    languages = language_distribution(joined_text(df.iloc[:300], schema.text))
    return DatasetProfile(
        n_rows=len(df),
        n_columns=int(df.shape[1]),
        n_duplicates=int(_count_duplicates(df)),
        target=schema.target,
        columns=columns,
        class_counts=class_counts,
        language=main_language(languages),
        languages=languages,
    )


def joined_text(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """Each row's text columns joined by a space (missing values skipped)."""
    if not columns:
        return []
    parts = [df[c].fillna("").astype(str) for c in columns]
    joined = parts[0]
    for p in parts[1:]:
        joined = joined.str.cat(p, sep=" ")
    return joined.str.strip().tolist()


def _count_duplicates(df: pd.DataFrame) -> int:
    try:
        return int(df.duplicated().sum())
    except TypeError:  # unhashable cells (lists from JSON)
        return int(df.astype(str).duplicated().sum())


def _numeric_stats(s: pd.Series) -> dict[str, Any]:
    v = s.dropna().to_numpy(dtype=float)
    if v.size == 0:
        return {}
    q = np.quantile(v, [0.01, 0.25, 0.5, 0.75, 0.99])
    hist, edges = np.histogram(v, bins=20)
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "quantiles": {"p01": q[0], "p25": q[1], "p50": q[2], "p75": q[3], "p99": q[4]},
        "histogram": {"counts": hist.tolist(), "edges": edges.tolist()},
    }


def text_stats(s: pd.Series) -> dict[str, Any]:
    """Words per text (summary and histogram), empty texts and the vocabulary with counts."""
    counter: Counter[str] = Counter()
    n_words = np.empty(len(s), dtype=np.int64)
    chunk = 10_000  # a cleaned copy of a chunk at a time, not of a 100 MB column
    for start in range(0, len(s), chunk):
        texts = s.iloc[start : start + chunk].fillna("").astype(str)
        for i, t in enumerate(texts, start):
            toks = tokenize(t)
            n_words[i] = len(toks)
            counter.update(toks)
    hist, _ = np.histogram(n_words, bins=WORDS_BINS)
    return {
        "empty": int((n_words == 0).sum()),
        "words_mean": float(n_words.mean()) if n_words.size else 0.0,
        "words_median": float(np.median(n_words)) if n_words.size else 0.0,
        "words_p95": float(np.quantile(n_words, 0.95)) if n_words.size else 0.0,
        "words_histogram": {"counts": hist.tolist(), "edges": list(WORDS_BINS)},
        "vocabulary_size": len(counter),
        "vocabulary": dict(counter.most_common(VOCABULARY_SIZE)),
    }
