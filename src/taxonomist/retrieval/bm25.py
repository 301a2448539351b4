"""Sparse retrieval: BM25 over the passages (``bm25s``: scipy sparse scores)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class BM25Index:
    """BM25 with English stop words removed and the given ``k1`` and ``b``."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, stopwords: str | None = "en") -> None:
        self.k1, self.b, self.stopwords = k1, b, stopwords

    def params(self) -> dict[str, Any]:
        return {"method": "bm25", "k1": self.k1, "b": self.b, "stopwords": self.stopwords}

    def fit(self, passages: pd.DataFrame) -> BM25Index:
        import bm25s

        self.ids_ = passages["passage_id"].to_numpy()
        tokens = bm25s.tokenize(
            passages["context"].tolist(), stopwords=self.stopwords, show_progress=False
        )
        self.model_ = bm25s.BM25(k1=self.k1, b=self.b)
        self.model_.index(tokens, show_progress=False)
        return self

    def search(self, questions: list[str], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Passage ids and scores of the ``k`` best passages for each question (best first)."""
        import bm25s

        k = min(k, len(self.ids_))
        tokens = bm25s.tokenize(questions, stopwords=self.stopwords, show_progress=False)
        docs, scores = self.model_.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return self.ids_[docs], scores
