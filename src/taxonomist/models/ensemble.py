"""Greedy ensemble selection (Caruana et al., 2004) over out-of-fold probabilities."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


class LogPool:
    """Log-linear pooling of the members: ``softmax(sum_m w_m log p_m + b)``.

    One weight per member and one bias per class (M + K numbers, an L2 pull on the biases),
    fitted on the members' out-of-fold probabilities by L-BFGS on the log loss. Unlike an
    average it can sharpen where the members agree and let a confident member override; it
    is too small to learn the selection noise a greedy search picks up on small data.
    """

    kind = "log_pool"

    def __init__(self, reg: float = 1e-3) -> None:
        self.reg = reg

    def fit(self, oofs: list[np.ndarray], y: np.ndarray) -> LogPool:
        from scipy.optimize import minimize

        logs = _logs(oofs)
        m, n, k = logs.shape
        rows = np.arange(n)

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:m], theta[m:]
            z = np.tensordot(w, logs, 1) + b
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1)
            grad = e / s[:, None]
            grad[rows, y] -= 1
            nll = float(np.mean(np.log(s) - z[rows, y])) + self.reg * float(b @ b)
            gw = np.einsum("mnk,nk->m", logs, grad) / n
            return nll, np.concatenate([gw, grad.sum(axis=0) / n + 2 * self.reg * b])

        start = np.concatenate([np.full(m, 1.0 / m), np.zeros(k)])
        theta = minimize(loss, start, jac=True, method="L-BFGS-B").x
        self.weights_, self.bias_ = theta[:m], theta[m:]
        return self

    def combine(self, probas: list[np.ndarray]) -> np.ndarray:
        z = np.tensordot(self.weights_, _logs(probas), 1) + self.bias_
        return _softmax(z)

    def member_shares(self) -> np.ndarray:
        """Each member's share of the pooled log-probabilities (for the model card)."""
        w = np.abs(self.weights_)
        return w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))


class Stacker(LogPool):
    """A multinomial logistic regression on the members' out-of-fold log-probabilities
    (all M x K of them, balanced class weights): it learns which member to trust for which
    class, e.g. a booster's confusions that the text models do not share."""

    kind = "stacker"

    def __init__(self, C: float = 0.3) -> None:
        self.C = C

    def fit(self, oofs: list[np.ndarray], y: np.ndarray) -> Stacker:
        from sklearn.linear_model import LogisticRegression

        features = np.hstack(list(_logs(oofs)))
        self.model_ = LogisticRegression(
            C=self.C, class_weight="balanced", max_iter=100, tol=1e-3
        ).fit(features, y)
        k = oofs[0].shape[1]
        present = self.model_.classes_
        self.coef_ = np.zeros((k, features.shape[1]), dtype=np.float64)
        self.intercept_ = np.full(k, -1e4)  # a class absent from the rows: never predicted
        if len(present) == 2:  # one logit: the second class's against the first's zero
            self.intercept_[present[0]] = 0.0
            self.coef_[present[1]] = self.model_.coef_[0]
            self.intercept_[present[1]] = self.model_.intercept_[0]
        else:
            self.coef_[present], self.intercept_[present] = (
                self.model_.coef_,
                self.model_.intercept_,
            )
        weights = np.abs(self.coef_).reshape(k, len(oofs), k).sum(axis=(0, 2))
        self.weights_ = weights / max(weights.sum(), 1e-12)
        del self.model_
        return self

    def combine(self, probas: list[np.ndarray]) -> np.ndarray:
        return _softmax(np.hstack(list(_logs(probas))) @ self.coef_.T + self.intercept_)


def _logs(probas: list[np.ndarray]) -> np.ndarray:
    return np.log(np.clip(np.stack([np.asarray(p, dtype=np.float64) for p in probas]), 1e-6, 1))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass
class Combination:
    """What :func:`choose_combination` chose: its ``kind``, the greedy ``weights`` over the
    candidates (one-hot for ``single``), the fitted pool or stacker (``None`` for the
    averages), every kind's cross-validated ``scores`` and, for a pool or stacker, its
    cross-validated ``predictions`` (honest out-of-fold probabilities for the model's
    metrics; its fit on all rows has seen them)."""

    kind: str
    weights: np.ndarray
    combiner: LogPool | None
    scores: dict[str, float]
    predictions: np.ndarray | None
    inputs: list[int]  # the candidates the pool or stacker combines, in order


