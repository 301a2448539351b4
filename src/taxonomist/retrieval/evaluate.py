"""The quality test: does the right passage come first, or in the top five?"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from taxonomist.retrieval.corpus import QADataset


class Index(Protocol):
    def search(self, questions: list[str], k: int = 10) -> tuple[np.ndarray, np.ndarray]: ...


def evaluate(index: Index, dataset: QADataset, *, latency_sample: int = 100) -> dict[str, Any]:
    """Top-1 and top-5 accuracy and MRR@10 over every question; latency of one question at a
    time (p50, p99 in ms) over ``latency_sample`` of them."""
    questions = dataset.questions["question"].tolist()
    truth = dataset.questions["passage_id"].to_numpy()
    ids, _ = index.search(questions, k=10)
    hit = ids == truth[:, None]
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    mrr = np.where(first >= 0, 1.0 / np.maximum(first + 1, 1), 0.0)
    rng = np.random.default_rng(0)
    sample = rng.choice(len(questions), min(latency_sample, len(questions)), replace=False)
    times = []
    for i in sample:
        start = time.perf_counter()
        index.search([questions[i]], k=5)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "n": len(questions),
        "top1": float(hit[:, :1].any(axis=1).mean()),
        "top5": float(hit[:, :5].any(axis=1).mean()),
        "mrr10": float(mrr.mean()),
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
    }
