"""A scikit-learn transformer that embeds text columns with a cached sentence encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from taxonomist.embed.cache import EmbeddingCache, text_key
from taxonomist.embed.encoders import get_encoder


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Embed the row's text columns joined by '. ' with ``encoder``; cache by text hash."""

    def __init__(self, encoder: str = "use", cache_path: str | None = None) -> None:
        self.encoder = encoder
        self.cache_path = cache_path

    def fit(self, X: Any, y: Any = None) -> SentenceEmbedder:
        self.dim_ = get_encoder(self.encoder).dim
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "dim_")
        texts = join_text_columns(X)
        return embed_texts(texts, self.encoder, Path(self.cache_path) if self.cache_path else None)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "dim_")
        return np.array([f"{self.encoder}_{i}" for i in range(self.dim_)], dtype=object)


def embed_texts(texts: list[str], encoder: str, cache_path: Path | None) -> np.ndarray:
    """Embeddings of ``texts``; cached vectors are read, the rest encoded and stored."""
    enc = get_encoder(encoder)
    out = np.zeros((len(texts), enc.dim), dtype=np.float32)
    keys = [text_key(t) for t in texts]
    cache = EmbeddingCache(cache_path) if cache_path else None
    found = cache.get(enc.name, list(set(keys)), enc.dim) if cache else {}
    todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
    if todo:
        new = enc.encode([t for _, t in todo])
        fresh = {k: new[i] for i, (k, _) in enumerate(todo)}
        if cache:
            cache.put(enc.name, fresh)
        found.update(fresh)
    for i, k in enumerate(keys):
        out[i] = found[k]
    if cache:
        cache.close()
    return out


def join_text_columns(X: Any) -> list[str]:
    """Each row's text columns joined by '. ' (empty values skipped)."""
    df = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
    df = df.astype("object").where(df.notna(), "").astype(str)
    if df.shape[1] == 1:
        return df.iloc[:, 0].str.strip().tolist()
    return df.agg(lambda r: ". ".join(v for v in r if v.strip()), axis=1).tolist()