# The stacker's features are M x K wide: past this many numbers (rows x M x K) its
# cross-validation costs more than the search can spare (~2 s a fit at the cap, measured),
# and it is not tried.
STACKER_MAX_CELLS = 4_000_000


def combination_seconds(n_rows: int, n_classes: int, n_candidates: int) -> float:
    """What ``choose_combination`` is expected to take (measured on 2 cores: 1.9 s for
    500 x 27 x 5 numbers, 2.2 s for 5,000 x 20 x 8, 5.4 s for 20,000 x 20 x 8), for the
    search to keep it aside with the refits."""
    if n_candidates < 2:
        return 0.0
    return 1.0 + 1.5e-6 * min(n_rows * n_classes * n_candidates, 2 * STACKER_MAX_CELLS)


def choose_combination(
    oofs: list[np.ndarray],
    y: np.ndarray,
    metric: Metric,
    *,
    allowed: Callable[[frozenset[int]], bool] | None = None,
    seed: int = 0,
    n_folds: int = 5,
) -> Combination:
    """How to combine the candidates, chosen by a cross-validation over the out-of-fold rows
    (each way is fitted on four fifths, scored on the fifth it did not see): the greedy
    average, the best single model, log-linear pooling or a stacker of the candidates.

    The greedy search's own score is measured on the rows it was selected on; on small data
    that is optimistic by points (Rakuten sample: 0.524 alone, greedy 0.503 when scored on
    unseen rows), so it competes here on unseen rows like the others. Pool and stacker combine
    the best candidates that keep the prediction budget together (``allowed``).
    """
    from sklearn.model_selection import StratifiedKFold

    weights, _ = greedy_ensemble(oofs, y, metric, allowed=allowed)
    n, k = oofs[0].shape
    counts = np.bincount(y, minlength=k)
    folds = min(n_folds, int(counts[counts > 0].min())) if n else 0
    if len(oofs) < 2 or folds < 2:
        return Combination("greedy", weights, None, {}, None, [])
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(oofs[0], y))

    predictions: dict[str, np.ndarray] = {}

    def cross_validated(
        kind: str, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> float:
        out = np.zeros((n, k), dtype=np.float64)
        for train, valid in splits:
            out[valid] = fit_predict(train, valid)
        predictions[kind] = out.astype(np.float32)
        return float(metric(y, out))

    def greedy(train: np.ndarray, valid: np.ndarray) -> np.ndarray:
        w, _ = greedy_ensemble([p[train] for p in oofs], y[train], metric, allowed=allowed)
        return sum(wi * p[valid] for wi, p in zip(w, oofs, strict=True) if wi > 0)

    # Pool and stacker take the best candidates that keep the prediction budget together.
    inputs = list(range(len(oofs)))
    while len(inputs) > 1 and allowed is not None and not allowed(frozenset(inputs)):
        inputs.pop()
    pooled = [oofs[i] for i in inputs]

    def combiner(make: Callable[[], LogPool]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return lambda tr, va: (
            make().fit([p[tr] for p in pooled], y[tr]).combine([p[va] for p in pooled])
        )

    scores = {"greedy": cross_validated("greedy", greedy), "single": float(metric(y, oofs[0]))}
    makers: dict[str, Callable[[], LogPool]] = {}
    if len(inputs) > 1:
        makers["log_pool"] = LogPool
        if n * len(inputs) * k <= STACKER_MAX_CELLS:
            makers["stacker"] = Stacker
    for kind, make in makers.items():
        scores[kind] = cross_validated(kind, combiner(make))
    # Ties go to the simpler way, in this order.
    order = ["single", "greedy", "log_pool", "stacker"]
    best = min(scores, key=lambda kind: (metric.loss(scores[kind]), order.index(kind)))
    if best == "single":
        weights = np.eye(len(oofs))[0]
    if best not in makers:
        return Combination(best, weights, None, scores, None, [])
    fitted = makers[best]().fit(pooled, y)
    return Combination(best, weights, fitted, scores, predictions[best], inputs)
