"""Out-of-fold predictions of a linear text model, used as features by tree models (stacking)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import SGDClassifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class OutOfFoldDecision(TransformerMixin, BaseEstimator):
    """Decision values of ``estimator`` as features.

    ``fit_transform`` returns out-of-fold values over ``folds`` (a row's value comes from a
    model that never saw its label) and then fits ``estimator`` on all rows, which
    ``transform`` uses for new data. The same trick as scikit-learn's ``TargetEncoder``.

    The k + 1 fits run on ``n_jobs`` threads. The default model is an averaged SGD linear
    SVM: a stacking feature needs to be good, not the best. On 18k reviews x 20 classes it
    fits in 5 s where liblinear's SVM takes 24 s (macro-F1 0.465 vs 0.483), and a liblinear
    block took 116 s of a 120 s budget.
    """

    def __init__(
        self,
        estimator: Any = None,
        folds: list[tuple[np.ndarray, np.ndarray]] | None = None,
        n_jobs: int = 1,
    ) -> None:
        self.estimator = estimator
        self.folds = folds
        self.n_jobs = n_jobs

    def _base(self) -> Any:
        return (
            clone(self.estimator)
            if self.estimator is not None
            else SGDClassifier(
                loss="hinge",
                alpha=2e-5,
                average=True,
                max_iter=10,
                tol=1e-3,
                class_weight="balanced",
                random_state=0,
            )
        )

    def fit(self, X: Any, y: Any) -> OutOfFoldDecision:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        X, y = validate_data(
            self, X, y, accept_sparse="csr", reset=True, dtype=[np.float64, np.float32]
        )
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        width = 1 if len(self.classes_) == 2 else len(self.classes_)
        out = np.zeros((X.shape[0], width), dtype=np.float32)
        folds = self.folds or _default_folds(y)
        everything = np.arange(X.shape[0])
        with ThreadPoolExecutor(max_workers=max(1, self.n_jobs)) as pool:
            # The fit on all rows is the largest: start it first so it does not finish last.
            fits = list(
                pool.map(
                    lambda rows: self._base().fit(X[rows], y[rows]),
                    [everything] + [train for train, _ in folds],
                )
            )
        self.estimator_ = fits[0]
        for model, (_, valid) in zip(fits[1:], folds, strict=True):
            out[valid] = self._decision(model, X[valid])
        return out

    def _decision(self, model: Any, X: Any) -> np.ndarray:
        d = np.asarray(model.decision_function(X), dtype=np.float32)
        if d.ndim == 1:
            return d[:, None]
        out = np.zeros((X.shape[0], len(self.classes_)), dtype=np.float32)
        out[:, np.searchsorted(self.classes_, model.classes_)] = d
        return out

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        return self._decision(self.estimator_, X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _default_folds(y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    k = int(max(2, min(5, counts.min())))
    return list(StratifiedKFold(k, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
