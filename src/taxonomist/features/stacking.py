"""Out-of-fold predictions of a linear text model, used as features by tree models (stacking)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.svm import LinearSVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class OutOfFoldDecision(TransformerMixin, BaseEstimator):
    """Decision values of ``estimator`` as features.

    ``fit_transform`` returns out-of-fold values over ``folds`` (a row's value comes from a
    model that never saw its label) and then fits ``estimator`` on all rows, which
    ``transform`` uses for new data. The same trick as scikit-learn's ``TargetEncoder``.
    """

    def __init__(
        self, estimator: Any = None, folds: list[tuple[np.ndarray, np.ndarray]] | None = None
    ) -> None:
        self.estimator = estimator
        self.folds = folds

    def _base(self) -> Any:
        return (
            clone(self.estimator)
            if self.estimator is not None
            else LinearSVC(C=0.5, class_weight="balanced", random_state=0)
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
        for train, valid in folds:
            model = self._base().fit(X[train], y[train])
            out[valid] = self._decision(model, X[valid])
        self.estimator_ = self._base().fit(X, y)
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
