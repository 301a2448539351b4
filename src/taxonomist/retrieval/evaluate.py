"""The quality test (does the right passage come first, or in the top five?) and the latency
benchmark (one question at a time, as a user asks)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from taxonomist.retrieval.corpus import QADataset
from taxonomist.retrieval.model import Progress, RetrievalModel


def latency(
    model: RetrievalModel, questions: list[str], *, n: int = 100, k: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Milliseconds per question over ``n`` random questions, embedding included."""
    if not questions:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None, "ms": []}
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(questions), n, replace=len(questions) < n)
    times = []
    for i in sample:
        start = time.perf_counter()
        model.search(questions[i], k=k)
        times.append((time.perf_counter() - start) * 1000)
    ms = np.array(times)
    return {
        "n": len(times),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "ms": [round(t, 3) for t in times],
    }


def evaluate(
    model: RetrievalModel,
    dataset: QADataset,
    *,
    latency_sample: int = 100,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Top-1 and top-5 accuracy and MRR@10 over every question of ``dataset``, and the
    latency (p50, p99) of ``latency_sample`` of them asked one at a time."""
    questions = dataset.questions["question"].tolist()
    truth = dataset.questions["passage_id"].tolist()
    ranked = model.rank_many(questions, k=10, on_progress=on_progress)
    first = np.array([r.index(t) if t in r else -1 for r, t in zip(ranked, truth, strict=True)])
    found = first >= 0
    speed = latency(model, questions, n=latency_sample) if latency_sample else {}
    n = max(len(questions), 1)
    return {
        "n": len(questions),
        "top1": round(float((first == 0).sum() / n), 4),
        "top5": round(float((found & (first < 5)).sum() / n), 4),
        "mrr10": round(float((1.0 / (first[found] + 1)).sum() / n), 4),
        "p50_ms": speed.get("p50_ms"),
        "p99_ms": speed.get("p99_ms"),
    }
