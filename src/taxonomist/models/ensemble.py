"""Greedy ensemble selection (Caruana et al., 2004) over out-of-fold probabilities."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from taxonomist.models.metrics import Metric


def greedy_ensemble(
    oofs: list[np.ndarray],
    y: np.ndarray,
    metric: Metric,
    *,
    n_iter: int = 25,
    allowed: Callable[[frozenset[int]], bool] | None = None,
) -> tuple[np.ndarray, float]:
    """Weights (summing to 1) over ``oofs`` and the ensemble's score.

    Models are added with replacement, each time the one that most improves ``metric`` on the
    averaged probabilities; the best prefix of the sequence is kept. Ties go to the earlier
    (better single) model, so the result is deterministic. With ``allowed`` (the set of
    members -> whether that ensemble keeps the prediction-cost budget) a model that would
    break it is not added; the first model must be allowed alone.
    """
    if not oofs:
        raise ValueError("no candidate predictions to ensemble")
    counts = np.zeros(len(oofs), dtype=np.int64)
    total = np.zeros_like(oofs[0], dtype=np.float64)
    best_score, best_counts = None, counts.copy()
    for step in range(1, n_iter + 1):
        chosen = frozenset(np.flatnonzero(counts).tolist())
        candidates = [
            i for i in range(len(oofs)) if allowed is None or i in chosen or allowed(chosen | {i})
        ]
        if not candidates:
            raise ValueError("no candidate keeps the prediction-cost budget")
        scores = {i: metric(y, (total + oofs[i]) / step) for i in candidates}
        pick = min(candidates, key=lambda i: (metric.loss(scores[i]), i))
        counts[pick] += 1
        total += oofs[pick]
        if best_score is None or metric.better(scores[pick], best_score):
            best_score, best_counts = scores[pick], counts.copy()
    assert best_score is not None
    return best_counts / best_counts.sum(), float(best_score)
